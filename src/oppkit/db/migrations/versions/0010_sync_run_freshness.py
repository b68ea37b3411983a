"""sync_runs: source, target, host, pid, heartbeat_at (freshness you can see)

``oppkit status`` and ``kit.sync_status()`` show, per source and target, the last
success, its age and the last error. A run records the source label and what it synced
(a path, user@host, an org URL: never a secret) and, while it runs, its host, process id
and a heartbeat, so a run whose process was killed (``kill -9``) shows as interrupted
instead of running forever; the next run marks it so.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

import oppkit.db.schema

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sync_runs") as batch:
        batch.add_column(sa.Column("source", sa.String(length=60)))
        batch.add_column(sa.Column("target", sa.String(length=500)))
        batch.add_column(sa.Column("host", sa.String(length=200)))
        batch.add_column(sa.Column("pid", sa.Integer()))
        batch.add_column(sa.Column("heartbeat_at", oppkit.db.schema.UTCDateTime()))
    op.create_index(
        op.f("ix_sync_runs_agent_source_target_id"),
        "sync_runs",
        ["agent", "source", "target", "id"],
    )
    op.create_index(op.f("ix_sync_runs_status"), "sync_runs", ["status"])


def downgrade() -> None:
    op.drop_index(op.f("ix_sync_runs_status"), table_name="sync_runs")
    op.drop_index(op.f("ix_sync_runs_agent_source_target_id"), table_name="sync_runs")
    with op.batch_alter_table("sync_runs") as batch:
        for column in ("heartbeat_at", "pid", "host", "target", "source"):
            batch.drop_column(column)
