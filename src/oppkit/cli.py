"""The ``oppkit`` command and the agents' shared entry point.

Exit codes (ARCHITECTURE.md): 0 done; 1 a source or the database failed; 2 bad
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
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from . import __version__
from .config import load_settings
from .errors import ConfigError, OppkitError

log = logging.getLogger("oppkit")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``15m``, ``1h30m`` or ``90s``."""
    parts = _DURATION.findall(text.strip().lower())
    if not parts or _DURATION.sub("", text.strip().lower()).strip():
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (try 15m, 1h, 30s)")
    return sum(float(n) * _UNITS[u] for n, u in parts)


# --- sync commands ----------------------------------------------------------------


def _add_mail(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mbox", action="append", type=Path, metavar="PATH",
        help="an mbox file, an .eml file or a folder of them (repeatable)",
    )  # fmt: skip
    imap = parser.add_argument_group("IMAP (password from OPPKIT_IMAP_PASSWORD)")
    imap.add_argument("--imap-host", help="IMAP server host")
    imap.add_argument("--imap-port", type=int, help="default 993 (tls) or 143")
    imap.add_argument("--imap-user", help="login name (default OPPKIT_IMAP_USER)")
    imap.add_argument("--imap-security", choices=["tls", "starttls", "none"], default="tls")
    imap.add_argument(
        "--imap-folder", action="append", metavar="FOLDER",
        help="folder to sync (repeatable; default INBOX and Sent)",
    )  # fmt: skip
    imap.add_argument("--imap-ca-file", help="CA file to trust for the server's certificate")
    imap.add_argument("--exclude-sender", action="append", default=[], metavar="EMAIL",
                      help="leave out mail from this sender (repeatable)")  # fmt: skip
    imap.add_argument("--exclude-domain", action="append", default=[], metavar="DOMAIN",
                      help="leave out mail to or from this domain (repeatable)")  # fmt: skip
    _add_ews(parser)


def _add_ews(parser: argparse.ArgumentParser) -> None:
    ews = parser.add_argument_group(
        "Exchange (password from OPPKIT_EWS_PASSWORD, OAuth secret from OPPKIT_EWS_CLIENT_SECRET)"
    )
    ews.add_argument(
        "--ews-url", help="EWS endpoint, e.g. https://mail.example.com/EWS/Exchange.asmx"
    )
    ews.add_argument("--ews-mailbox", action="append", metavar="EMAIL", help="mailbox (repeatable)")
    ews.add_argument("--ews-user", help="login (default OPPKIT_EWS_USER)")
    ews.add_argument("--ews-auth", choices=["ntlm", "basic", "oauth2", "noauth"], default="ntlm")
    ews.add_argument(
        "--ews-impersonation", action="store_true", help="service account impersonation"
    )
    ews.add_argument(
        "--ews-folder", action="append", metavar="FOLDER", help="default inbox and sent"
    )
    ews.add_argument("--ews-ca-file", help="CA file to trust for the server's certificate")


def _ews_settings(args: argparse.Namespace):  # noqa: ANN202
    import os

    from .sources.exchange import ExchangeSettings

    if not args.ews_mailbox:
        raise ConfigError("--ews-url needs at least one --ews-mailbox")
    return ExchangeSettings(
        endpoint=args.ews_url, mailboxes=tuple(args.ews_mailbox),
        username=args.ews_user or os.environ.get("OPPKIT_EWS_USER"),
        password=os.environ.get("OPPKIT_EWS_PASSWORD"), auth=args.ews_auth,
        client_id=os.environ.get("OPPKIT_EWS_CLIENT_ID"),
        client_secret=os.environ.get("OPPKIT_EWS_CLIENT_SECRET"),
        tenant_id=os.environ.get("OPPKIT_EWS_TENANT_ID"),
        impersonation=args.ews_impersonation,
        folders=tuple(args.ews_folder or ("inbox", "sent")), ca_file=args.ews_ca_file,
    )  # fmt: skip


def _add_calendar(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ics", action="append", type=Path, metavar="PATH",
        help="an .ics file or a folder of .ics files (repeatable)",
    )  # fmt: skip
    dav = parser.add_argument_group("CalDAV (password from OPPKIT_CALDAV_PASSWORD)")
    dav.add_argument("--caldav-url", help="CalDAV server or principal URL")
    dav.add_argument("--caldav-user", help="login (default OPPKIT_CALDAV_USER)")
    dav.add_argument(
        "--caldav-calendar", action="append", metavar="NAME", help="only these calendars"
    )
    dav.add_argument("--caldav-ca-file", help="CA file to trust for the server's certificate")
    _add_ews(parser)


