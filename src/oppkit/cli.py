"""The ``oppkit`` command and the agents' shared entry point.

Exit codes (docs/ARCHITECTURE.md): 0 done; 1 a source or the database failed; 2 bad
arguments or configuration. Errors are one line on stderr; ``--debug`` shows the
traceback.

Examples::

    oppkit init
    oppkit sync mail --mbox ~/exports/alice.mbox
    oppkit sync calendar --ics ~/exports/calendars/
    oppkit sync salesforce-export ~/exports/salesforce/
    oppkit digest --frequency daily
    oppkit demo --no-lab
    oppkit workflow load our_workflow.toml
    oppkit lifecycle apply
    oppkit report run webinar-leads      # a saved report: the people it finds into its campaign
    oppkit team grant ava ava.patel@northwind.example --create   # PostgreSQL
    oppkit status                        # how fresh each source is
    oppkit agents run                    # every [[agents]] entry of oppkit.toml, on schedule
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from types import SimpleNamespace

from . import __version__, redact
from .agreements_command import add_check_arguments, run_check
from .config import load_settings
from .errors import ConfigError, OppkitError
from .report_command import add_run_arguments, run_reports
from .sources.declaration import parse_duration
from .stops import CODES, announce, disarm, exit_code, finish, stop_code, stopping
from .stops import install as install_stops

__all__ = ["agent_main", "build_parser", "guarded", "main", "parse_duration"]

log = logging.getLogger("oppkit")


# --- sync commands and agents (from oppkit.sources.catalog) ---------------------------


def _syncs() -> dict[str, tuple[Callable, Callable, str]]:
    """The sync commands and agents, one per agent declared in oppkit.sources.catalog."""
    from .sync_commands import sync_commands

    return sync_commands()


def _iso_time(text: str):  # noqa: ANN202
    from datetime import UTC, datetime

    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO date/time: {text!r}") from exc
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _add_digest(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frequency", choices=["daily", "weekly"], required=True)
    parser.add_argument(
        "--now", type=_iso_time, metavar="ISO",
        help="act as if it were this time (UTC unless given), e.g. 2026-03-04T07:00",
    )  # fmt: skip
    parser.add_argument("--dry-run", action="store_true", help="show the digests, send nothing")


def _run_digest(args: argparse.Namespace) -> list:
    from .db.engine import connect_engine
    from .digest import send_digests
    from .sync.runs import recorded_run

    settings = load_settings(args.db)
    engine = connect_engine(settings.resolved_database_url)
    if args.dry_run:
        summary = send_digests(engine, args.frequency, args.now, settings=settings, dry_run=True)
    else:  # a sync_runs row: oppkit status shows when digests last went out
        with recorded_run(engine, "digest", "digest", args.frequency) as run:
            summary = send_digests(engine, args.frequency, args.now, settings=settings)
            run.counts = SimpleNamespace(
                read=summary.sent + summary.already_sent + summary.nothing_new,
                written=summary.sent,
                skipped=summary.already_sent + summary.nothing_new,
            )
    if args.dry_run:
        for message in summary.messages:
            print(f"to {message.to}: {message.subject}")
    return [summary]


AGENTS: dict[str, tuple[Callable, Callable, str]] = {
    "digest": (_add_digest, _run_digest, "follower digests (daily or weekly) over SMTP"),
    "report": (add_run_arguments, run_reports, "saved reports: who they find into campaigns"),
    "agreements": (add_check_arguments, run_check, "expiring agreements: alerts on open deals"),
}


def _runners() -> dict[str, tuple[Callable, Callable]]:
    """Every agent ``oppkit agents run`` can run: (add its options, run it)."""
    return {name: (add, run) for name, (add, run, _help) in {**_syncs(), **AGENTS}.items()}


def _print_summaries(summaries: list) -> int:
    for summary in summaries:
        print(summary.line())
    return 0


# --- other commands ---------------------------------------------------------------


def _cmd_init(args: argparse.Namespace) -> int:
    from .db.engine import create_oppkit_engine, migrate

    settings = load_settings(args.db)
    engine = create_oppkit_engine(settings.resolved_database_url)
    revision = migrate(engine)
    print(
        f"database ready at {engine.url.render_as_string(hide_password=True)} (schema {revision})"
    )
    return 0


def _cmd_team(args: argparse.Namespace) -> int:
    from .db.engine import connect_engine
    from .team import grant, revoke

    engine = connect_engine(load_settings(args.db).resolved_database_url)
    if args.action == "grant":
        if not args.email:
            raise ConfigError("team grant needs ROLE and EMAIL")
        grant(engine, args.role, args.email, create=args.create)
        print(f"database role {args.role} is {args.email}: it sees what they may see")
    else:
        revoke(engine, args.role)
        print(f"database role {args.role} has no access to oppkit's tables any more")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    lab_args = [a for a in args.lab_args if a != "--"]
    return run_demo(
        out=args.out, db=args.db, open_lab=not args.no_lab, seed=args.seed, lab_args=lab_args
    )


def _cmd_present(args: argparse.Namespace) -> int:
    from .demo import run_present

    return run_present(
        args.notebook, db=args.db, voila_args=[a for a in args.voila_args if a != "--"]
    )


def _cmd_sync(run: Callable[[argparse.Namespace], list], args: argparse.Namespace) -> int:
    return _print_summaries(run(args))


# --- parser and main --------------------------------------------------------------


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", metavar="URL", help="database URL (default: OPPKIT_DATABASE_URL)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None,
        help="show progress bars (default: when on a terminal)",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="oppkit", description="Sales opportunities in notebooks.")
    parser.add_argument("--version", action="version", version=f"oppkit {__version__}")
    _common(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    init = commands.add_parser("init", help="create or migrate the database schema")
    init.set_defaults(func=_cmd_init)

    demo = commands.add_parser("demo", help="sync a synthetic organisation and open JupyterLab")
    demo.add_argument("--out", type=Path, help="folder for the demo files and database")
    demo.add_argument("--no-lab", action="store_true", help="stop before opening JupyterLab")
    demo.add_argument("--seed", type=int, default=7, help="random seed of the organisation")
    demo.add_argument(
        "lab_args", nargs=argparse.REMAINDER, metavar="-- LAB_ARGS",
        help="arguments for JupyterLab after --, e.g. -- --no-browser --port 8899",
    )  # fmt: skip
    demo.set_defaults(func=_cmd_demo)

    present = commands.add_parser(
        "present", help="show a notebook's apps without its code, for a client (Voilà)"
    )
    present.add_argument(
        "notebook", nargs="?", type=Path, help="default: notebooks/02_pipeline_review.ipynb"
    )
    present.add_argument(
        "voila_args", nargs=argparse.REMAINDER, metavar="-- VOILA_ARGS",
        help="arguments for Voilà after --, e.g. -- --no-browser --port 8866",
    )  # fmt: skip
    present.set_defaults(func=_cmd_present)

    team = commands.add_parser(
        "team", help="PostgreSQL: each person connects as their own role (row-level security)"
    )
    team.add_argument("action", choices=["grant", "revoke"])
    team.add_argument("role", help="the PostgreSQL login role")
    team.add_argument("email", nargs="?", help="the person the role is (grant)")
    team.add_argument("--create", action="store_true", help="create the role (LOGIN) if missing")
    team.set_defaults(func=_cmd_team)

    digest = commands.add_parser("digest", help="email followers what moved on their deals")
    _add_digest(digest)
    digest.set_defaults(func=lambda args: _print_summaries(_run_digest(args)))

    sync = commands.add_parser("sync", help="run one sync")
    what = sync.add_subparsers(dest="what", required=True, metavar="SOURCE")
    for name, (add_arguments, run, help_text) in _syncs().items():
        sub = what.add_parser(name, help=help_text)
        add_arguments(sub)
        sub.set_defaults(func=partial(_cmd_sync, run))
    from .agents_command import add_commands as add_agents_commands
    from .agreements_command import add_commands as add_agreements_commands
    from .report_command import add_commands as add_report_commands
    from .workflow.cli import add_commands

    more = add_commands(commands)
    more += add_report_commands(commands)
    more += add_agreements_commands(commands)
    more += add_agents_commands(commands, _runners)
    # options may also follow the subcommand: `oppkit sync mail --mbox X --db URL`
    for sub in [init, demo, team, digest, sync, *what.choices.values(), *more]:
        _common_suppressed(sub)
    return parser


def _common_suppressed(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", metavar="URL", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    parser.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=argparse.SUPPRESS,
        help=argparse.SUPPRESS,
    )


def _setup_logging(debug: bool) -> None:
    """Log to stderr (everything with --debug); no secret reaches it (oppkit.redact),
    neither through a log record nor through a traceback."""
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for handler in logging.getLogger().handlers:
        redact.install(handler)
        if not debug and _quiet_once_stopped not in handler.filters:
            handler.addFilter(_quiet_once_stopped)
    sys.excepthook = _redacted_traceback
    if not debug:
        for noisy in ("alembic", "sqlalchemy"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def _quiet_once_stopped(_record: logging.LogRecord) -> bool:
    """A stop prints one line: what its clean-up logs (a driver's query cancelled under
    it, a connection closed) does not reach stderr, except with --debug."""
    return not stopping()


def _redacted_traceback(kind, value, tb) -> None:  # noqa: ANN001
    import traceback

    sys.stderr.write(redact.redact("".join(traceback.format_exception(kind, value, tb))))


MAX_PROBLEMS = 100  # lines an error listing problems (an invalid workflow) may print


def guarded(run: Callable[[], int], debug: bool) -> int:
    """Run a command; turn known failures into a one-line message and an exit code.

    Once SIGINT or SIGTERM arrived, the command ends with 130 or 143 whatever the work
    under way made of the interruption (a database call cut short fails otherwise).
    """
    from sqlalchemy.exc import SQLAlchemyError

    try:
        code = run()
    except KeyboardInterrupt as exc:  # SIGINT, or SIGTERM (oppkit.stops.Terminated)
        return _stopped(stop_code() or exit_code(exc))
    except (OppkitError, FileNotFoundError, SQLAlchemyError) as exc:
        if stop_code():
            return _stopped(stop_code())
        if debug:
            raise
        if isinstance(exc, SQLAlchemyError):
            detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            print(f"oppkit: error: database failed: {redact.one_line(detail)}", file=sys.stderr)
            return 1
        problems = getattr(exc, "problems", None)  # a list of problems: one line each
        if isinstance(problems, list) and problems:
            first = redact.one_line(str(exc).splitlines()[0])
            lines = [first, *(redact.one_line(p) for p in problems[:MAX_PROBLEMS])]
            print("oppkit: error: " + "\n".join(lines), file=sys.stderr)
        else:
            print(f"oppkit: error: {redact.error_line(exc)}", file=sys.stderr)
        return exc.exit_code if isinstance(exc, OppkitError) else ConfigError.exit_code
    except Exception:
        if stop_code():
            return _stopped(stop_code())
        raise
    return _stopped(stop_code()) if stop_code() else code


def _stopped(code: int) -> int:
    announce(code)
    return code


def _ended(code: int) -> int:
    """A stopped command exits here and now (:func:`oppkit.stops.finish`); any other
    gives the process its signal handlers back, for callers that run it in-process."""
    if stop_code():
        finish(code)
    disarm()
    return code


def main(argv: Sequence[str] | None = None) -> int:
    install_stops()
    try:
        args = build_parser().parse_args(argv)
    except SystemExit:
        disarm()
        raise
    _setup_logging(args.debug)
    return _ended(guarded(lambda: args.func(args), args.debug))


# --- agents -----------------------------------------------------------------------


def agent_main(what: str, argv: Sequence[str] | None = None) -> int:
    """Entry point of agents/*.py: one sync (or digest run), ``--once`` or ``--every DURATION``.

    ``what`` is an agent declared in :mod:`oppkit.sources.catalog` (its options and sources
    come from there) or ``digest``. Example: ``sys.exit(agent_main("mail"))``.
    """
    add_arguments, run, help_text = {**_syncs(), **AGENTS}[what]
    verb = "Send" if what in AGENTS else "Sync"
    parser = argparse.ArgumentParser(prog=f"{what}_agent", description=f"{verb} {help_text}.")
    _common(parser)
    add_arguments(parser)
    when = parser.add_mutually_exclusive_group()
    when.add_argument("--once", action="store_true", help="run one sync and exit (default)")
    when.add_argument("--every", type=parse_duration, metavar="DURATION", help="repeat, e.g. 15m")
    install_stops()
    try:
        args = parser.parse_args(argv)
    except SystemExit:
        disarm()
        raise
    _setup_logging(args.debug)
    while True:
        code = guarded(lambda: _print_summaries(run(args)), args.debug)
        if not args.every or code in (2, *CODES.values()):  # once, bad configuration, a stop
            return _ended(code)
        sys.stdout.flush()
        code = guarded(lambda: time.sleep(args.every) or 0, args.debug)
        if code:  # stopped while waiting for the next run
            return _ended(code)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
