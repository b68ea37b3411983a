"""``oppkit report add|list|run``: saved reports (oppkit.saved_reports) from a shell,
and the ``report`` agent that ``oppkit agents run`` runs on a schedule.

Each run prints (or, as an agent, logs) one line and is recorded in ``sync_runs``, so
``oppkit status`` shows when a report last ran: ``report NAME: N found, M added to
CAMPAIGN, K deals created`` (and ``, J without a deal (no account)`` when some
found could have none). Bad input (an unknown report, campaign or condition) is one
line on stderr and exit 2; with ``--all`` every report is checked before any runs.

Examples::

    oppkit report add webinar-leads --campaign "Spring webinar" \\
        --where account_industry=Manufacturing --where title_contains=data \\
        --where title_contains=analytics --where active_within_days=30
    oppkit report list
    oppkit report run webinar-leads
    oppkit report run --all

In oppkit.toml, a report every hour under ``oppkit agents run``::

    [[agents]]
    source = "report"
    options = ["webinar-leads"]       # or ["--all"]
    every = "1h"
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .config import Settings, load_settings
from .errors import ConfigError

__all__ = ["add_commands", "add_run_arguments", "run_reports"]


def _reports(args: argparse.Namespace, settings: Settings) -> Any:
    from .db.engine import connect_engine
    from .saved_reports import Reports
    from .scope import Scope

    engine = connect_engine(settings.resolved_database_url)
    return Reports(Scope(engine, user=getattr(args, "user", None)), settings)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``oppkit report run`` (and of a ``source = "report"`` agent)."""
    parser.add_argument("names", nargs="*", metavar="NAME", help="saved reports to run")
    parser.add_argument("--all", action="store_true", help="run every saved report")
    parser.add_argument(
        "--user", metavar="EMAIL",
        help="whose view: people known only from private deals of others stay out",
    )  # fmt: skip


def run_reports(args: argparse.Namespace) -> list:
    """Run the reports ``args`` name (or ``--all``), each recorded as a run; their
    :class:`~oppkit.saved_reports.ReportRun` results. All are checked before any runs."""
    from .saved_reports import report_entries
    from .sync.runs import recorded_run

    if bool(args.names) == bool(args.all):
        raise ConfigError("give a report NAME (or several), or --all")
    settings = load_settings(args.db)
    reports = _reports(args, settings)
    try:
        if args.all:
            saved, problems = report_entries(settings)
            if problems:
                raise ConfigError(problems[0])
            if not saved:
                raise ConfigError(
                    f"no [[reports]] in {settings.config_path or 'oppkit.toml'} "
                    "(oppkit report add NAME --campaign C --where KEY=VALUE makes one)"
                )
        else:
            saved = [reports.get(name) for name in dict.fromkeys(args.names)]
        for report in saved:
            reports.check(report)
        results = []
        for report in saved:
            with recorded_run(reports.scope.engine, "report", "report", report.name) as run:
                run.counts = reports.run(report)
            results.append(run.counts)
        return results
    finally:
        reports.scope.engine.dispose()


def _where(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected CONDITION=VALUE, got {text!r}")
    return name.strip(), value.strip()


def _cmd_add(args: argparse.Namespace) -> int:
    from .people_filter import describe

    where: dict[str, Any] = {}
    for name, value in args.where:  # a condition given again: a list (any of them)
        if name not in where:
            where[name] = value
        elif isinstance(where[name], list):
            where[name].append(value)
        else:
            where[name] = [where[name], value]
    settings = load_settings(args.db)
    reports = _reports(args, settings)
    try:
        report = reports.save(
            args.name, args.campaign, where, create_deals=args.deals, owner=args.owner
        )
        found = len(reports.preview(report))
    finally:
        reports.scope.engine.dispose()
    path = settings.config_path or Path.cwd() / "oppkit.toml"
    print(f"report {report.name} saved to {path}: {describe(report.where)} -> "
          f"{report.campaign} ({found} found now)")  # fmt: skip
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from .people_filter import describe
    from .saved_reports import report_entries

    settings = load_settings(args.db)
    saved, problems = report_entries(settings)
    for report in saved:
        deals = "creates deals" if report.create_deals else "no deals"
        owner = f", owner {report.owner}" if report.owner else ""
        print(f"{report.name}: {describe(report.where)} -> {report.campaign} ({deals}{owner})")
    for problem in problems:
        print(f"oppkit: error: {settings.config_path}: {problem}", file=sys.stderr)
    if not saved and not problems:
        print("no saved reports: oppkit report add NAME --campaign C --where KEY=VALUE")
    return ConfigError.exit_code if problems else 0


def _cmd_run(args: argparse.Namespace) -> int:
    for result in run_reports(args):
        print(result.line())
    return 0


def add_commands(commands: argparse._SubParsersAction) -> list[argparse.ArgumentParser]:
    """Add ``report add|list|run`` to the ``oppkit`` parser; returns the new parsers."""
    from .people_filter import CONDITIONS

    group = commands.add_parser("report", help="saved reports that add people to campaigns")
    sub = group.add_subparsers(dest="report_command", required=True, metavar="ACTION")
    add = sub.add_parser(
        "add", help="save a report in oppkit.toml",
        epilog="conditions: " + ", ".join(CONDITIONS),
    )  # fmt: skip
    add.add_argument("name", help="how commands will name it")
    add.add_argument("--campaign", required=True, help="the campaign (name or id) it fills")
    add.add_argument(
        "--where", action="append", type=_where, default=[], metavar="CONDITION=VALUE",
        help="a condition (repeatable; the same one again: any of the values)",
    )  # fmt: skip
    add.add_argument(
        "--no-deals", dest="deals", action="store_false",
        help="add people to the campaign only (default: a deal per contact as well)",
    )  # fmt: skip
    add.add_argument("--owner", metavar="EMAIL", help="who owns the deals it creates")
    add.add_argument("--user", metavar="EMAIL", help="whose view it is checked in")
    add.set_defaults(func=_cmd_add)
    listing = sub.add_parser("list", help="the saved reports of oppkit.toml")
    listing.set_defaults(func=_cmd_list)
    run = sub.add_parser("run", help="run saved reports: add the people they find")
    add_run_arguments(run)
    run.set_defaults(func=_cmd_run)
    return [group, add, listing, run]
