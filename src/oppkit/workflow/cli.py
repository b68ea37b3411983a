"""``oppkit workflow ...`` and ``oppkit lifecycle ...``: the commands, kept out of cli.py.

Examples::

    oppkit workflow load our_workflow.toml       # exit 2 and one problem per line if invalid
    oppkit workflow export our_workflow.toml
    oppkit workflow available "Acme pilot"
    oppkit workflow transition "Acme pilot" "Send proposal" --set amount=5000 --set close_date=2026-12-31
    oppkit workflow deliver                      # retry messages that could not be sent
    oppkit lifecycle apply
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ConfigError


def _kit(args: argparse.Namespace):  # noqa: ANN202
    from ..kit import connect

    return connect(args.db, user=getattr(args, "user", None))


def _ref(text: str) -> int | str:
    return int(text) if text.strip().isdigit() else text


def _not_found_is_bad_input(run: Callable[[], int]) -> int:
    from ..kit import NotFoundError

    try:
        return run()
    except NotFoundError as exc:
        raise ConfigError(str(exc)) from exc


def _pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), value


def _cmd_load(args: argparse.Namespace) -> int:
    if args.file is not None and not args.file.is_file():
        raise ConfigError(f"no such workflow file: {args.file}")
    definition = _kit(args).workflow.load(args.file)
    print(
        f"workflow loaded from {args.file or 'the default'}: {len(definition.stages)} stages, "
        f"{len(definition.steps)} steps, {len(definition.transitions)} transitions"
        + (f", {len(definition.stage_actions)} stage actions" if definition.stage_actions else "")
    )
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    text = _kit(args).workflow.export(args.file)
    if args.file is None:
        sys.stdout.write(text)
    else:
        print(f"workflow written to {args.file}")
    return 0


def _cmd_transition(args: argparse.Namespace) -> int:
    def run() -> int:
        values: dict[str, Any] = dict(args.set)
        result = _kit(args).workflow.transition(
            _ref(args.opportunity), args.transition, by=args.by, **values
        )
        sent = sum(m["status"] == "sent" for m in result.messages)
        failed = len(result.messages) - sent
        print(
            f"{result.transition}: {result.from_step} -> {result.to_step} "
            f"(stage {result.stage}); {len(result.links)} linked, {sent} sent, {failed} failed"
        )
        return 0

    return _not_found_is_bad_input(run)


def _cmd_available(args: argparse.Namespace) -> int:
    def run() -> int:
        df = _kit(args).workflow.available(_ref(args.opportunity))
        if df.empty:
            print("no transitions from this step")
        for row in df.itertuples():
            needs = f"needs {', '.join(row.missing)}" if row.missing else "ready"
            print(f"{row.transition} -> {row.to_step} ({row.to_stage}): {needs}")
        return 0

    return _not_found_is_bad_input(run)


def _cmd_deliver(args: argparse.Namespace) -> int:
    df = _kit(args).workflow.deliver()
    failed = int((df["status"] == "failed").sum()) if len(df) else 0
    print(f"outbox: {len(df) - failed} sent, {failed} failed")
    return 1 if failed else 0


def _cmd_lifecycle_apply(args: argparse.Namespace) -> int:
    changes = _kit(args).lifecycle.apply_rules()
    print(f"lifecycle: {len(changes)} changed")
    return 0


def add_commands(commands: argparse._SubParsersAction) -> list[argparse.ArgumentParser]:
    """Add ``workflow`` and ``lifecycle`` to the ``oppkit`` parser; returns the new parsers."""
    workflow = commands.add_parser("workflow", help="load, export and use the sales workflow")
    sub = workflow.add_subparsers(dest="workflow_command", required=True, metavar="ACTION")
    load = sub.add_parser("load", help="validate a workflow file and load it")
    load.add_argument("file", nargs="?", type=Path, help="TOML file (default: oppkit's own)")
    load.set_defaults(func=_cmd_load)
    export = sub.add_parser("export", help="write the workflow as TOML (stdout or FILE)")
    export.add_argument("file", nargs="?", type=Path)
    export.set_defaults(func=_cmd_export)
    transition = sub.add_parser("transition", help="move an opportunity along a transition")
    transition.add_argument("opportunity", help="name or id")
    transition.add_argument("transition", help="the transition's name")
    transition.add_argument(
        "--set", action="append", type=_pair, default=[], metavar="NAME=VALUE",
        help="an attribute to set (repeatable), e.g. --set amount=5000",
    )  # fmt: skip
    transition.add_argument("--by", metavar="EMAIL", help="who did it (default: --user)")
    transition.set_defaults(func=_cmd_transition)
    available = sub.add_parser("available", help="what an opportunity can do next")
    available.add_argument("opportunity", help="name or id")
    available.set_defaults(func=_cmd_available)
    deliver = sub.add_parser("deliver", help="send queued or failed messages again")
    deliver.set_defaults(func=_cmd_deliver)

    lifecycle = commands.add_parser("lifecycle", help="contact and account lifecycle")
    lsub = lifecycle.add_subparsers(dest="lifecycle_command", required=True, metavar="ACTION")
    apply = lsub.add_parser("apply", help="move contacts and accounts by the rules")
    apply.set_defaults(func=_cmd_lifecycle_apply)

    parsers = [workflow, load, export, transition, available, deliver, lifecycle, apply]
    for parser in parsers:
        parser.add_argument(
            "--user", metavar="EMAIL", default=argparse.SUPPRESS,
            help="who is acting: private opportunities are visible to owner and members",
        )  # fmt: skip
    return parsers
