"""Write-back: outbound_changes, opportunities.source_modstamp, stage_history.origin,
stage_arrivals, stages.source_order, people/accounts source_modstamp and source_status

One owner per fact: a change a person makes in oppkit to a field Salesforce owns is
queued in ``outbound_changes`` (committed with the edit) and pushed by the Salesforce
agent with If-Unmodified-Since ``opportunities.source_modstamp`` (the SystemModstamp last
synced). A contact's or account's lifecycle status goes the same way (``sobject``
Contact or Account, ``person_id`` / ``account_id``, no deal), over
``people.source_modstamp`` / ``accounts.source_modstamp``; ``source_status`` is the
status as last synced (a sync moves the lifecycle stage only when it changes). ``stage_history.origin`` says where a change came from (sync, create,
transition, edit, conflict). ``stage_arrivals`` places a deal arriving from Salesforce in
a stage at its workflow step; ``stages.source_order`` keeps Salesforce's own order of its
stages, from which oppkit.funnel numbers one funnel (``sort_order``). On PostgreSQL,
queued changes of a private deal are hidden like the rest of it (see 0008); those of no
deal (a contact's, an account's) are not private.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

import oppkit.db.schema

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

HIDDEN = "(SELECT oppkit_hidden_deals(current_user::text))"


def upgrade() -> None:
    with op.batch_alter_table("opportunities") as batch:
        batch.add_column(sa.Column("source_modstamp", oppkit.db.schema.UTCDateTime()))
    for table in ("people", "accounts"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("source_modstamp", oppkit.db.schema.UTCDateTime()))
            batch.add_column(sa.Column("source_status", sa.String(length=120)))
    with op.batch_alter_table("stage_history") as batch:
        batch.add_column(sa.Column("origin", sa.String(length=20)))
    with op.batch_alter_table("stages") as batch:
        batch.add_column(sa.Column("source_order", sa.Integer()))
    op.execute("UPDATE stages SET source_order = sort_order WHERE source <> 'workflow'")
    op.execute(
        "UPDATE stage_history SET origin = CASE WHEN source = 'oppkit' THEN 'transition'"
        " ELSE 'sync' END"
    )
    op.execute("UPDATE opportunities SET source_modstamp = updated_at WHERE source = 'salesforce'")
    op.create_table(
        "stage_arrivals",
        sa.Column("stage_name", sa.String(length=120), nullable=False),
        sa.Column("step_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["step_id"], ["steps.id"], name=op.f("fk_stage_arrivals_step_id_steps"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("stage_name", name=op.f("pk_stage_arrivals")),
    )  # fmt: skip
    op.create_table(
        "outbound_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sobject", sa.String(length=40), server_default="Opportunity",
                  nullable=False),
        sa.Column("opportunity_id", sa.Integer()),
        sa.Column("person_id", sa.Integer()),
        sa.Column("account_id", sa.Integer()),
        sa.Column("field", sa.String(length=40), nullable=False),
        sa.Column("old_value", sa.JSON(none_as_null=True)),
        sa.Column("new_value", sa.JSON(none_as_null=True)),
        sa.Column("seen_modstamp", oppkit.db.schema.UTCDateTime()),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("origin", sa.String(length=20), nullable=False),
        sa.Column("requested_by_id", sa.Integer()),
        sa.Column("requested_at", oppkit.db.schema.UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text()),
        sa.Column("pushed_at", oppkit.db.schema.UTCDateTime()),
        sa.Column("their_value", sa.JSON(none_as_null=True)),
        sa.Column("their_modstamp", oppkit.db.schema.UTCDateTime()),
        sa.Column("their_by", sa.String(length=255)),
        sa.ForeignKeyConstraint(
            ["opportunity_id"], ["opportunities.id"],
            name=op.f("fk_outbound_changes_opportunity_id_opportunities"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"],
            name=op.f("fk_outbound_changes_person_id_people"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"],
            name=op.f("fk_outbound_changes_account_id_accounts"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["requested_by_id"], ["people.id"],
            name=op.f("fk_outbound_changes_requested_by_id_people"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_changes")),
    )  # fmt: skip
    op.create_index(op.f("ix_outbound_changes_status"), "outbound_changes", ["status"])
    for column in ("opportunity_id", "person_id", "account_id"):
        op.create_index(op.f(f"ix_outbound_changes_{column}"), "outbound_changes", [column])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE outbound_changes ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY oppkit_private ON outbound_changes USING"
            f" (opportunity_id IS NULL OR opportunity_id NOT IN {HIDDEN})"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP POLICY IF EXISTS oppkit_private ON outbound_changes")
    for column in ("opportunity_id", "person_id", "account_id"):
        op.drop_index(op.f(f"ix_outbound_changes_{column}"), table_name="outbound_changes")
    op.drop_index(op.f("ix_outbound_changes_status"), table_name="outbound_changes")
    op.drop_table("outbound_changes")
    op.drop_table("stage_arrivals")
    with op.batch_alter_table("stage_history") as batch:
        batch.drop_column("origin")
    with op.batch_alter_table("stages") as batch:
        batch.drop_column("source_order")
    for table in ("people", "accounts"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("source_status")
            batch.drop_column("source_modstamp")
    with op.batch_alter_table("opportunities") as batch:
        batch.drop_column("source_modstamp")
