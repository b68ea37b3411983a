"""How fresh each source is: ``kit.sync_status()`` and ``oppkit status``.

One row per configured source -- each ``[[agents]]`` entry of oppkit.toml, per target
it syncs -- and per agent, source and target seen in ``sync_runs`` that no entry names.
Each row tells the last success and its age, the last run's status and counts, the last
error, and two flags a notebook or a widget can badge:

- ``stale``: the last success is older than :data:`STALE_SCHEDULES` times the entry's
  schedule, or there was none yet (sources without a schedule are never stale);
- ``failing``: the last run that ended failed.

A run left 'running' by a process that is gone (killed with ``kill -9``, a power cut)
shows as ``interrupted`` (see :mod:`oppkit.liveness`), never as running forever.

Sync runs hold no deal data: every user sees the same frame.

Example::

    status = kit.sync_status()
    status[status["stale"] | status["failing"]][["agent", "target", "age", "last_error"]]
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import func, select

from ..config import Settings, load_settings
from ..db.schema import sync_runs
from ..liveness import interrupted_message, run_gone
from ..scope import ScopeLike, scope_of
from ..sources.agents_config import agent_entries, entry_targets

__all__ = ["STALE_SCHEDULES", "SYNC_STATUS_COLUMNS", "describe_age", "sync_status"]

STALE_SCHEDULES = 2  # stale once the last success is older than twice the schedule
SYNC_STATUS_COLUMNS = [
    "agent", "source", "target", "last_success", "age", "last_status", "last_error",
    "last_error_at", "last_read", "last_written", "last_skipped", "last_run_at", "schedule",
    "stale", "failing", "warning", "name",
]  # fmt: skip
_ENDED = ("done", "failed", "interrupted")
_KEY = (sync_runs.c.agent, sync_runs.c.source, sync_runs.c.target)


@dataclass
class _Runs:
    """The runs of one key (or of several, merged) that the status is made of."""

    last: Any = None  # the newest run
    ended: Any = None  # the newest run that ended (a gone run counts as interrupted)
    success: Any = None  # the newest done run
    error: Any = None  # the newest failed or interrupted run
    keys: list[tuple] = field(default_factory=list)

    def merge(self, other: _Runs) -> None:
        for slot in ("last", "ended", "success", "error"):
            mine, theirs = getattr(self, slot), getattr(other, slot)
            if theirs is not None and (mine is None or theirs.id > mine.id):
                setattr(self, slot, theirs)
        self.keys += other.keys


@dataclass(frozen=True)
class _Run:
    """A sync_runs row, with a run whose process is gone shown as interrupted."""

    id: int
    status: str
    started_at: datetime
    finished_at: datetime | None
    read: int
    written: int
    skipped: int
    message: str | None


def _newest_ids(conn, where=None) -> dict[tuple, int]:  # noqa: ANN001
    stmt = select(*_KEY, func.max(sync_runs.c.id)).group_by(*_KEY)
    if where is not None:
        stmt = stmt.where(where)
    return {(a, s, t): i for a, s, t, i in conn.execute(stmt)}


def _runs_by_key(engine, now: datetime) -> dict[tuple, _Runs]:  # noqa: ANN001
    with engine.connect() as conn:
        slots = {
            "last": _newest_ids(conn),
            "ended": _newest_ids(conn, sync_runs.c.status.in_(_ENDED)),
            "success": _newest_ids(conn, sync_runs.c.status == "done"),
            "error": _newest_ids(conn, sync_runs.c.status.in_(("failed", "interrupted"))),
        }
        ids = {i for ids in slots.values() for i in ids.values()}
        rows = {
            row.id: row
            for row in conn.execute(select(sync_runs).where(sync_runs.c.id.in_(ids)))
        } if ids else {}  # fmt: skip
    found: dict[tuple, _Runs] = {}
    for key in slots["last"]:
        runs = _Runs(keys=[key])
        for slot, ids_of in slots.items():
            if key in ids_of:
                setattr(runs, slot, _run_of(rows[ids_of[key]], now))
        if runs.last.status == "interrupted":  # gone while it ran: it ended, badly
            runs.ended = runs.error = runs.last
        found[key] = runs
    return found


def _run_of(row, now: datetime) -> _Run:  # noqa: ANN001
    status, message, finished = row.status, row.message, row.finished_at
    if run_gone(status, row.host, row.pid, row.heartbeat_at or row.started_at, now=now):
        status, finished = "interrupted", row.heartbeat_at or row.started_at
        message = interrupted_message(row.host, row.pid)
    return _Run(row.id, status or "unknown", row.started_at, finished, row.read, row.written,
                row.skipped, message)  # fmt: skip


def _matching(found: dict[tuple, _Runs], agent: str, source: str | None,
              target: str | None) -> Iterable[tuple]:  # fmt: skip
    for key in found:
        if key[0] == agent and source in (None, key[1]) and target in (None, key[2]):
            yield key


def sync_status(
    scope: ScopeLike, *, now: datetime | None = None, settings: Settings | None = None
) -> pd.DataFrame:
    """One row per configured source (and per source seen syncing): how fresh it is.

    Columns: agent, source, target, last_success, age, last_status (done, failed,
    interrupted, running, never), last_error, last_error_at, last_read, last_written,
    last_skipped (the counts of the last run that ended), last_run_at, schedule, stale,
    failing, warning (a sentence, or None), name (the ``[[agents]]`` entry's).
    ``settings`` (default: oppkit.toml / OPPKIT_CONFIG) gives the schedules.

    >>> kit.sync_status()[["agent", "target", "last_success", "age", "stale", "failing"]]
    """
    scope = scope_of(scope)
    now = now or datetime.now(UTC)
    settings = settings or load_settings()
    found = _runs_by_key(scope.engine, now)
    used: set[tuple] = set()
    rows = []
    entries, _problems = agent_entries(settings)  # `oppkit agents check` reports problems
    for entry in entries:
        for source, target in entry_targets(entry, settings):
            runs = _Runs()
            for key in _matching(found, entry.agent, source, target):
                runs.merge(found[key])
                used.add(key)
            sources = {k[1] for k in runs.keys}
            targets = {k[2] for k in runs.keys}
            rows.append(_row(
                entry.agent,
                source or (sources.pop() if len(sources) == 1 else None),
                target or (targets.pop() if len(targets) == 1 else None),
                runs, timedelta(seconds=entry.every), entry.name, now,
            ))  # fmt: skip
    for key in sorted(set(found) - used, key=lambda k: tuple(str(x or "") for x in k)):
        rows.append(_row(*key, found[key], None, None, now))
    df = pd.DataFrame(rows, columns=SYNC_STATUS_COLUMNS)
    for column in ("last_success", "last_error_at", "last_run_at"):
        df[column] = pd.to_datetime(df[column], utc=True)
    for column in ("age", "schedule"):
        df[column] = pd.to_timedelta(df[column])
    for column in ("last_read", "last_written", "last_skipped"):
        df[column] = df[column].astype("Int64")
    df["stale"] = df["stale"].astype(bool)
    df["failing"] = df["failing"].astype(bool)
    return scope.tag(df, "sync_status")


def _row(agent: str, source: str | None, target: str | None, runs: _Runs,
         schedule: timedelta | None, name: str | None, now: datetime) -> dict:  # fmt: skip
    success = runs.success.finished_at if runs.success is not None else None
    age = now - success if success is not None else None
    stale = schedule is not None and (age is None or age > STALE_SCHEDULES * schedule)
    failing = runs.ended is not None and runs.ended.status == "failed"
    last_status = runs.last.status if runs.last is not None else "never"
    warnings = []
    if stale:
        warnings.append(
            f"stale: last success {describe_age(age)} ago, schedule {describe_age(schedule)}"
            if age is not None else "stale: no successful run yet"
        )  # fmt: skip
    if failing:
        warnings.append(f"failing: {runs.ended.message or 'the last run failed'}")
    elif (
        runs.ended is not None
        and runs.ended.status == "interrupted"
        and (runs.success is None or runs.ended.id > runs.success.id)
    ):
        warnings.append(f"the last run was {runs.ended.message or 'interrupted'}")
    counts = runs.ended
    return {
        "agent": agent,
        "source": source,
        "target": target,
        "last_success": success,
        "age": age,
        "last_status": last_status,
        "last_error": runs.error.message if runs.error is not None else None,
        "last_error_at": runs.error.finished_at if runs.error is not None else None,
        "last_read": counts.read if counts is not None else None,
        "last_written": counts.written if counts is not None else None,
        "last_skipped": counts.skipped if counts is not None else None,
        "last_run_at": runs.last.started_at if runs.last is not None else None,
        "schedule": schedule,
        "stale": stale,
        "failing": failing,
        "warning": "; ".join(warnings) or None,
        "name": name,
    }


def describe_age(value: timedelta | float | None) -> str:
    """A duration (or seconds) as ``45s``, ``3m``, ``2h 5m``, ``4d 2h``; ``-`` for None."""
    if value is None or pd.isna(value):
        return "-"
    if isinstance(value, int | float):
        value = timedelta(seconds=value)
    seconds = int(pd.Timedelta(value).total_seconds())
    days, rest = divmod(max(seconds, 0), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m"
    return f"{seconds}s"
