"""Schema migrations keep existing data when a database is upgraded."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from sqlalchemy import inspect, select, text

from oppkit.db.engine import (
    alembic_config,
    create_oppkit_engine,
    head_revision,
    migrate,
    write_transaction,
)
from oppkit.db.schema import accounts, activity_sources
from tests.support import engine_at, make_email, write_mbox


def test_upgrade_from_the_first_schema_keeps_rows(sqlite_url: str):
    engine = create_oppkit_engine(sqlite_url)
    with write_transaction(engine) as conn:
        config = alembic_config(engine)
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
    with write_transaction(engine) as conn:
        # raw SQL: the current table object would write columns the old schema lacks
        conn.execute(
            text(
                "INSERT INTO accounts (name, domain, source, source_id, is_deleted)"
                " VALUES ('Acme', 'acme.example', 'mail', 'acme.example', false)"
            )
        )
    assert "sync_locks" not in inspect(engine).get_table_names()

    assert migrate(engine) == head_revision()
    assert "sync_locks" in inspect(engine).get_table_names()
    assert "attributes" in {c["name"] for c in inspect(engine).get_columns("opportunities")}
    with engine.connect() as conn:
        assert conn.execute(select(accounts.c.name, accounts.c.domain)).all() == [
            ("Acme", "acme.example")
        ]


def test_workflow_migration_keeps_opportunities_and_their_members(sqlite_url: str):
    engine = create_oppkit_engine(sqlite_url)
    with write_transaction(engine) as conn:
        config = alembic_config(engine)
        config.attributes["connection"] = conn
        command.upgrade(config, "0003")
    with write_transaction(engine) as conn:
        conn.execute(
            text(
                "INSERT INTO people (id, email, source, source_id) VALUES (1, 'a@x.example', 'mail', 'a')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO opportunities (id, name, source, source_id) VALUES (1, 'Deal', 'oppkit', 'd')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO opportunity_people (opportunity_id, person_id, kind, source, source_id) VALUES (1, 1, 'member', 'oppkit', 'm')"
            )
        )
    assert migrate(engine) == head_revision()  # the head; 0004 is the one under test
    with engine.connect() as conn:
        assert conn.execute(text("SELECT name, step_id FROM opportunities")).all() == [
            ("Deal", None)
        ]
        assert conn.scalar(text("SELECT count(*) FROM opportunity_people")) == 1
        assert conn.scalar(text("SELECT stage_locked FROM accounts")) is None  # no accounts
    assert {"steps", "transitions", "links", "outbox", "lifecycle_history"} <= set(
        inspect(engine).get_table_names()
    )


def test_every_existing_activity_gets_its_own_source_row(sqlite_url: str):
    engine = engine_at(sqlite_url, "0005")
    with write_transaction(engine) as conn:
        conn.execute(
            text(
                "INSERT INTO activities (id, kind, occurred_at, source, source_id, is_deleted)"
                " VALUES (1, 'meeting', '2026-01-05 10:00:00.000000', 'calendar', 'u1', false),"
                " (2, 'task', '2026-01-06 10:00:00.000000', 'salesforce', '00T1', true)"
            )
        )
    assert migrate(engine) == head_revision()
    with engine.connect() as conn:
        rows = conn.execute(select(activity_sources).order_by(activity_sources.c.activity_id))
        assert [tuple(r) for r in rows] == [
            ("calendar", "u1", 1, False),
            ("salesforce", "00T1", 2, True),
        ]


def test_first_runs_started_together_on_a_fresh_database_all_succeed(
    fresh_db_url: str, tmp_path: Path
):
    mbox = write_mbox(tmp_path / "m.mbox", [
        make_email(sender="buyer@acme-robotics.example", to=["ava.patel@northwind.example"],
                   subject=f"hello {i}", body="b", when=datetime(2026, 3, 2, 9, i, tzinfo=UTC),
                   message_id=f"race-{i}@acme-robotics.example")
        for i in range(3)
    ])  # fmt: skip
    cli = [sys.executable, "-m", "oppkit.cli", "--db", fresh_db_url]
    commands = [[*cli, "sync", "mail", "--mbox", str(mbox)]] * 2 + [[*cli, "init"]]
    procs = [
        subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=dict(os.environ))
        for c in commands
    ]  # fmt: skip
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    engine = create_oppkit_engine(fresh_db_url)
    try:
        with engine.connect() as conn:
            assert conn.scalars(text("SELECT version_num FROM alembic_version")).all() == [
                head_revision()
            ]
            assert conn.scalar(text("SELECT count(*) FROM activities")) == 3
    finally:
        engine.dispose()
