"""The account's Sales tab: interactions (plans and results), plan items, stage actions,
agreements, cases and policies

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

import oppkit.db.schema

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

UTC = oppkit.db.schema.UTCDateTime
# row-level security on PostgreSQL (see 0008): a private deal's cases and policies, and
# the plans on its activities, are hidden from whoever may not see it
HIDDEN = "(SELECT oppkit_hidden_deals(current_user::text))"
HIDDEN_ACTIVITIES = "(SELECT oppkit_hidden_activities(current_user::text))"
POLICIES = {
    "cases": f"opportunity_id IS NULL OR opportunity_id NOT IN {HIDDEN}",
    "policies": f"opportunity_id IS NULL OR opportunity_id NOT IN {HIDDEN}",
    "interactions": f"activity_id NOT IN {HIDDEN_ACTIVITIES}",
    "plan_items": f"activity_id NOT IN {HIDDEN_ACTIVITIES}",
}


def _synced() -> list[sa.Column]:
    return [
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("source_id", sa.String(length=255), nullable=False),
        sa.Column("created_at", UTC()),
        sa.Column("updated_at", UTC()),
        sa.Column("is_deleted", sa.Boolean(), server_default="0", nullable=False),
    ]


def _fk(column: str, table: str, referred: str, ondelete: str | None = None):
    return sa.ForeignKeyConstraint(
        [column], [f"{referred}.id"], name=op.f(f"fk_{table}_{column}_{referred}"),
        ondelete=ondelete,
    )  # fmt: skip


def upgrade() -> None:
    op.create_table(
        "interactions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("activity_id", sa.Integer(), nullable=False),
        sa.Column("interaction_type", sa.String(length=40), nullable=False),
        sa.Column("follows_id", sa.Integer()),
        sa.Column("source_type", sa.String(length=60)),
        sa.Column("reason", sa.String(length=255)),
        sa.Column("planned_start", UTC()),
        sa.Column("planned_end", UTC()),
        sa.Column("location_comments", sa.Text()),
        sa.Column("description", sa.Text()),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("result_at", UTC()),
        sa.Column("result_type", sa.String(length=60)),
        sa.Column("result_comments", sa.Text()),
        sa.Column("result_description", sa.Text()),
        sa.Column("message", sa.JSON()),
        sa.Column("outbox_id", sa.Integer()),
        sa.Column("created_by_id", sa.Integer()),
        sa.Column("created_at", UTC(), nullable=False),
        sa.Column("updated_at", UTC()),
        _fk("activity_id", "interactions", "activities", "CASCADE"),
        _fk("follows_id", "interactions", "interactions"),
        _fk("outbox_id", "interactions", "outbox", "SET NULL"),
        _fk("created_by_id", "interactions", "people"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interactions")),
        sa.UniqueConstraint("activity_id", name=op.f("uq_interactions_activity_id")),
    )
    op.create_index(op.f("ix_interactions_follows_id"), "interactions", ["follows_id"])
    op.create_table(
        "stage_actions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("stage_name", sa.String(length=120), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("activity_kind", sa.String(length=20)),
        sa.Column("subject", sa.Text()),
        sa.Column("template", sa.Text()),
        sa.Column("sort_order", sa.Integer()),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stage_actions")),
        sa.UniqueConstraint("stage_name", "name", name=op.f("uq_stage_actions_stage_name_name")),
    )
    op.create_table(
        "agreements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("agreement_type", sa.String(length=60), nullable=False),
        sa.Column("start_date", sa.Date()),
        sa.Column("end_date", sa.Date()),
        sa.Column("contract_number", sa.String(length=60)),
        sa.Column("contract_status", sa.String(length=60)),
        sa.Column("description", sa.Text()),
        *_synced(),
        _fk("account_id", "agreements", "accounts"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agreements")),
        sa.UniqueConstraint("source", "source_id", name=op.f("uq_agreements_source_source_id")),
    )
    op.create_index(op.f("ix_agreements_account_id"), "agreements", ["account_id"])
    op.create_table(
        "cases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_number", sa.String(length=60)),
        sa.Column("subject", sa.Text()),
        sa.Column("status", sa.String(length=60)),
        sa.Column("priority", sa.String(length=40)),
        sa.Column("description", sa.Text()),
        sa.Column("account_id", sa.Integer()),
        sa.Column("person_id", sa.Integer()),
        sa.Column("opportunity_id", sa.Integer()),
        sa.Column("parent_id", sa.Integer()),
        sa.Column("is_formal", sa.Boolean(), server_default="1", nullable=False),
        *_synced(),
        _fk("account_id", "cases", "accounts"),
        _fk("person_id", "cases", "people"),
        _fk("opportunity_id", "cases", "opportunities"),
        _fk("parent_id", "cases", "cases"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cases")),
        sa.UniqueConstraint("source", "source_id", name=op.f("uq_cases_source_source_id")),
    )
    op.create_index(op.f("ix_cases_opportunity_id"), "cases", ["opportunity_id"])
    op.create_index(op.f("ix_cases_account_id"), "cases", ["account_id"])
    op.create_table(
        "policies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("policy_number", sa.String(length=60), nullable=False),
        sa.Column("name", sa.String(length=255)),
        sa.Column("policy_type", sa.String(length=60)),
        sa.Column("status", sa.String(length=40)),
        sa.Column("account_id", sa.Integer()),
        sa.Column("opportunity_id", sa.Integer()),
        sa.Column("start_date", sa.Date()),
        sa.Column("end_date", sa.Date()),
        sa.Column("premium", sa.Float()),
        *_synced(),
        _fk("account_id", "policies", "accounts"),
        _fk("opportunity_id", "policies", "opportunities"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policies")),
        sa.UniqueConstraint("source", "source_id", name=op.f("uq_policies_source_source_id")),
    )
    op.create_index(op.f("ix_policies_opportunity_id"), "policies", ["opportunity_id"])
    op.create_table(
        "plan_items",
        sa.Column("interaction_id", sa.Integer(), nullable=False),
        sa.Column("activity_id", sa.Integer(), nullable=False),
        _fk("interaction_id", "plan_items", "interactions", "CASCADE"),
        _fk("activity_id", "plan_items", "activities", "CASCADE"),
        sa.PrimaryKeyConstraint("interaction_id", "activity_id", name=op.f("pk_plan_items")),
    )
    op.create_index(op.f("ix_plan_items_activity_id"), "plan_items", ["activity_id"])
    if op.get_bind().dialect.name == "postgresql":
        for table, using in POLICIES.items():
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"CREATE POLICY oppkit_private ON {table} USING ({using})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in POLICIES:
            op.execute(f"DROP POLICY IF EXISTS oppkit_private ON {table}")
    for table in ("plan_items", "policies", "cases", "agreements", "stage_actions",
                  "interactions"):  # fmt: skip
        op.drop_table(table)
