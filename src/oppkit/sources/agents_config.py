"""An agent's options as the CLI parses them, and the ``[[agents]]`` of oppkit.toml.

Why here: ``oppkit sync <agent>``, ``oppkit agents run`` (every configured agent on its
own schedule) and ``oppkit status`` (how fresh each configured source is) must read an
agent's options the same way, from the declarations in :mod:`oppkit.sources.catalog`.
Plain data and argparse: no SQL, no sync.

``[[agents]]`` in oppkit.toml::

    [[agents]]
    source = "mail"          # an agent: mail, calendar, salesforce, salesforce-export, digest,
                             # report (options: a saved report's name, or --all),
                             # agreements (expiring agreements as alerts)
    options = ["--imap-host", "127.0.0.1", "--imap-user", "ava"]   # its CLI options
    every = "15m"            # its schedule
    name = "ava-mail"        # optional: how logs call it (default: the agent)

Secrets stay in the environment (``OPPKIT_IMAP_PASSWORD``...), never in options.

Example::

    entries, problems = agent_entries(load_settings())
    for entry in entries:
        entry_targets(entry, settings)     # [("file", "/data/ava.mbox")]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from ..config import Settings, env_setting
from ..errors import ConfigError
from .catalog import agents, sources_of
from .declaration import Option, OptionGroup, Source, SourceOptions, parse_duration, target_label

# Agents the CLI runs that read no source (oppkit.cli.AGENTS): configurable all the same.
OTHER_AGENTS = ("digest", "report", "agreements")
ENTRY_KEYS = ("source", "options", "every", "name")


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


def with_environment(args: argparse.Namespace, sources: list[Source]) -> SourceOptions:
    """A copy of ``args`` where an option not given takes its ``OPPKIT_<env>`` value."""
    options = argparse.Namespace(**vars(args))
    for source in sources:
        for option in source.all_options():
            if option.env and not getattr(options, option.dest, None):
                setattr(options, option.dest, env_setting(option.env))
    return options


def ask_for_one(sources: list[Source]) -> str:
    """'give --mbox PATH, --imap-host HOST or --ews-url URL'"""
    usages: list[str] = []
    for source in sources:
        trigger: Option | None = source.trigger_option()
        if trigger is not None and trigger.usage not in usages:
            usages.append(trigger.usage)
    listed = ", ".join(usages[:-1]) + " or " + usages[-1] if len(usages) > 1 else usages[0]
    return f"give {listed}"


def chosen_sources(agent: str, options: SourceOptions) -> list[Source]:
    """The sources of ``agent`` these options turn on; ConfigError when none is."""
    sources = sources_of(agent)
    chosen = [s for s in sources if s.is_given(options)]
    if not chosen:
        raise ConfigError(ask_for_one(sources))
    return chosen


# --- [[agents]] in oppkit.toml ----------------------------------------------------------


class OptionsParser(argparse.ArgumentParser):
    """An ArgumentParser that raises ConfigError instead of printing usage and exiting."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(add_help=False, allow_abbrev=False, **kwargs)

    def error(self, message: str):  # noqa: ANN201
        raise ConfigError(message)


def parse_options(parser: argparse.ArgumentParser, options: list[str]) -> argparse.Namespace:
    """Options as ``parser`` reads them; ConfigError naming every unknown one."""
    args, extra = parser.parse_known_args(options)
    if extra:
        unknown = [x for x in extra if x.startswith("-")] or extra
        what = "unknown option" if unknown[0].startswith("-") else "unexpected value"
        raise ConfigError(f"{what}{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}")
    return args


@dataclass(frozen=True)
class AgentEntry:
    """One ``[[agents]]`` entry: an agent, its options and its schedule."""

    number: int  # its place among the [[agents]] entries, from 1 (for messages)
    agent: str
    options: tuple[str, ...]
    every: float  # seconds
    every_text: str
    name: str  # how logs call it: ``name =``, else the agent (``mail#2`` when repeated)

    @property
    def where(self) -> str:
        return f"[[agents]] {self.number} ({self.name})"


def known_agents() -> list[str]:
    return [*agents(), *OTHER_AGENTS]


def agent_entries(settings: Settings) -> tuple[list[AgentEntry], list[str]]:
    """The ``[[agents]]`` of oppkit.toml, and one line per problem found in them."""
    raw = (settings.extra or {}).get("agents", [])
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        return [], ["agents must be an array of tables: [[agents]]"]
    entries: list[AgentEntry] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    names: set[str] = set()
    for number, table in enumerate(raw, start=1):
        agent = table.get("source")
        name = table.get("name")
        if isinstance(agent, str):
            seen[agent] = seen.get(agent, 0) + 1
            name = name or (agent if seen[agent] == 1 else f"{agent}#{seen[agent]}")
        where = f"[[agents]] {number}" + (f" ({name})" if isinstance(name, str) else "")
        found = _entry_problems(table, where)
        if not found and name in names:
            found = [f"{where}: another entry is called {name!r} (give a name =)"]
        if found:
            problems += found
            continue
        names.add(name)
        every = str(table["every"])
        entries.append(
            AgentEntry(
                number, agent, tuple(table.get("options", ())), parse_duration(every), every, name
            )  # fmt: skip
        )
    return entries, problems


def _entry_problems(table: dict, where: str) -> list[str]:
    problems = [f"{where}: unknown key {key!r}" for key in table if key not in ENTRY_KEYS]
    agent = table.get("source")
    if agent is None:
        problems.append(f'{where}: no source (e.g. source = "mail")')
    elif agent not in known_agents():
        problems.append(f"{where}: unknown source {agent!r} (one of: {', '.join(known_agents())})")
    options = table.get("options", [])
    if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
        problems.append(f"{where}: options must be a list of strings")
    if "name" in table and (not isinstance(table["name"], str) or not table["name"].strip()):
        problems.append(f"{where}: name must be a non-empty string")
    every = table.get("every")
    if every is None:
        problems.append(f'{where}: no schedule (e.g. every = "15m")')
    else:
        try:
            if parse_duration(str(every)) <= 0:
                raise argparse.ArgumentTypeError(f"not a duration: {every!r} (must be > 0)")
        except argparse.ArgumentTypeError as exc:
            problems.append(f"{where}: every: {exc}")
    return problems


def entry_targets(entry: AgentEntry, settings: Settings) -> list[tuple[str | None, str | None]]:
    """``(source label, target)`` pairs one entry syncs, as its runs record them.

    None stands for "any": an agent that reads no source, options that do not parse, or
    a target that cannot be named without its secrets.
    """
    if entry.agent not in agents():
        return [(None, None)]
    parser = OptionsParser()
    add_agent_options(parser, entry.agent)
    try:
        options = with_environment(parse_options(parser, list(entry.options)),
                                   sources_of(entry.agent))  # fmt: skip
        chosen = chosen_sources(entry.agent, options)
    except ConfigError:
        return [(None, None)]
    pairs: list[tuple[str | None, str | None]] = []
    for source in chosen:
        try:
            labels = [target_label(t) for t in source.targets_for(options, settings)]
        except Exception:  # noqa: BLE001 - a target needing a secret not set here
            labels = [None]
        pairs += [(source.name, label) for label in labels]
    return pairs
