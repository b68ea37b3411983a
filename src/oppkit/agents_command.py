"""``oppkit agents run`` (every configured agent, each on its schedule) and ``oppkit status``.

Why: a team runs mail, calendar and Salesforce syncs unattended for months. One process
(a systemd service, a container) runs every ``[[agents]]`` entry of oppkit.toml on its
own schedule, one run at a time, earliest due first. After a failure an entry waits
longer each time (its schedule x 2, x 4, then x 8 at most: :data:`BACKOFF_MAX`), and the
first success brings it back to its schedule. Failures never end the process; a stop
does: SIGINT or SIGTERM end it at once, whatever it is doing (waiting or syncing), with
exit 130 / 143 and one line on stderr (:mod:`oppkit.stops`; committed work is kept, the
next run resumes from the checkpoint).

The configuration is checked before anything runs: every problem (an unknown source, a
bad duration, an unknown option) is one line on stderr, and the exit code is 2.

Logs go to stdout, one line per event: plain text, or JSON objects (``--log-format
json``) with ``time``, ``level``, ``agent``, ``message`` and, for a finished run,
``counts`` (read, written, skipped, errors, seconds; a digest's sent...).

``oppkit status`` prints :func:`oppkit.frames.sync_status` as a table: per source, the
last success and its age, the last run, its counts, the last error and a warning.

Examples::

    oppkit status                 # --check: exit 1 when a source is stale or failing
    oppkit agents check           # the [[agents]] of oppkit.toml, or one line per problem
    oppkit agents run --log-format json
"""

from __future__ import annotations

import argparse
import contextvars
import json
import logging
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy.exc import SQLAlchemyError

from .errors import ConfigError, OppkitError
from .frames.freshness import describe_age
from .sources.agents_config import (
    AgentEntry,
    OptionsParser,
    chosen_sources,
    parse_options,
    with_environment,
)
from .sources.catalog import agents, sources_of
from .stops import stopping
from .sync.claims import shared

__all__ = [
    "BACKOFF_MAX", "Job", "JsonFormatter", "add_commands", "log_to", "prepare", "run_jobs",
    "status_table",
]  # fmt: skip

BACKOFF_MAX = 8  # after failures an entry waits its schedule x 2, x 4, ... at most x 8
COUNTS = ("read", "written", "skipped", "errors", "sent", "already_sent", "nothing_new")

log = logging.getLogger("oppkit.agents")
_agent: contextvars.ContextVar[str | None] = contextvars.ContextVar("oppkit_agent", default=None)

# an agent's (add its options to a parser, run it with the parsed arguments)
Runner = tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], list]]


@dataclass
class Job:
    """One ``[[agents]]`` entry as it runs: its parsed arguments, when it runs next."""

    entry: AgentEntry
    args: argparse.Namespace
    run: Callable[[argparse.Namespace], list]
    next_at: float = 0.0  # time.monotonic() of the next run
    failures: int = 0  # in a row

    def backoff(self) -> float:
        """Seconds to wait after the latest failure: the schedule x 2, x 4 ... x 8."""
        return self.entry.every * min(2**self.failures, BACKOFF_MAX)


def prepare(
    entries: list[AgentEntry], runners: Mapping[str, Runner], url: str | None
) -> tuple[list[Job], list[str]]:
    """Parse each entry's options as its agent's command would; one line per problem.

    Each job runs against ``url`` (None: the settings' database); a sync agent's may be
    given an engine instead (``job.args.db``), kept open for every run.
    """
    jobs, problems = [], []
    for entry in entries:
        add_arguments, run = runners[entry.agent]
        parser = OptionsParser(prog=entry.name)
        add_arguments(parser)
        try:
            args = parse_options(parser, list(entry.options))
            if entry.agent in agents():
                chosen_sources(entry.agent, with_environment(args, sources_of(entry.agent)))
        except ConfigError as exc:
            problems.append(f"{entry.where}: {exc}")
            continue
        args.db = url
        args.progress, args.debug = False, False
        jobs.append(Job(entry, args, run))
    return jobs, problems


