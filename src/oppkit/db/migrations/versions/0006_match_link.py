"""activities.opportunity_link: whether an activity's deal came from its source or from matching

'source': the record's own link (a Salesforce WhatId, a note written on a deal), never
matched again; 'matched': set by oppkit.matching, matched again when deals change; NULL:
no deal. Existing links: Salesforce's and oppkit's own records keep theirs ('source'),
mail and calendar links were matched. Plus an index on alerts.activity_id, by which
alerts follow their activity's deal.

Revision ID: 0006_match_link
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_match_link"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("activities") as batch:
        batch.add_column(sa.Column("opportunity_link", sa.String(length=10), nullable=True))
    op.execute(
        "UPDATE activities SET opportunity_link = CASE"
        " WHEN source IN ('salesforce', 'oppkit') THEN 'source' ELSE 'matched' END"
        " WHERE opportunity_id IS NOT NULL"
    )
    op.create_index(op.f("ix_alerts_activity_id"), "alerts", ["activity_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_alerts_activity_id"), table_name="alerts")
    with op.batch_alter_table("activities") as batch:
        batch.drop_column("opportunity_link")
