"""On a team's PostgreSQL, who you are is your login, not what you state.

Each person connects as their own database role (``oppkit team grant``); row-level
security then hides a private deal and everything on it from anyone who may not see it,
through oppkit or with plain SQL, whatever name the notebook states. Real PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

import oppkit
from oppkit.cli import main
from oppkit.db.engine import connect_engine
from oppkit.sources.records import ActivityRecord
from oppkit.sync import SyncRunner, sync_salesforce_export

AVA, BEN = "ava.patel@northwind.example", "ben.okafor@northwind.example"


@pytest.fixture
def roles(db_url: str, settings, export: Path) -> Iterator[dict[str, str]]:
    if not db_url.startswith("postgresql"):
        pytest.skip("database roles are PostgreSQL's")
    sync_salesforce_export(export, settings=settings)
    call = ActivityRecord(
        source="salesforce", source_id="00T00000000000SAAA", kind="call",
        subject="secret terms", occurred_at=datetime(2026, 3, 2, 9, tzinfo=UTC),
        opportunity_ref="006000000000004AAA", owner_ref="005000000000002AAA",
    )  # fmt: skip
    SyncRunner(connect_engine(db_url), settings, agent="test").run([call])
    suffix = uuid.uuid4().hex[:8]
    names = {"ava": f"oppkit_ava_{suffix}", "ben": f"oppkit_ben_{suffix}"}
    assert main(["team", "grant", names["ava"], AVA, "--create", "--db", db_url]) == 0
    assert main(["team", "grant", names["ben"], BEN, "--create", "--db", db_url]) == 0
    yield {who: db_url.replace("postgres@", f"{role}@", 1) for who, role in names.items()}
    admin = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
    with admin.begin() as conn:
        for role in names.values():
            conn.execute(text(f"DROP OWNED BY {role}"))
            conn.execute(text(f"DROP ROLE {role}"))
    admin.dispose()


def _plain_sql(url: str, sql: str) -> list:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    finally:
        engine.dispose()


def test_a_role_sees_only_what_its_person_may_see_whatever_it_states(roles):
    ava = oppkit.connect(roles["ava"])
    assert ava.user == AVA  # the login says who this is
    assert "Globex secret" not in set(ava.opportunities()["name"])
    assert "secret terms" not in set(ava.timeline()["subject"])
    with pytest.raises(PermissionError, match="cannot name"):
        oppkit.connect(roles["ava"], user=BEN)  # stating Ben's name does not make her Ben

    # plain SQL, around oppkit: the database itself keeps the deal and what hangs on it out
    assert ("Globex secret",) not in _plain_sql(roles["ava"], "SELECT name FROM opportunities")
    assert ("secret terms",) not in _plain_sql(roles["ava"], "SELECT subject FROM activities")
    assert ("Globex analytics",) in _plain_sql(roles["ava"], "SELECT name FROM opportunities")
    with pytest.raises(Exception, match="permission denied"):
        _plain_sql(roles["ava"], "UPDATE database_users SET role_name = role_name")

    ben = oppkit.connect(roles["ben"])
    assert "Globex secret" in set(ben.opportunities()["name"])
    assert ("secret terms",) in _plain_sql(roles["ben"], "SELECT subject FROM activities")


def test_a_member_added_by_the_owner_sees_the_deal_through_her_role(roles):
    ben = oppkit.connect(roles["ben"])
    oppkit.actions.add_member(ben, "Globex secret", AVA)
    assert ("Globex secret",) in _plain_sql(roles["ava"], "SELECT name FROM opportunities")
    oppkit.actions.remove_member(ben, "Globex secret", AVA)
    assert ("Globex secret",) not in _plain_sql(roles["ava"], "SELECT name FROM opportunities")


def test_team_commands_refuse_sqlite_and_bad_role_names(sqlite_url: str, capsys):
    assert main(["team", "grant", "ava", AVA, "--db", sqlite_url]) == 2
    assert "PostgreSQL" in capsys.readouterr().err
