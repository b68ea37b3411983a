"""Campaigns and leads: costs, parents and processes of campaigns; leads; lead members;
named workflow processes; campaign activities

``campaigns`` gains its parent, budgeted and actual cost, expected revenue, whether it
is active, and the process its deals run. ``leads`` holds Salesforce Leads and leads
made in oppkit. ``campaign_members`` takes a lead or a contact and whether (and when)
the member responded. ``process_entries`` names processes beside the default one, each
with its own entry steps; ``opportunities.process`` says which one a deal runs.
``activities.campaign_id`` marks a campaign activity; ``outbox.activity_id`` names the
outbound activity a queued message stands for.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

import oppkit.db.schema

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def add_reference(table: str, column: str, referred: str) -> None:
    """A nullable foreign key column, added in place: on SQLite a batch would copy the
    table, and dropping the old copy cascades to the rows that refer to it."""
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"ALTER TABLE {table} ADD COLUMN {column} INTEGER REFERENCES {referred} (id)")
    else:
        op.add_column(table, sa.Column(column, sa.Integer()))
        op.create_foreign_key(
            op.f(f"fk_{table}_{column}_{referred}"), table, referred, [column], ["id"]
        )


def upgrade() -> None:
    add_reference("campaigns", "parent_id", "campaigns")
    add_reference("activities", "campaign_id", "campaigns")
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("activity_id", sa.Integer()))
        batch.create_foreign_key(
            op.f("fk_outbox_activity_id_activities"), "activities", ["activity_id"], ["id"],
            ondelete="SET NULL",
        )  # fmt: skip
    with op.batch_alter_table("campaigns") as batch:
        batch.add_column(sa.Column("budgeted_cost", sa.Float()))
        batch.add_column(sa.Column("actual_cost", sa.Float()))
        batch.add_column(sa.Column("expected_revenue", sa.Float()))
        batch.add_column(sa.Column("is_active", sa.Boolean()))
        batch.add_column(sa.Column("process", sa.String(length=120)))
    op.create_table(
        "leads",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=320)),
        sa.Column("company", sa.String(length=255)),
        sa.Column("title", sa.String(length=255)),
        sa.Column("status", sa.String(length=60)),
        sa.Column("lead_source", sa.String(length=120)),
        sa.Column("owner_id", sa.Integer()),
        sa.Column("is_converted", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("converted_at", sa.Date()),
        sa.Column("converted_account_id", sa.Integer()),
        sa.Column("converted_person_id", sa.Integer()),
        sa.Column("converted_opportunity_id", sa.Integer()),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("source_id", sa.String(length=255), nullable=False),
        sa.Column("created_at", oppkit.db.schema.UTCDateTime()),
        sa.Column("updated_at", oppkit.db.schema.UTCDateTime()),
        sa.Column("is_deleted", sa.Boolean(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["people.id"], name=op.f("fk_leads_owner_id_people")
        ),
        sa.ForeignKeyConstraint(
            ["converted_account_id"], ["accounts.id"],
            name=op.f("fk_leads_converted_account_id_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["converted_person_id"], ["people.id"],
            name=op.f("fk_leads_converted_person_id_people"),
        ),
        sa.ForeignKeyConstraint(
            ["converted_opportunity_id"], ["opportunities.id"],
            name=op.f("fk_leads_converted_opportunity_id_opportunities"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_leads")),
        sa.UniqueConstraint("source", "source_id", name=op.f("uq_leads_source_source_id")),
    )  # fmt: skip
    op.create_index(op.f("ix_leads_email"), "leads", ["email"])
    with op.batch_alter_table("campaign_members") as batch:
        batch.alter_column("person_id", existing_type=sa.Integer(), nullable=True)
        batch.add_column(sa.Column("lead_id", sa.Integer()))
        batch.add_column(
            sa.Column("has_responded", sa.Boolean(), server_default="0", nullable=False)
        )
        batch.add_column(sa.Column("first_responded_at", sa.Date()))
        batch.create_foreign_key(
            op.f("fk_campaign_members_lead_id_leads"), "leads", ["lead_id"], ["id"]
        )
    op.create_index(op.f("ix_campaign_members_campaign_id"), "campaign_members", ["campaign_id"])
    op.create_table(
        "process_entries",
        sa.Column("process", sa.String(length=120), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("step_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["step_id"], ["steps.id"], name=op.f("fk_process_entries_step_id_steps")
        ),
        sa.PrimaryKeyConstraint("process", "kind", name=op.f("pk_process_entries")),
    )
    with op.batch_alter_table("opportunities") as batch:
        batch.add_column(sa.Column("process", sa.String(length=120)))


def drop_reference(table: str, column: str, referred: str) -> None:
    """The reverse of :func:`add_reference`. SQLite cannot drop a foreign key column in
    place and a copy of the table would cascade, so there the (nullable) column stays."""
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint(op.f(f"fk_{table}_{column}_{referred}"), table, type_="foreignkey")
        op.drop_column(table, column)


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_constraint(op.f("fk_outbox_activity_id_activities"), type_="foreignkey")
        batch.drop_column("activity_id")
    drop_reference("activities", "campaign_id", "campaigns")
    with op.batch_alter_table("opportunities") as batch:
        batch.drop_column("process")
    op.drop_table("process_entries")
    op.drop_index(op.f("ix_campaign_members_campaign_id"), table_name="campaign_members")
    with op.batch_alter_table("campaign_members") as batch:
        batch.drop_constraint(op.f("fk_campaign_members_lead_id_leads"), type_="foreignkey")
        batch.drop_column("first_responded_at")
        batch.drop_column("has_responded")
        batch.drop_column("lead_id")
        batch.alter_column("person_id", existing_type=sa.Integer(), nullable=False)
    op.drop_index(op.f("ix_leads_email"), table_name="leads")
    op.drop_table("leads")
    with op.batch_alter_table("campaigns") as batch:
        for column in ("process", "is_active", "expected_revenue", "actual_cost", "budgeted_cost"):
            batch.drop_column(column)
    drop_reference("campaigns", "parent_id", "campaigns")