def run_jobs(
    jobs: list[Job],
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Run every job on its schedule, earliest due first, until stopped (KeyboardInterrupt)."""
    start = clock()
    for job in jobs:
        job.next_at = start
    listed = ", ".join(f"{j.entry.name} every {j.entry.every_text}" for j in jobs)
    log.info("running %d agent%s: %s", len(jobs), "" if len(jobs) == 1 else "s", listed)
    while True:
        job = min(jobs, key=lambda j: (j.next_at, j.entry.number))
        wait = job.next_at - clock()
        if wait > 0:
            sleep(wait)
        _run_once(job, clock)


def _run_once(job: Job, clock: Callable[[], float]) -> None:
    started = clock()
    token = _agent.set(job.entry.name)
    try:
        try:
            with shared(job.entry.every):  # other processes may share these sources
                summaries = job.run(job.args)
        except Exception as exc:
            if stopping():  # a call cut short by the stop: stop, do not count a failure
                raise KeyboardInterrupt from exc
            _failed(job, exc, clock)
            return
        job.failures = 0
        job.next_at = max(started + job.entry.every, clock())
        for summary in summaries:
            log.info(summary.line(), extra={"counts": _counts(summary)})
    finally:
        _agent.reset(token)


def _failed(job: Job, exc: Exception, clock: Callable[[], float]) -> None:
    job.failures += 1
    delay = job.backoff()
    job.next_at = clock() + delay
    expected = isinstance(exc, OppkitError | FileNotFoundError | SQLAlchemyError)
    log.error(
        "%s (failed %d time%s in a row; next try in %s)",
        _one_line(exc), job.failures, "" if job.failures == 1 else "s", describe_age(delay),
        exc_info=None if expected else exc,
        extra={"failures": job.failures, "next_in": round(delay, 3)},
    )  # fmt: skip


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _counts(summary: Any) -> dict[str, float]:
    counts = {n: getattr(summary, n) for n in COUNTS if isinstance(getattr(summary, n, None), int)}
    if isinstance(getattr(summary, "seconds", None), float):
        counts["seconds"] = round(summary.seconds, 3)
    return counts


# --- logging ---------------------------------------------------------------------------


class _AgentFilter(logging.Filter):
    """Every record names the agent whose run logged it (None outside a run)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "agent"):
            record.agent = _agent.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, agent, message (+ counts, failures...)."""

    EXTRA = ("counts", "failures", "next_in")

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "agent": getattr(record, "agent", None),
            "message": record.getMessage(),
        }
        data.update({k: getattr(record, k) for k in self.EXTRA if hasattr(record, k)})
        if record.exc_info:
            data["traceback"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


class _PlainFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(where)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def format(self, record: logging.LogRecord) -> str:
        record.where = getattr(record, "agent", None) or record.name
        return super().format(record)


def log_to(stream: Any = None, *, fmt: str = "plain", debug: bool = False) -> None:
    """Send every log record to ``stream`` (stdout), plain or as JSON lines."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter() if fmt == "json" else _PlainFormatter())
    handler.addFilter(_AgentFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    for noisy in ("alembic", "sqlalchemy", "urllib3", "exchangelib", "caldav", "requests"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if debug else logging.WARNING)


# --- the commands ------------------------------------------------------------------------


def add_commands(
    commands: argparse._SubParsersAction, runners: Callable[[], Mapping[str, Runner]]
) -> list[argparse.ArgumentParser]:
    """Add ``status`` and ``agents run|check`` to the ``oppkit`` parser.

    ``runners()`` gives every agent the CLI knows: ``{name: (add its options, run it)}``.
    """
    status = commands.add_parser("status", help="how fresh each source is (last success, age)")
    status.add_argument(
        "--check", action="store_true", help="exit 1 when a source is stale or failing"
    )
    status.set_defaults(func=_cmd_status)
    group = commands.add_parser("agents", help="run every [[agents]] entry of oppkit.toml")
    sub = group.add_subparsers(dest="agents_command", required=True, metavar="ACTION")
    run = sub.add_parser("run", help="run each configured agent on its schedule, until stopped")
    run.add_argument("--log-format", choices=["plain", "json"], default="plain",
                     help="log lines on stdout: plain text or JSON objects (default plain)")  # fmt: skip
    run.set_defaults(func=lambda args: _cmd_agents(args, runners(), start=True))
    check = sub.add_parser("check", help="check the [[agents]] of oppkit.toml; run nothing")
    check.set_defaults(func=lambda args: _cmd_agents(args, runners(), start=False))
    return [status, group, run, check]


def _cmd_status(args: argparse.Namespace) -> int:
    from .config import load_settings
    from .db.engine import connect_engine
    from .frames.freshness import sync_status
    from .scope import Scope
    from .sources.agents_config import agent_entries

    settings = load_settings(args.db)
    for problem in agent_entries(settings)[1]:
        print(f"oppkit: warning: {settings.config_path}: {problem}", file=sys.stderr)
    frame = sync_status(Scope(connect_engine(settings.resolved_database_url)), settings=settings)
    print(status_table(frame))
    return 1 if args.check and bool((frame["stale"] | frame["failing"]).any()) else 0


def status_table(frame: Any) -> str:
    """The sync status frame as the table ``oppkit status`` prints."""
    if frame.empty:
        return "no sources yet: add [[agents]] to oppkit.toml, or run oppkit sync"
    header = ["SOURCE", "TARGET", "LAST SUCCESS", "AGE", "EVERY", "LAST RUN", "READ",
              "WRITTEN", "LAST ERROR", "WARNING"]  # fmt: skip
    rows = [header]
    for row in frame.itertuples(index=False):
        rows.append([
            "/".join(x for x in (row.agent, row.source) if isinstance(x, str)),
            row.target if isinstance(row.target, str) else "-",
            _when(row.last_success),
            describe_age(row.age),
            describe_age(row.schedule),
            row.last_status,
            _number(row.last_read),
            _number(row.last_written),
            row.last_error if isinstance(row.last_error, str) else "-",
            ("! " + row.warning) if isinstance(row.warning, str) else "ok",
        ])  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=False)) + "  " + r[-1]
        for r in rows
    ).rstrip()


