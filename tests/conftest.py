"""Database fixtures: every shared behaviour runs on SQLite (a file in tmp_path) and on a
real PostgreSQL (127.0.0.1:5432, a fresh database per test session, emptied per test)."""

from __future__ import annotations

import gc
import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, text

from oppkit.config import Settings
from oppkit.db.engine import connect_engine
from tests.servers.net import free_port
from tests.servers.smtp import Inbox
from tests.support import INTERNAL, write_salesforce_export

PG_ADMIN_URL = os.environ.get(
    "OPPKIT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@contextmanager
def _new_pg_database() -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database (no schema), dropped afterwards."""
    name = f"oppkit_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as conn:
        conn.execute(
            text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
            {"n": name},
        )
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    with _new_pg_database() as url:
        connect_engine(url).dispose()  # migrate once
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL with nothing in it yet (no schema), on each backend; its own per test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.sqlite'}"
        return
    with _new_pg_database() as url:
        yield url


def _empty_postgres(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        tables = conn.scalars(
            text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
            )
        ).all()
        if tables:
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL with the oppkit schema, empty, on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'oppkit.sqlite'}"
    url = request.getfixturevalue("pg_database")
    _empty_postgres(url)
    return url


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """The PostgreSQL database only, with the oppkit schema, empty (a team's database)."""
    _empty_postgres(pg_database)
    return pg_database


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'oppkit.sqlite'}"


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(database_url=db_url, internal_domains=INTERNAL)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never touch the user's real database or config."""
    monkeypatch.setenv("OPPKIT_INTERNAL_DOMAINS", ",".join(INTERNAL))
    monkeypatch.delenv("OPPKIT_DATABASE_URL", raising=False)
    monkeypatch.delenv("OPPKIT_CONFIG", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))


@pytest.fixture(autouse=True)
def _close_widgets(request: pytest.FixtureRequest) -> Iterator[None]:
    """Widgets a test made are closed after it: ipywidgets keeps every open widget (and so
    its Kit and the Kit's pooled connections) alive otherwise, and PostgreSQL takes only
    so many clients."""
    yield
    ipywidgets = sys.modules.get("ipywidgets")
    if ipywidgets is None:
        return
    ipywidgets.Widget.close_all()
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and callspec.params.get("db_url") == "postgresql":
        gc.collect()  # the Kits' engines go, and their connections with them


@pytest.fixture
def export(tmp_path: Path) -> Path:
    """A small Salesforce Data Export folder (see tests.support.write_salesforce_export)."""
    return write_salesforce_export(tmp_path / "sf")


@pytest.fixture
def smtp_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Inbox]:
    """A real SMTP server (aiosmtpd, plain: no STARTTLS); OPPKIT_SMTP_HOST/PORT point at it."""
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    inbox.port = controller.port
    monkeypatch.setenv("OPPKIT_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("OPPKIT_SMTP_PORT", str(controller.port))
    monkeypatch.setenv("OPPKIT_SMTP_STARTTLS", "0")
    monkeypatch.delenv("OPPKIT_SMTP_PASSWORD", raising=False)
    yield inbox
    controller.stop()


@pytest.fixture
def sf_fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Salesforce retries without the production back-off (tests fail in seconds)."""
    import oppkit.sources.salesforce_client as client

    monkeypatch.setattr(client, "RETRY_MAX_WAIT", 0.05)


@pytest.fixture
def fake(org, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN001, ANN201
    """The wire-level fake Salesforce serving the module's ``org`` fixture over HTTPS."""
    from tests.fakes.salesforce import FakeSalesforce

    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    with FakeSalesforce(org, session_id="00DFk!s3cr3t-session-token") as server:
        yield server
