"""digest_log: one row per (follower, frequency, period), so a digest is sent once

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

import oppkit.db.schema

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "digest_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("frequency", sa.String(length=10), nullable=False),
        sa.Column("period", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("window_start", oppkit.db.schema.UTCDateTime(), nullable=False),
        sa.Column("window_end", oppkit.db.schema.UTCDateTime(), nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("claimed_at", oppkit.db.schema.UTCDateTime(), nullable=True),
        sa.Column("sent_at", oppkit.db.schema.UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", oppkit.db.schema.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["people.id"],
            name=op.f("fk_digest_log_person_id_people"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_digest_log")),
        sa.UniqueConstraint(
            "person_id",
            "frequency",
            "period",
            name=op.f("uq_digest_log_person_id_frequency_period"),
        ),
    )


def downgrade() -> None:
    op.drop_table("digest_log")
