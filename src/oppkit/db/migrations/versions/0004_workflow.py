"""workflow (steps, transitions, entries, follow-ons, links, outbox) and lifecycle tables

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

import oppkit.db.schema

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "steps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("stage_id", sa.Integer(), nullable=False),
        sa.Column("attributes", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("sort_order", sa.Integer(), nullable=True),
        sa.Column("is_active", sa.Boolean(), server_default="1", nullable=False),
        sa.ForeignKeyConstraint(["stage_id"], ["stages.id"], name=op.f("fk_steps_stage_id_stages")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_steps")),
        sa.UniqueConstraint("name", name=op.f("uq_steps_name")),
    )
    op.create_table(
        "transitions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("from_step_id", sa.Integer(), nullable=False),
        sa.Column("to_step_id", sa.Integer(), nullable=False),
        sa.Column("required_attributes", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("triggers", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("communications", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("sort_order", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["from_step_id"], ["steps.id"], name=op.f("fk_transitions_from_step_id_steps")
        ),
        sa.ForeignKeyConstraint(
            ["to_step_id"], ["steps.id"], name=op.f("fk_transitions_to_step_id_steps")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transitions")),
        sa.UniqueConstraint("from_step_id", "name", name=op.f("uq_transitions_from_step_id_name")),
    )
    op.create_table(
        "workflow_entries",
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("step_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["step_id"], ["steps.id"], name=op.f("fk_workflow_entries_step_id_steps")
        ),
        sa.PrimaryKeyConstraint("kind", name=op.f("pk_workflow_entries")),
    )
    op.create_table(
        "follow_ons",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("step_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["step_id"], ["steps.id"], name=op.f("fk_follow_ons_step_id_steps")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_follow_ons")),
        sa.UniqueConstraint("name", name=op.f("uq_follow_ons_name")),
    )
    op.create_table(
        "links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("opportunity_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("reference", sa.String(length=255), nullable=False),
        sa.Column("data", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("transition", sa.String(length=120), nullable=True),
        sa.Column("created_at", oppkit.db.schema.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["opportunity_id"],
            ["opportunities.id"],
            name=op.f("fk_links_opportunity_id_opportunities"),
            ondelete="CASCADE",
        ),  # fmt: skip
        sa.PrimaryKeyConstraint("id", name=op.f("pk_links")),
    )
    op.create_index(op.f("ix_links_opportunity_id"), "links", ["opportunity_id"])
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("opportunity_id", sa.Integer(), nullable=True),
        sa.Column("transition", sa.String(length=120), nullable=True),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("html", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", oppkit.db.schema.UTCDateTime(), nullable=False),
        sa.Column("sent_at", oppkit.db.schema.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["opportunity_id"],
            ["opportunities.id"],
            name=op.f("fk_outbox_opportunity_id_opportunities"),
            ondelete="CASCADE",
        ),  # fmt: skip
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    op.create_index(op.f("ix_outbox_status"), "outbox", ["status"])
    op.create_table(
        "lifecycle_stages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("category", sa.String(length=20), nullable=False),
        sa.Column("external_status", sa.String(length=120), nullable=True),
        sa.Column("locks", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("sort_order", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lifecycle_stages")),
        sa.UniqueConstraint("kind", "name", name=op.f("uq_lifecycle_stages_kind_name")),
    )
    op.create_table(
        "lifecycle_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("event", sa.String(length=40), nullable=False),
        sa.Column("stage", sa.String(length=120), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lifecycle_rules")),
        sa.UniqueConstraint("kind", "event", name=op.f("uq_lifecycle_rules_kind_event")),
    )
    op.create_table(
        "lifecycle_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("old_stage", sa.String(length=120), nullable=True),
        sa.Column("new_stage", sa.String(length=120), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("activity_id", sa.Integer(), nullable=True),
        sa.Column("changed_at", oppkit.db.schema.UTCDateTime(), nullable=False),
        sa.Column("changed_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_lifecycle_history_account_id_accounts"),
            ondelete="CASCADE",
        ),  # fmt: skip
        sa.ForeignKeyConstraint(
            ["activity_id"],
            ["activities.id"],
            name=op.f("fk_lifecycle_history_activity_id_activities"),
            ondelete="SET NULL",
        ),  # fmt: skip
        sa.ForeignKeyConstraint(
            ["changed_by_id"], ["people.id"], name=op.f("fk_lifecycle_history_changed_by_id_people")
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["people.id"],
            name=op.f("fk_lifecycle_history_person_id_people"),
            ondelete="CASCADE",
        ),  # fmt: skip
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lifecycle_history")),
    )
    op.create_index(op.f("ix_lifecycle_history_account_id"), "lifecycle_history", ["account_id"])
    op.create_index(op.f("ix_lifecycle_history_person_id"), "lifecycle_history", ["person_id"])

    # Plain ADD COLUMN (no table rebuild): rebuilding opportunities on SQLite with foreign
    # keys on would cascade-delete its members and history.
    op.add_column(
        "accounts", sa.Column("stage_locked", sa.Boolean(), server_default="0", nullable=False)
    )
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE opportunities ADD COLUMN step_id INTEGER REFERENCES steps (id)")
    else:
        op.add_column("opportunities", sa.Column("step_id", sa.Integer(), nullable=True))
        op.create_foreign_key(
            op.f("fk_opportunities_step_id_steps"), "opportunities", "steps", ["step_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("opportunities") as batch:
        batch.drop_column("step_id")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("stage_locked")
    for table in (
        "lifecycle_history", "lifecycle_rules", "lifecycle_stages", "outbox", "links",
        "follow_ons", "workflow_entries", "transitions", "steps",
    ):  # fmt: skip
        op.drop_table(table)
