"""``oppkit agreements check``: expiring agreements as alerts on their accounts' open deals,
and the ``agreements`` agent that ``oppkit agents run`` runs on a schedule.

The same check runs after every Salesforce sync (:mod:`oppkit.agreement_alerts`); this
is for agreements made in oppkit, a day that passed without a sync, or a team without
Salesforce. Each run prints (or, as an agent, logs) one line and is a ``sync_runs`` row,
so ``oppkit status`` shows when it last ran.

Examples::

    oppkit agreements check
    oppkit agreements check --today 2026-11-02

In oppkit.toml, every morning under ``oppkit agents run``::

    [[agents]]
    source = "agreements"
    every = "1d"
"""

from __future__ import annotations

import argparse
from datetime import date

from .config import load_settings

__all__ = ["add_check_arguments", "add_commands", "run_check"]


def add_check_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``oppkit agreements check`` (and of a ``source = "agreements"`` agent)."""
    parser.add_argument(
        "--today", type=date.fromisoformat, metavar="YYYY-MM-DD",
        help="the day to check from (default: today, UTC)",
    )  # fmt: skip


def run_check(args: argparse.Namespace) -> list:
    """Run the check once, recorded as a run; its :class:`AgreementCheck` in a list."""
    from .agreement_alerts import check_agreements
    from .db.engine import connect_engine, write_transaction
    from .sync.runs import recorded_run

    settings = load_settings(args.db)
    engine = connect_engine(settings.resolved_database_url)
    try:
        with recorded_run(engine, "agreements", "agreements") as run:
            with write_transaction(engine) as conn:
                run.counts = check_agreements(conn, settings, getattr(args, "today", None))
        return [run.counts]
    finally:
        engine.dispose()


def _cmd_check(args: argparse.Namespace) -> int:
    for result in run_check(args):
        print(result.line())
    return 0


def add_commands(commands: argparse._SubParsersAction) -> list[argparse.ArgumentParser]:
    """Add ``agreements check`` to the ``oppkit`` parser; returns the new parsers."""
    group = commands.add_parser("agreements", help="expiring agreements: alerts on open deals")
    sub = group.add_subparsers(dest="agreements_command", required=True, metavar="ACTION")
    check = sub.add_parser(
        "check", help="alert the open deals of accounts whose agreements end soon"
    )
    add_check_arguments(check)
    check.set_defaults(func=_cmd_check)
    return [group, check]
