"""database_users and, on PostgreSQL, row-level security for private deals

Why in the database: ``connect(user=...)`` is a name the caller states. On a team's
PostgreSQL each person connects as their own login role (``oppkit team grant``); the
policies below then hide every private deal that person may not see -- and what hangs
on it: activities, who took part, alerts, history, members, links, queued messages --
from any query, through oppkit or not. The table owner (the role the agents and
migrations use) is exempt, as PostgreSQL exempts table owners.

The hidden deals are computed once per query by SECURITY DEFINER functions (they read
as the owner, so the policies never recurse into each other).

Revision ID: 0008
Revises: 0007_activity_sources
"""

import sqlalchemy as sa
from alembic import op

import oppkit.db.schema

revision = "0008"
down_revision = "0007_activity_sources"
branch_labels = None
depends_on = None

ON_A_DEAL = ("activities", "alerts", "stage_history", "links", "outbox")
ON_AN_ACTIVITY = ("activity_people", "activity_sources")
FUNCTIONS = """
CREATE OR REPLACE FUNCTION oppkit_viewer(viewer text) RETURNS integer
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT person_id FROM database_users WHERE role_name = viewer
$$;

CREATE OR REPLACE FUNCTION oppkit_hidden_deals(viewer text) RETURNS SETOF integer
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT o.id FROM opportunities o
  WHERE o.is_private
    AND o.owner_id IS DISTINCT FROM oppkit_viewer(viewer)
    AND NOT EXISTS (
      SELECT 1 FROM opportunity_people m
      WHERE m.opportunity_id = o.id AND m.kind = 'member' AND NOT m.is_deleted
        AND m.person_id = oppkit_viewer(viewer))
$$;

CREATE OR REPLACE FUNCTION oppkit_hidden_activities(viewer text) RETURNS SETOF integer
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
  SELECT a.id FROM activities a
  WHERE a.opportunity_id IN (SELECT oppkit_hidden_deals(viewer))
$$;
"""
HIDDEN = "(SELECT oppkit_hidden_deals(current_user::text))"


def _policy(table: str, using: str) -> str:
    return (
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;\n"
        f"CREATE POLICY oppkit_private ON {table} USING ({using});"  # and checks the same
    )


def upgrade() -> None:
    op.create_table(
        "database_users",
        sa.Column("role_name", sa.String(length=63), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("created_at", oppkit.db.schema.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["people.id"],
            name=op.f("fk_database_users_person_id_people"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("role_name", name=op.f("pk_database_users")),
    )
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite is one person's file: there is no one else to keep out
    op.execute(FUNCTIONS)
    op.execute(_policy("opportunities", f"id NOT IN {HIDDEN}"))
    op.execute(_policy("opportunity_people", f"opportunity_id NOT IN {HIDDEN}"))
    for table in ON_A_DEAL:
        op.execute(_policy(table, f"opportunity_id IS NULL OR opportunity_id NOT IN {HIDDEN}"))
    for table in ON_AN_ACTIVITY:
        op.execute(
            _policy(
                table, "activity_id NOT IN (SELECT oppkit_hidden_activities(current_user::text))"
            )
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in ("opportunities", "opportunity_people", *ON_AN_ACTIVITY, *ON_A_DEAL):
            op.execute(f"DROP POLICY IF EXISTS oppkit_private ON {table}")
            op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
        for name in ("oppkit_hidden_activities", "oppkit_hidden_deals", "oppkit_viewer"):
            op.execute(f"DROP FUNCTION IF EXISTS {name}(text)")
    op.drop_table("database_users")
