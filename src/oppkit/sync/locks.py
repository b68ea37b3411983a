"""One agent at a time per synced object: a lock held in the shared database.

Why: two agents started on the same org and database must not sync the same objects at
once (double API use, racing checkpoints). PostgreSQL has session advisory locks, which
die with the connection; SQLite gets a lock row (``sync_locks``) with a heartbeat, and a
row whose holder stopped beating (a killed agent) is taken over.

Example::

    with sync_lock(engine, "salesforce:https://acme.my.salesforce.com", wait=0):
        ...  # sync
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, select, text, update

from ..db.engine import write_transaction
from ..db.schema import sync_locks
from ..errors import OppkitError
from ..liveness import process_gone, this_host

STALE_AFTER = timedelta(minutes=10)  # a holder on another host that stops beating
POLL_SECONDS = 1.0


class LockBusy(OppkitError):
    """Another agent holds the lock; exit code 1 with a clear message."""

    exit_code = 1


def _holder() -> str:
    return f"{this_host()}:{os.getpid()}"


def _holder_gone(holder: str) -> bool:
    """True when the holder was a process on this host that no longer runs (killed)."""
    host, _, pid = holder.rpartition(":")
    return process_gone(host, int(pid)) if pid.isdigit() else False


def _advisory_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextmanager
def sync_lock(engine: Engine, name: str, wait: float = 0.0) -> Iterator[None]:
    """Hold the lock ``name`` for the duration of the block, or raise :class:`LockBusy`.

    ``wait`` is how many seconds to wait for another holder to finish.
    """
    if engine.dialect.name == "postgresql":
        with _advisory_lock(engine, name, wait):
            yield
    else:
        with _row_lock(engine, name, wait):
            yield


@contextmanager
def _advisory_lock(engine: Engine, name: str, wait: float) -> Iterator[None]:
    key = _advisory_key(name)
    with engine.connect() as conn:
        deadline = time.monotonic() + wait
        while not conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}):
            conn.commit()
            if time.monotonic() >= deadline:
                raise LockBusy(f"another agent is running {name}; try again later (or pass --wait)")
            time.sleep(POLL_SECONDS)
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            conn.commit()


def _try_row(engine: Engine, name: str, holder: str) -> str | None:
    """Take the lock row if free or stale; returns the other holder when busy."""
    now = datetime.now(UTC)
    with write_transaction(engine) as conn:
        row = conn.execute(
            select(sync_locks.c.holder, sync_locks.c.heartbeat_at).where(sync_locks.c.name == name)
        ).first()
        alive = (
            row is not None
            and row.heartbeat_at > now - STALE_AFTER
            and not _holder_gone(row.holder)
        )
        if alive and row.holder != holder:
            return f"{row.holder} since its last heartbeat at {row.heartbeat_at:%H:%M:%S} UTC"
        conn.execute(delete(sync_locks).where(sync_locks.c.name == name))
        conn.execute(
            sync_locks.insert().values(name=name, holder=holder, acquired_at=now, heartbeat_at=now)
        )
    return None


def heartbeat(engine: Engine, name: str) -> None:
    """Keep a SQLite lock row fresh during a long run (no-op on PostgreSQL)."""
    if engine.dialect.name == "postgresql":
        return
    with write_transaction(engine) as conn:
        conn.execute(
            update(sync_locks)
            .where(sync_locks.c.name == name, sync_locks.c.holder == _holder())
            .values(heartbeat_at=datetime.now(UTC))
        )


@contextmanager
def _row_lock(engine: Engine, name: str, wait: float) -> Iterator[None]:
    holder = _holder()
    deadline = time.monotonic() + wait
    while (other := _try_row(engine, name, holder)) is not None:
        if time.monotonic() >= deadline:
            raise LockBusy(f"another agent is running {name} ({other}); try again later")
        time.sleep(POLL_SECONDS)
    try:
        yield
    finally:
        with write_transaction(engine) as conn:
            conn.execute(
                delete(sync_locks).where(sync_locks.c.name == name, sync_locks.c.holder == holder)
            )
