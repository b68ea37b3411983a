"""A first load into an empty timeline builds its secondary indexes once, at the end.

Why: a first Salesforce sync writes hundreds of thousands of activities and their
participants. Keeping four secondary indexes of ``activities`` (and one each of
``activity_people`` and ``activity_sources``) sorted row by row costs more than inserting the rows themselves,
while building an index over the finished table is one sort. So when a run starts and
one of these tables is empty, its secondary indexes are dropped and built again when the
run ends, whether it ends well or not. Unique constraints stay: upserts and the
no-duplicate guarantee rely on them.

A run killed in between leaves the indexes missing; every run begins by creating the
missing ones (the tables are no longer empty then), so the next sync repairs them. Reads
are correct meanwhile, only slower.

Example::

    with indexes_deferred(engine):
        ...  # write the first batches
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, Index, Table, inspect, literal, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateIndex, DropIndex

from ..db.engine import SQLITE_CACHE_KIB, write_transaction
from ..db.schema import activities, activity_people, activity_sources
from ..stops import stopping

log = logging.getLogger(__name__)

DEFERRABLE: tuple[Table, ...] = (activities, activity_people, activity_sources)
INDEX_BUILD_CACHE_KIB = 8_192


def _secondary(table: Table) -> list[Index]:
    return [index for index in table.indexes if not index.unique]


@contextmanager
def _small_sort_memory(conn: Connection) -> Iterator[None]:
    """SQLite sorts an index build in memory up to its page cache size, then in temp
    files; a smaller cache for the build keeps the sync's peak memory flat (and took
    no longer for 500,000 activities)."""
    if conn.dialect.name != "sqlite":
        yield
        return
    conn.exec_driver_sql(f"PRAGMA cache_size=-{INDEX_BUILD_CACHE_KIB}")
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")


def ensure_indexes(engine: Engine, tables: tuple[Table, ...] = DEFERRABLE) -> list[str]:
    """Create the secondary indexes of ``tables`` that are missing; returns their names."""
    with engine.connect() as conn:
        have = {t.name: {i["name"] for i in inspect(conn).get_indexes(t.name)} for t in tables}
    created = []
    for table in tables:
        for index in _secondary(table):
            if index.name in have[table.name]:
                continue
            try:
                with write_transaction(engine) as conn, _small_sort_memory(conn):
                    conn.execute(CreateIndex(index, if_not_exists=True))
                created.append(str(index.name))
            except DBAPIError as exc:  # another run built it at the same moment
                log.warning("could not create index %s: %s", index.name, exc.orig)
    return created


@contextmanager
def indexes_deferred(engine: Engine) -> Iterator[list[str]]:
    """Drop the secondary indexes of the empty deferrable tables; rebuild them on exit.

    Yields the names of the tables whose indexes wait (none when every table has rows).
    """
    ensure_indexes(engine)
    with engine.connect() as conn:  # a read: most runs find rows and take no write lock
        empty = [
            t
            for t in DEFERRABLE
            if conn.execute(select(literal(1)).select_from(t).limit(1)).first() is None
        ]
    if empty:
        with write_transaction(engine) as conn:
            for table in empty:
                for index in _secondary(table):
                    conn.execute(DropIndex(index, if_exists=True))
    try:
        yield [t.name for t in empty]
    finally:
        if empty and stopping():  # asked to stop: the next sync builds them first thing
            log.info("indexes of %s wait for the next sync", ", ".join(t.name for t in empty))
        elif empty:
            try:
                ensure_indexes(engine, tuple(empty))
            except Exception as exc:  # noqa: BLE001 - the run's own error matters more
                if stopping():  # the stop cut the rebuild short: the one line is the stop's
                    log.info(
                        "indexes of %s wait for the next sync", ", ".join(t.name for t in empty)
                    )
                else:
                    log.error("indexes not rebuilt (the next sync will): %s", exc)