def _add_salesforce_export(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "directory", type=Path, help="folder with Account.csv, Opportunity.csv, ..."
    )


def _add_salesforce(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--instance-url", help="org URL for an existing session (OPPKIT_SF_INSTANCE_URL)"
    )
    parser.add_argument(
        "--session-id",
        help="an existing session token; prefer OPPKIT_SF_SESSION_ID (not shown in ps)",
    )
    parser.add_argument(
        "--objects", type=lambda v: [o.strip() for o in v.split(",") if o.strip()],
        help="comma-separated objects to sync (default: all oppkit reads)",
    )  # fmt: skip
    parser.add_argument(
        "--overlap", type=parse_duration, metavar="DURATION",
        help="re-read window before the last SystemModstamp (default 5m)",
    )  # fmt: skip
    parser.add_argument(
        "--wait", type=parse_duration, default=0.0, metavar="DURATION",
        help="wait this long for another agent on the same org to finish (default: exit)",
    )  # fmt: skip


def _run_salesforce(args: argparse.Namespace) -> list:
    from datetime import timedelta

    from .sources.salesforce_client import SalesforceSettings
    from .sync import sync_salesforce

    settings = load_settings(args.db)
    config = settings.extra.get("salesforce", {}) if settings.extra else {}
    salesforce = SalesforceSettings.from_env(
        config, instance_url=args.instance_url, session_id=args.session_id
    )
    overlap = timedelta(seconds=args.overlap) if args.overlap is not None else None
    return [
        sync_salesforce(
            settings=settings,
            salesforce=salesforce,
            objects=args.objects,
            overlap=overlap,
            lock_wait=args.wait,
            progress=args.progress,
        )  # fmt: skip
    ]


def _run_mail(args: argparse.Namespace) -> list:
    import os

    from .sync import sync_imap, sync_mail

    if not args.mbox and not args.imap_host and not args.ews_url:
        raise ConfigError("give --mbox PATH, --imap-host HOST or --ews-url URL")
    settings = load_settings(args.db)
    summaries = [sync_mail(p, settings=settings, progress=args.progress) for p in args.mbox or []]
    if args.imap_host:
        from .sources.imap import ImapSettings

        user = args.imap_user or os.environ.get("OPPKIT_IMAP_USER")
        password = os.environ.get("OPPKIT_IMAP_PASSWORD")
        if not user or password is None:
            raise ConfigError(
                "IMAP needs --imap-user (or OPPKIT_IMAP_USER) and OPPKIT_IMAP_PASSWORD"
            )
        server = ImapSettings(
            host=args.imap_host, port=args.imap_port, username=user, password=password,
            security=args.imap_security, folders=tuple(args.imap_folder or ("INBOX", "Sent")),
            ca_file=args.imap_ca_file, exclude_senders=tuple(args.exclude_sender),
            exclude_domains=tuple(args.exclude_domain),
        )  # fmt: skip
        summaries.append(sync_imap(server, settings=settings, progress=args.progress))
    if args.ews_url:
        from .sync import sync_exchange

        summaries.append(
            sync_exchange(_ews_settings(args), settings=settings, progress=args.progress)
        )
    return summaries


def _run_calendar(args: argparse.Namespace) -> list:
    import os

    from .sync import sync_caldav, sync_calendar, sync_exchange

    if not args.ics and not args.caldav_url and not args.ews_url:
        raise ConfigError("give --ics PATH, --caldav-url URL or --ews-url URL")
    settings = load_settings(args.db)
    summaries = [
        sync_calendar(p, settings=settings, progress=args.progress) for p in args.ics or []
    ]
    if args.caldav_url:
        summaries.append(
            sync_caldav(
                args.caldav_url,
                settings=settings,
                progress=args.progress,
                username=args.caldav_user or os.environ.get("OPPKIT_CALDAV_USER"),
                password=os.environ.get("OPPKIT_CALDAV_PASSWORD"),
                calendars=args.caldav_calendar,
                ca_file=args.caldav_ca_file,
            )  # fmt: skip
        )
    if args.ews_url:
        summaries.append(
            sync_exchange(
                _ews_settings(args), settings=settings, calendar=True, progress=args.progress
            )
        )
    return summaries


