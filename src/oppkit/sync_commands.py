"""``oppkit sync <agent>`` and agents/<agent>_agent.py, derived from the source declarations.

Why: one agent groups several sources (``oppkit sync mail`` reads mbox files, IMAP and
Exchange); its options, the check that at least one source is named, the environment
fallbacks and the runs (one per target, in declared order) all come from
:mod:`oppkit.sources.catalog`, so a newly declared source needs no code here.

Example::

    parser = argparse.ArgumentParser()
    add_agent_options(parser, "mail")
    summaries = run_agent("mail", parser.parse_args(["--mbox", "rep.mbox"]))
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import partial

from .config import env_setting, load_settings
from .errors import ConfigError
from .sources.catalog import agents, sources_of
from .sources.declaration import Option, OptionGroup, Source, SourceOptions


def add_agent_options(parser: argparse.ArgumentParser, agent: str) -> None:
    """Add the options of every source of ``agent``; a shared group is added once."""
    added: set[str] = set()
    environment: list[str] = []
    for source in sources_of(agent):
        for item in source.options:
            if isinstance(item, OptionGroup):
                if item.title in added:
                    continue
                added.add(item.title)
                group = parser.add_argument_group(item.title)
                for option in item.options:
                    option.add_to(group)
            elif item.flag not in added:
                added.add(item.flag)
                item.add_to(parser)
        environment += [
            f"OPPKIT_{n}" for n in source.environment if f"OPPKIT_{n}" not in environment
        ]
    if environment and parser.epilog is None:
        parser.epilog = "environment: " + ", ".join(environment)


def _with_environment(args: argparse.Namespace, sources: list[Source]) -> SourceOptions:
    """A copy of ``args`` where an option not given takes its ``OPPKIT_<env>`` value."""
    options = argparse.Namespace(**vars(args))
    for source in sources:
        for option in source.all_options():
            if option.env and not getattr(options, option.dest, None):
                setattr(options, option.dest, env_setting(option.env))
    return options


def _ask_for_one(sources: list[Source]) -> str:
    """'give --mbox PATH, --imap-host HOST or --ews-url URL'"""
    usages: list[str] = []
    for source in sources:
        trigger: Option | None = source.trigger_option()
        if trigger is not None and trigger.usage not in usages:
            usages.append(trigger.usage)
    listed = ", ".join(usages[:-1]) + " or " + usages[-1] if len(usages) > 1 else usages[0]
    return f"give {listed}"


def run_agent(agent: str, args: argparse.Namespace) -> list:
    """Run every source of ``agent`` these arguments name, each target in turn.

    Targets are built one source at a time, so a source's bad configuration stops the
    command only after the sources before it have run (and kept their work).
    """
    from .sync.declared_sources import run_source

    sources = sources_of(agent)
    options = _with_environment(args, sources)
    chosen = [s for s in sources if s.is_given(options)]
    if not chosen:
        raise ConfigError(_ask_for_one(sources))
    settings = load_settings(args.db)
    summaries = []
    for source in chosen:
        lock_wait = getattr(options, source.lock_wait_from) if source.lock_wait_from else 0.0
        for target in source.targets_for(options, settings):
            summaries.append(
                run_source(
                    source, target, settings=settings, progress=args.progress, lock_wait=lock_wait
                )
            )
    return summaries


def sync_commands() -> dict[str, tuple[Callable, Callable, str]]:
    """``{agent: (add its options, run it, help)}`` for every declared agent."""
    return {
        agent: (partial(add_agent_options, agent=agent), partial(run_agent, agent), help_text)
        for agent, help_text in agents().items()
    }
