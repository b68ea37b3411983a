"""The ``sync_runs`` rows: one per run, with its counts, its outcome and a heartbeat.

Why: ``oppkit status`` and ``kit.sync_status()`` tell how fresh each source is from
these rows alone. A run records what it synced (agent, source label, target) and, while
it runs, its host, process id and a heartbeat written by a small daemon thread. A run
that ends records done, failed (with the error's first line) or interrupted (stopped by
SIGINT or SIGTERM). A run whose process was killed outright cannot record its end: the
next run marks it interrupted (``oppkit.liveness`` says when a run is gone), and until
then readers show it so.

Example::

    with recorded_run(engine, "mail", "file", "/data/ava.mbox") as run:
        run.counts = summary          # anything with read, written, skipped, errors
        ...                           # the sync
    record_failure(engine, "mail", "file", "/data/gone.mbox", "mailbox not found: ...")
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from ..db.engine import write_transaction
from ..db.schema import sync_runs
from ..errors import DatabaseError
from ..liveness import HEARTBEAT_SECONDS, interrupted_message, run_gone, this_host
from ..redact import error_line, one_line
from ..stops import Terminated, stopping

log = logging.getLogger(__name__)

_ACTIVE: set[int] = set()  # runs this process has under way (never "gone")
_ACTIVE_LOCK = threading.Lock()


def outcome(exc: BaseException) -> tuple[str, str]:
    """(status, message) of a run that ended with ``exc``."""
    if isinstance(exc, Terminated):
        return "interrupted", "stopped (SIGTERM)"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", "interrupted (SIGINT)"
    return ("interrupted" if stopping() else "failed"), error_line(exc)  # redacted: stored


def mark_interrupted(engine: Engine, now: datetime | None = None) -> int:
    """Mark every run left 'running' by a process that is gone as interrupted; how many."""
    now = now or datetime.now(UTC)
    host, pid = this_host(), os.getpid()
    with write_transaction(engine) as conn:
        rows = conn.execute(
            select(
                sync_runs.c.id,
                sync_runs.c.host,
                sync_runs.c.pid,
                sync_runs.c.heartbeat_at,
                sync_runs.c.started_at,
            ).where(sync_runs.c.status == "running")
        ).all()
        with _ACTIVE_LOCK:
            active = set(_ACTIVE)
        gone = [
            row
            for row in rows
            if row.id not in active
            and (
                (row.host == host and row.pid == pid)  # this process runs nothing else
                or run_gone(
                    "running", row.host, row.pid, row.heartbeat_at or row.started_at, now=now
                )  # fmt: skip
            )
        ]
        for row in gone:
            conn.execute(
                update(sync_runs)
                .where(sync_runs.c.id == row.id, sync_runs.c.status == "running")
                .values(
                    status="interrupted",
                    finished_at=row.heartbeat_at or row.started_at,
                    message=interrupted_message(row.host, row.pid),
                )
            )
    return len(gone)


class _Heartbeat(threading.Thread):
    """Stamps ``heartbeat_at`` of one run every HEARTBEAT_SECONDS until stopped."""

    def __init__(self, engine: Engine, run_id: int) -> None:
        super().__init__(name=f"oppkit-heartbeat-{run_id}", daemon=True)
        self.engine, self.run_id = engine, run_id
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(HEARTBEAT_SECONDS):
            try:
                with write_transaction(self.engine) as conn:
                    conn.execute(
                        update(sync_runs)
                        .where(sync_runs.c.id == self.run_id, sync_runs.c.status == "running")
                        .values(heartbeat_at=datetime.now(UTC))
                    )
            except SQLAlchemyError as exc:  # busy or unreachable: the next beat may do
                log.debug("heartbeat of sync run %s failed: %s", self.run_id, exc)


class RecordedRun:
    """A run under way: its row id and the counts to record when it ends."""

    def __init__(self, engine: Engine, run_id: int) -> None:
        self.engine, self.id = engine, run_id
        self.counts: Any = None  # read, written, skipped, errors (a RunSummary)
        self._heartbeat = _Heartbeat(engine, run_id)
        self._heartbeat.start()

    def finish(self, status: str, message: str | None = None) -> None:
        self._heartbeat.stopped.set()
        values = {
            name: getattr(self.counts, name, 0) or 0
            for name in ("read", "written", "skipped", "errors")
        }
        try:
            with write_transaction(self.engine) as conn:
                conn.execute(
                    update(sync_runs)
                    .where(sync_runs.c.id == self.id)
                    .values(finished_at=datetime.now(UTC), status=status, message=message, **values)
                )
        except SQLAlchemyError:
            log.warning("could not record the end of sync run %s", self.id)
        finally:
            with _ACTIVE_LOCK:
                _ACTIVE.discard(self.id)


def start_run(
    engine: Engine, agent: str, source: str | None = None, target: str | None = None
) -> RecordedRun:
    """Record a run as running (after marking the runs of gone processes interrupted)."""
    now = datetime.now(UTC)
    try:
        mark_interrupted(engine, now)
        with write_transaction(engine) as conn:
            run_id = conn.execute(
                insert(sync_runs).values(
                    **_new_row(agent, source, target, now), heartbeat_at=now, status="running"
                )
            ).inserted_primary_key[0]
    except OperationalError as exc:
        raise DatabaseError(f"cannot reach the database: {str(exc.orig).strip()}") from exc
    with _ACTIVE_LOCK:
        _ACTIVE.add(run_id)
    return RecordedRun(engine, run_id)


@contextmanager
def recorded_run(
    engine: Engine, agent: str, source: str | None = None, target: str | None = None
) -> Iterator[RecordedRun]:
    """A ``sync_runs`` row for the block: done, failed or interrupted as the block ends."""
    run = start_run(engine, agent, source, target)
    status, message = "failed", None
    try:
        yield run
        status = "done"
    except BaseException as exc:
        status, message = outcome(exc)
        raise
    finally:
        run.finish(status, message)


def record_failure(
    engine: Engine, agent: str, source: str | None, target: str | None, message: str
) -> None:
    """Record a run that failed before it could start (a missing path, a bad option)."""
    now = datetime.now(UTC)
    try:
        with write_transaction(engine) as conn:
            conn.execute(
                insert(sync_runs).values(
                    **_new_row(agent, source, target, now),
                    finished_at=now,
                    status="failed",
                    message=one_line(message),
                )
            )
    except SQLAlchemyError:
        log.warning("could not record the failed %s run", agent)


def _new_row(agent: str, source: str | None, target: str | None, now: datetime) -> dict:
    if target is not None and len(target) > 500:
        target = target[:499] + "…"
    return {"agent": agent, "source": source, "target": target, "started_at": now,
            "host": this_host(), "pid": os.getpid()}  # fmt: skip
