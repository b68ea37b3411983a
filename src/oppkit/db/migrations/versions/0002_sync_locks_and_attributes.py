"""sync locks (SQLite lock rows) and custom opportunity attributes

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

import oppkit.db.schema

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sync_locks",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("acquired_at", oppkit.db.schema.UTCDateTime(), nullable=False),
        sa.Column("heartbeat_at", oppkit.db.schema.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_sync_locks")),
    )
    with op.batch_alter_table("opportunities") as batch:
        batch.add_column(sa.Column("attributes", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("opportunities") as batch:
        batch.drop_column("attributes")
    op.drop_table("sync_locks")
