"""The sync runner: the only writer of synced rows.

A source yields records; the runner buffers them and writes the buffered rows *and* the
newest :class:`Checkpoint` of each object among them in one transaction, at a checkpoint
once ``commit_rows`` rows wait or ``commit_seconds`` have passed (or when the buffer is
full, or the source fails: what it gave before the failure is still written). A run
killed at any point therefore resumes from the last committed cursor, and because every
write is an upsert on (source, source_id), nothing is duplicated.

Example::

    runner = SyncRunner(engine, settings, agent="mail")
    summary = runner.run(read_mailbox(path, runner.cursors()))
    print(summary.line())
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from tqdm.auto import tqdm

from ..config import Settings
from ..db.engine import write_transaction
from ..db.schema import sync_state
from ..db.upsert import upsert
from ..errors import DatabaseError, printable
from ..identity import DomainRules, Resolver
from ..matching import Matcher, grace_period
from ..sources.records import (
    AccountRecord,
    ActivityRecord,
    CampaignMemberRecord,
    CampaignRecord,
    CaseRecord,
    Checkpoint,
    ContractRecord,
    Deleted,
    LeadRecord,
    Notice,
    OpportunityChangeRecord,
    OpportunityMemberRecord,
    OpportunityRecord,
    PersonRecord,
    Skipped,
    StageRecord,
)
from .bulk_load import indexes_deferred
from .claims import sharing, synced_since
from .locks import LockBusy, heartbeat, sync_lock
from .reader_thread import read_ahead
from .runs import recorded_run
from .sales_tab_writer import write_cases, write_contracts
from .writer import (
    WriteContext,
    WriteResult,
    rematch_touched,
    write_accounts,
    write_activities,
    write_campaign_members,
    write_campaigns,
    write_changes,
    write_deletions,
    write_leads,
    write_members,
    write_opportunities,
    write_people,
    write_stages,
)

log = logging.getLogger(__name__)

# Dependency order: what a record refers to is written before it.
WRITERS: list[tuple[type, Callable[..., WriteResult]]] = [
    (StageRecord, write_stages),
    (PersonRecord, write_people),  # users before accounts (owners); see _flush
    (AccountRecord, write_accounts),
    (CampaignRecord, write_campaigns),
    (OpportunityRecord, write_opportunities),
    (OpportunityMemberRecord, write_members),
    (OpportunityChangeRecord, write_changes),
    (LeadRecord, write_leads),
    (CampaignMemberRecord, write_campaign_members),
    (ContractRecord, write_contracts),
    (CaseRecord, write_cases),
    (ActivityRecord, write_activities),
    (Deleted, write_deletions),
]
RETRIES = 3


@dataclass
class _Batch:
    """Records read since the last commit and the newest checkpoint of each object.

    A checkpoint covers everything read before it, so committing the records together
    with the newest checkpoints keeps the guarantee while committing less often (each
    commit of a large table rewrites the index pages it touched).
    """

    records: list[Any] = field(default_factory=list)
    pending: dict[str, Checkpoint] = field(default_factory=dict)
    since: float = field(default_factory=time.monotonic)
    failed: bool = False

    def due(self, rows: int, seconds: float) -> bool:
        return len(self.records) >= rows or time.monotonic() - self.since >= seconds

    def reset(self) -> None:
        self.records, self.pending, self.since = [], {}, time.monotonic()


@dataclass
class RunSummary:
    """What a run did; printed by every sync as one line."""

    agent: str
    read: int = 0
    written: int = 0
    skipped: int = 0
    errors: int = 0
    notices: int = 0  # lines about input that was used, not as it came (not skips)
    seconds: float = 0.0
    reasons: dict[str, int] = field(default_factory=dict)
    before: list[str] = field(default_factory=list)  # what before-run hooks did
    claimed: str | None = None  # not run: another agent has it, or synced it this cycle

    def line(self) -> str:
        if self.claimed:
            return f"{self.agent}: not synced here: {self.claimed}"
        text = (
            f"{self.agent}: read {self.read}, written {self.written}, "
            f"skipped {self.skipped}, errors {self.errors} ({self.seconds:.1f}s)"
        )
        if self.before:
            text += "; " + "; ".join(self.before)
        if self.notices:
            text += f"; {self.notices} notice{'' if self.notices == 1 else 's'}"
        if self.reasons:
            top = sorted(self.reasons.items(), key=lambda kv: -kv[1])[:3]
            text += "; " + ", ".join(f"{n} {reason}" for reason, n in top)
        return text


_frozen = [0]  # runs under way with the collector's heap frozen (threads may run several)
_frozen_lock = threading.Lock()


@contextmanager
def _gc_frozen() -> Iterator[None]:
    """The objects alive when a run starts (pandas, SQLAlchemy, a notebook's frames) are
    left out of the cyclic collector's passes until it ends: a run makes many short-lived
    objects, and each full pass would walk the whole heap again (10 % of a mail sync's
    CPU in #14). They are handed back, for the collector to judge, when the last run ends.
    """
    with _frozen_lock:
        _frozen[0] += 1
        if _frozen[0] == 1:
            gc.freeze()
    try:
        yield
    finally:
        with _frozen_lock:
            _frozen[0] -= 1
            if _frozen[0] == 0:
                gc.unfreeze()


def _line(text: str) -> str:
    """Part of a log line: printable and one line whatever the source quoted."""
    return printable(text, 1000)


def _is_transient(exc: BaseException) -> bool:
    text = str(getattr(exc, "orig", exc)).lower()
    return any(s in text for s in ("deadlock", "could not serialize", "database is locked"))


class SyncRunner:
    """Writes records from one source into the database, checkpoint by checkpoint."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        agent: str,
        source: str | None = None,
        *,
        commit_rows: int = 5000,
        commit_seconds: float = 2.0,
        progress: bool | None = None,
        lock: str | None = None,
        lock_wait: float = 0.0,
        target: str | None = None,
        after_run: Callable[[Any], None] | None = None,
        before_run: Sequence[Callable[[], Any]] = (),
    ) -> None:
        self.engine = engine
        self.agent = agent
        self.source = source or agent
        self.target = target  # what is synced, as sync_runs records it (a path, user@host)
        self.commit_rows = commit_rows  # commit at a checkpoint once this many rows wait,
        self.commit_seconds = commit_seconds  # or this long after the last commit
        self.progress = progress
        self.lock = lock
        self.lock_wait = lock_wait
        self.after_run = after_run  # e.g. refresh derived alerts, in its own transaction
        self.before_run = list(before_run)  # e.g. push write-back changes, under the lock
        self.context = WriteContext(
            Resolver(DomainRules(settings.internal_domains)), Matcher(grace_period(settings))
        )

    def cursors(self) -> dict[str, dict[str, Any]]:
        """The last committed cursor of every object this agent synced."""
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(sync_state.c.object, sync_state.c.cursor).where(
                        sync_state.c.agent == self.agent
                    )
                ).all()
        except OperationalError as exc:
            raise DatabaseError(f"cannot reach the database: {exc.orig}") from exc
        return {obj: cursor or {} for obj, cursor in rows}

    def run(self, records: Iterable[Any], total: int | None = None) -> RunSummary:
        """Write every record; with ``lock`` set, only one agent runs it at a time."""
        every = sharing()  # oppkit agents run: several processes share the sources
        if self.lock is None or every is None:
            if self.lock is None:
                return self._run(records, total)
            with sync_lock(self.engine, self.lock, self.lock_wait):
                return self._run(records, total)
        try:
            with sync_lock(self.engine, self.lock, 0):
                last = synced_since(self.engine, self.agent, self.source, self.target, every)
                if last is not None:
                    return RunSummary(self.agent, claimed=f"synced at {last:%H:%M:%S} UTC")
                return self._run(records, total)
        except LockBusy:
            return RunSummary(self.agent, claimed="another agent is syncing it")

    def _run(self, records: Iterable[Any], total: int | None) -> RunSummary:
        summary = RunSummary(self.agent)
        started = time.perf_counter()
        batch = _Batch()
        with recorded_run(self.engine, self.agent, self.source, self.target) as run:
            run.counts = summary
            try:
                for hook in self.before_run:
                    done = hook()
                    if done is not None:
                        summary.before.append(done.line() if hasattr(done, "line") else str(done))
                with indexes_deferred(self.engine), _gc_frozen():
                    self._consume(records, total, batch, summary)
                if self.after_run is not None:
                    with write_transaction(self.engine) as conn:
                        self.after_run(conn)
            finally:
                summary.seconds = time.perf_counter() - started
        return summary

    def _consume(
        self, records: Iterable[Any], total: int | None, batch: _Batch, summary: RunSummary
    ) -> None:
        """Read the source to its end, committing at checkpoints; the rest at the end."""
        try:
            for record in tqdm(
                read_ahead(records),
                total=total,
                unit="rec",
                desc=self.agent,
                disable=self._no_progress(),
                leave=False,
            ):
                if isinstance(record, Skipped):
                    self._count_skip(summary, record)
                elif isinstance(record, Notice):
                    summary.notices += 1
                    log.warning("notice %s: %s", _line(record.where), _line(record.reason))
                elif isinstance(record, Checkpoint):
                    batch.pending[record.object] = record
                    if batch.due(self.commit_rows, self.commit_seconds):
                        self._commit(batch, summary)
                else:
                    summary.read += 1
                    batch.records.append(record)
                    if len(batch.records) >= self.commit_rows:
                        self._commit(batch, summary)
        except Exception:
            # The source failed: what it gave so far is still written, with every
            # checkpoint it reached, before the error is raised. (Asked to stop, the
            # run ends at once: the next one resumes from the last committed checkpoint.)
            if not batch.failed:
                self._commit_quietly(batch, summary)
            raise
        self._commit(batch, summary)

    def _commit(self, batch: _Batch, summary: RunSummary) -> None:
        """Write the batch's records with its pending checkpoints; start a new batch."""
        try:
            self._flush(batch.records, summary, list(batch.pending.values()))
        except BaseException:
            batch.failed = True
            raise
        batch.reset()

    def _commit_quietly(self, batch: _Batch, summary: RunSummary) -> None:
        try:
            self._commit(batch, summary)
        except Exception as exc:  # noqa: BLE001 - the source's error is the one to report
            log.error("could not write the records read before the failure: %s", exc)

    def _no_progress(self) -> bool | None:
        return None if self.progress is None else not self.progress

    def _count_skip(self, summary: RunSummary, skipped: Skipped) -> None:
        summary.skipped += 1
        summary.reasons[skipped.reason] = summary.reasons.get(skipped.reason, 0) + 1
        log.warning("skipped %s: %s", _line(skipped.where), _line(skipped.reason))

    def _flush(
        self, buffer: Sequence[Any], summary: RunSummary, checkpoints: Sequence[Checkpoint]
    ) -> None:
        """Write the buffer and the checkpoints in one transaction; isolate bad records."""
        if not buffer and not checkpoints:
            return
        for attempt in range(RETRIES):
            try:
                with write_transaction(self.engine) as conn:
                    results = self._write(conn, buffer)
                    for checkpoint in checkpoints:
                        self._save_cursor(conn, checkpoint)
                if self.lock:
                    heartbeat(self.engine, self.lock)
                break
            except DBAPIError as exc:
                self.context.forget()
                if _is_transient(exc) and attempt < RETRIES - 1:
                    time.sleep(0.2 * (attempt + 1))
                    continue
                if isinstance(exc, OperationalError) and not _is_transient(exc):
                    raise DatabaseError(f"database failed: {str(exc.orig).strip()}") from exc
                results = self._write_one_by_one(buffer, summary, checkpoints)
                break
        for result in results:
            summary.written += result.written
            for skipped in result.skipped:
                self._count_skip(summary, skipped)

    def _write(self, conn, buffer: Sequence[Any]) -> list[WriteResult]:  # noqa: ANN001
        results = []
        by_type: dict[type, list[Any]] = {}
        for record in buffer:
            by_type.setdefault(type(record), []).append(record)
        users = [p for p in by_type.get(PersonRecord, []) if p.is_user]
        contacts = [p for p in by_type.get(PersonRecord, []) if not p.is_user]
        for record_type, writer in WRITERS:
            if record_type is PersonRecord:
                batch = users
            elif record_type is AccountRecord:
                batch = by_type.get(AccountRecord, [])
                if batch:
                    results.append(writer(conn, self.context, batch))
                batch = contacts
                writer = write_people
            else:
                batch = by_type.get(record_type, [])
            if batch:
                results.append(writer(conn, self.context, batch))
        rematch_touched(conn, self.context)  # activities follow the deals written above
        return results

    def _write_one_by_one(
        self, buffer: Sequence[Any], summary: RunSummary, checkpoints: Sequence[Checkpoint]
    ) -> list[WriteResult]:
        """After a failed batch: write each record alone, so one bad row costs one row."""
        results = []
        for record in buffer:
            try:
                with write_transaction(self.engine) as conn:
                    results.extend(self._write(conn, [record]))
            except SQLAlchemyError as exc:
                self.context.forget()
                summary.errors += 1
                log.error(
                    "could not write %s %s: %s",
                    type(record).__name__,
                    getattr(record, "source_id", ""),
                    str(getattr(exc, "orig", exc)).splitlines()[0],
                )
        if checkpoints:
            with write_transaction(self.engine) as conn:
                for checkpoint in checkpoints:
                    self._save_cursor(conn, checkpoint)
        return results

    def _save_cursor(self, conn, checkpoint: Checkpoint) -> None:  # noqa: ANN001
        upsert(
            conn,
            sync_state,
            [
                {
                    "agent": self.agent,
                    "source": self.source,
                    "object": checkpoint.object,
                    "cursor": checkpoint.cursor,
                    "last_run_at": datetime.now(UTC),
                    "last_error": None,
                }
            ],
            ["agent", "source", "object"],
            ["cursor", "last_run_at", "last_error"],
        )
