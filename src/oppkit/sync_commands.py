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

from .config import load_settings
from .errors import OppkitError
from .sources.agents_config import add_agent_options, chosen_sources, with_environment
from .sources.catalog import agents, sources_of


def run_agent(agent: str, args: argparse.Namespace) -> list:
    """Run every source of ``agent`` these arguments name, each target in turn.

    Targets are built one source at a time, so a source's bad configuration stops the
    command only after the sources before it have run (and kept their work); it is
    recorded as a failed run, which ``oppkit status`` shows. ``args.db`` is a URL, None
    (the settings' database) or an engine (``oppkit agents run`` keeps one open).
    """
    from .sync.declared_sources import engine_for, run_source
    from .sync.runs import record_failure

    options = with_environment(args, sources_of(agent))
    chosen = chosen_sources(agent, options)
    settings = load_settings(args.db if isinstance(args.db, str) else None)
    engine = engine_for(args.db, settings)
    summaries = []
    for source in chosen:
        lock_wait = getattr(options, source.lock_wait_from) if source.lock_wait_from else 0.0
        try:
            targets = list(source.targets_for(options, settings))
        except OppkitError as exc:  # e.g. a password not set: a failed run status shows
            record_failure(engine, agent, source.name, None, str(exc))
            raise
        for target in targets:
            summaries.append(
                run_source(
                    source, target, engine, settings, progress=args.progress, lock_wait=lock_wait
                )
            )
    return summaries


def sync_commands() -> dict[str, tuple[Callable, Callable, str]]:
    """``{agent: (add its options, run it, help)}`` for every declared agent."""
    return {
        agent: (partial(add_agent_options, agent=agent), partial(run_agent, agent), help_text)
        for agent, help_text in agents().items()
    }
