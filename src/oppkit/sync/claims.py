"""Many agents, one database: a source is synced by one process at a time, once a cycle.

Why: a team runs several ``oppkit agents run`` processes (on one or many machines)
against one PostgreSQL, each configured with the same sources. Work must spread over
them without two syncing one source at once, and without a source synced twice in one
cycle. Every locked source (an IMAP mailbox, an org, a calendar) is claimed through
the database: its sync lock (a PostgreSQL advisory lock, which dies with a killed
process's connection; a lock row with a heartbeat on SQLite), taken without waiting.
Inside the lock, a source synced successfully by anyone less than 90% of its schedule
ago is not synced again. A process that dies releases its sources: the next process
whose schedule comes round claims them.

``oppkit agents run`` wraps each run in :func:`shared`; one-off commands never do, so
they keep their own rules (wait for a lock or fail).

Example::

    with shared(every=900):
        summaries = run_agent(args)   # a busy or fresh source: a summary saying so
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func, select

from ..db.schema import sync_runs

FRESH_SHARE = 0.9  # synced by anyone within this share of the schedule: not due
_every: ContextVar[float | None] = ContextVar("oppkit_shared_every", default=None)


@contextmanager
def shared(every: float) -> Iterator[None]:
    """Runs in this block claim their sources and skip those another agent has."""
    token = _every.set(float(every))
    try:
        yield
    finally:
        _every.reset(token)


def sharing() -> float | None:
    """The schedule (seconds) of the shared run under way, or None."""
    return _every.get()


def synced_since(
    engine: Engine, agent: str, source: str | None, target: str | None, every: float
) -> datetime | None:
    """When the source last synced successfully, if that was within this cycle."""
    since = datetime.now(UTC) - timedelta(seconds=every * FRESH_SHARE)
    with engine.connect() as conn:
        last = conn.scalar(
            select(func.max(sync_runs.c.finished_at)).where(
                sync_runs.c.agent == agent,
                sync_runs.c.source == source,
                sync_runs.c.target == target,
                sync_runs.c.status == "done",
            )
        )
    if last is not None and last.tzinfo is None:
        last = last.replace(tzinfo=UTC)
    return last if last is not None and last >= since else None


__all__ = ["FRESH_SHARE", "shared", "sharing", "synced_since"]