def _when(value: Any) -> str:
    return "never" if pd.isna(value) else f"{value:%Y-%m-%d %H:%M:%S}Z"


def _number(value: Any) -> str:
    return "-" if pd.isna(value) else str(int(value))


def _cmd_agents(args: argparse.Namespace, runners: Mapping[str, Runner], *, start: bool) -> int:
    from .config import load_settings
    from .db.engine import connect_engine
    from .sources.agents_config import agent_entries

    settings = load_settings(args.db)
    where = settings.config_path or "oppkit.toml"
    url = settings.resolved_database_url
    entries, problems = agent_entries(settings)
    jobs, more = prepare(entries, runners, url)
    problems = sorted(problems + more, key=_entry_number)  # stable: in the file's order
    if settings.config_path is None:
        problems = ["no oppkit.toml in this folder (or set OPPKIT_CONFIG to one)"]
    elif not jobs and not problems:
        problems = ['no [[agents]] (e.g. source = "mail", options = [...], every = "15m")']
    if problems:
        for problem in problems:
            print(f"oppkit: error: {where}: {problem}", file=sys.stderr)
        return ConfigError.exit_code
    if not start:
        for job in jobs:
            print(f"{job.entry.name}: {job.entry.agent} {' '.join(job.entry.options)} "
                  f"every {job.entry.every_text}".replace("  ", " "))  # fmt: skip
        return 0
    log_to(sys.stdout, fmt=args.log_format, debug=args.debug)
    engine = connect_engine(url)  # one engine for every run; migrated once, here
    for job in jobs:
        if job.entry.agent in agents():
            job.args.db = engine
    run_jobs(jobs)
    return 0  # pragma: no cover - run_jobs ends only by a stop


def _entry_number(problem: str) -> int:
    """The entry a problem line is about (``[[agents]] 3 (mail): ...`` -> 3); 0 for none."""
    number = problem.removeprefix("[[agents]] ").split(" ", 1)[0].rstrip(":")
    return int(number) if number.isdigit() else 0