def _run_salesforce_export(args: argparse.Namespace) -> list:
    from .sync import sync_salesforce_export

    settings = load_settings(args.db)
    return [sync_salesforce_export(args.directory, settings=settings, progress=args.progress)]


SYNCS: dict[str, tuple[Callable, Callable, str]] = {
    "salesforce": (_add_salesforce, _run_salesforce, "a Salesforce org through its REST API"),
    "mail": (_add_mail, _run_mail, "emails from mbox / .eml exports"),
    "calendar": (_add_calendar, _run_calendar, "meetings from .ics calendars"),
    "salesforce-export": (
        _add_salesforce_export,
        _run_salesforce_export,
        "a Salesforce Data Export folder of CSV files",
    ),
}


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

    settings = load_settings(args.db)
    engine = connect_engine(settings.resolved_database_url)
    summary = send_digests(
        engine, args.frequency, args.now, settings=settings, dry_run=args.dry_run
    )
    if args.dry_run:
        for message in summary.messages:
            print(f"to {message.to}: {message.subject}")
    return [summary]


AGENTS: dict[str, tuple[Callable, Callable, str]] = {
    "digest": (_add_digest, _run_digest, "follower digests (daily or weekly) over SMTP"),
}


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


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    lab_args = [a for a in args.lab_args if a != "--"]
    return run_demo(
        out=args.out, db=args.db, open_lab=not args.no_lab, seed=args.seed, lab_args=lab_args
    )


def _cmd_sync(args: argparse.Namespace) -> int:
    return _print_summaries(SYNCS[args.what][1](args))


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

    digest = commands.add_parser("digest", help="email followers what moved on their deals")
    _add_digest(digest)
    digest.set_defaults(func=lambda args: _print_summaries(_run_digest(args)))

    sync = commands.add_parser("sync", help="run one sync")
    what = sync.add_subparsers(dest="what", required=True, metavar="SOURCE")
    for name, (add_arguments, _run, help_text) in SYNCS.items():
        sub = what.add_parser(name, help=help_text)
        add_arguments(sub)
        sub.set_defaults(func=_cmd_sync)
    from .workflow.cli import add_commands

    more = add_commands(commands)
    # options may also follow the subcommand: `oppkit sync mail --mbox X --db URL`
    for sub in [init, demo, digest, sync, *what.choices.values(), *more]:
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
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not debug:
        for noisy in ("alembic", "sqlalchemy"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def guarded(run: Callable[[], int], debug: bool) -> int:
    """Run a command; turn known failures into a one-line message and an exit code."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return run()
    except OppkitError as exc:
        if debug:
            raise
        print(f"oppkit: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except FileNotFoundError as exc:
        if debug:
            raise
        print(f"oppkit: error: {exc}", file=sys.stderr)
        return ConfigError.exit_code
    except SQLAlchemyError as exc:
        if debug:
            raise
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        print(f"oppkit: error: database failed: {detail}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("oppkit: interrupted; committed work is kept, the next run resumes", file=sys.stderr)
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.debug)
    return guarded(lambda: args.func(args), args.debug)


# --- agents -----------------------------------------------------------------------


def agent_main(what: str, argv: Sequence[str] | None = None) -> int:
    """Entry point of agents/*.py: one sync (or digest run), ``--once`` or ``--every DURATION``."""
    add_arguments, run, help_text = {**SYNCS, **AGENTS}[what]
    verb = "Send" if what in AGENTS else "Sync"
    parser = argparse.ArgumentParser(prog=f"{what}_agent", description=f"{verb} {help_text}.")
    _common(parser)
    add_arguments(parser)
    when = parser.add_mutually_exclusive_group()
    when.add_argument("--once", action="store_true", help="run one sync and exit (default)")
    when.add_argument("--every", type=parse_duration, metavar="DURATION", help="repeat, e.g. 15m")
    args = parser.parse_args(argv)
    _setup_logging(args.debug)
    while True:
        code = guarded(lambda: _print_summaries(run(args)), args.debug)
        if not args.every:
            return code
        if code == 2:  # bad configuration does not get better by waiting
            return code
        sys.stdout.flush()
        time.sleep(args.every)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
