"""Engine set-up for SQLite and PostgreSQL, and schema migration with Alembic.

SQLite runs in WAL mode with a busy timeout and foreign keys on, so agents and a
notebook can share one file. Every entry point calls :func:`connect_engine`, which
migrates lazily (once per process and URL).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

from ..errors import ConfigError, DatabaseError

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_CACHE_KIB = 32_768


def _normalise_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # 32 MB of page cache (the default is 2 MB): a large sync touches index pages all
    # over a table; the cache grows only as far as it is used.
    cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    cursor.close()


def _sqlite_begin(conn) -> None:  # noqa: ANN001
    # Writers take the lock up front, so two syncs queue on busy_timeout instead of
    # failing with "database is locked" when a read transaction upgrades to a write.
    # Readers (the Kit) begin deferred and never wait for a writer (WAL).
    immediate = conn.get_execution_options().get("oppkit_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction for writing: on SQLite it holds the write lock from the start."""
    with engine.connect() as conn:
        conn.execution_options(oppkit_write=True)
        with conn.begin():
            yield conn


def create_oppkit_engine(url: str) -> Engine:
    """An Engine for ``url`` with oppkit's connection settings (no migration)."""
    try:
        parsed = make_url(_normalise_url(url))
    except ArgumentError as exc:
        raise ConfigError(f"not a database URL: {url!r}") from exc
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            folder = Path(database).expanduser().parent
            if not folder.exists():
                raise ConfigError(f"database folder does not exist: {folder}")
        engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        # Let SQLAlchemy, not pysqlite, manage transactions (needed for BEGIN IMMEDIATE).
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(
            engine,
            "connect",
            lambda dbapi_conn, _r: setattr(dbapi_conn, "isolation_level", None),
        )
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    try:
        return create_engine(parsed, pool_pre_ping=True)
    except (ArgumentError, ImportError, SQLAlchemyError) as exc:
        raise ConfigError(f"cannot use database URL {parsed!r}: {exc}") from exc


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


@cache
def head_revision() -> str:
    """The newest schema revision this oppkit ships (what :func:`migrate` brings a database to)."""
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()


# pg_advisory_xact_lock key of the schema upgrade: any fixed 64-bit number ("oppkit" + 1)
MIGRATION_LOCK_KEY = 0x6F70706B6974_01


def migrate(engine: Engine) -> str | None:
    """Create or upgrade the schema to the newest revision; returns the revision.

    Safe when several processes start on a fresh database at once: the upgrade runs under
    a lock, SQLite's write lock (BEGIN IMMEDIATE) or, on PostgreSQL, a transaction-level
    advisory lock; whoever waited for it finds the schema at head and does nothing.
    """
    head = head_revision()
    try:
        with write_transaction(engine) as conn:  # on SQLite: BEGIN IMMEDIATE
            if _revision(conn) == head:  # the usual case: nothing to do, no lock
                return head
            if conn.dialect.name == "postgresql":
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                )
                if _revision(conn) == head:  # whoever held the lock did the upgrade
                    return head
            config = alembic_config(engine)
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
            return _revision(conn)
    except OperationalError as exc:
        raise DatabaseError(f"cannot reach the database: {_first_line(exc)}") from exc


def _revision(conn: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def connect_engine(url: str, *, migrate_schema: bool = True) -> Engine:
    """An Engine for ``url``, with the schema migrated to head (once per process)."""
    engine = create_oppkit_engine(url)
    if migrate_schema and url not in _MIGRATED:
        migrate(engine)
        _MIGRATED.add(url)
    return engine


_MIGRATED: set[str] = set()


def has_schema(engine: Engine) -> bool:
    return inspect(engine).has_table("activities")
