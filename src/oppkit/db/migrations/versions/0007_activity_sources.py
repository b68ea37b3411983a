"""activity_sources: every source that reports an activity (one event, one row)

Each existing activity gets its own (source, source_id) row, with its is_deleted.

Revision ID: 0007_activity_sources
Revises: 0006_match_link
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_activity_sources"
down_revision = "0006_match_link"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "activity_sources",
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("source_id", sa.String(length=255), nullable=False),
        sa.Column("activity_id", sa.Integer(), nullable=False),
        sa.Column("is_deleted", sa.Boolean(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["activity_id"],
            ["activities.id"],
            name=op.f("fk_activity_sources_activity_id_activities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("source", "source_id", name=op.f("pk_activity_sources")),
    )
    op.create_index(
        op.f("ix_activity_sources_activity_id"), "activity_sources", ["activity_id"], unique=False
    )
    op.execute(
        "INSERT INTO activity_sources (source, source_id, activity_id, is_deleted)"
        " SELECT source, source_id, id, is_deleted FROM activities"
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_activity_sources_activity_id"), table_name="activity_sources")
    op.drop_table("activity_sources")
