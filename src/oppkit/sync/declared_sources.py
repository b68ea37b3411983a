"""Run one target of one declared source: the single way every sync is run.

Why: the CLI, the agents and the ``sync_*`` functions all end here, so a source declared
in :mod:`oppkit.sources.catalog` runs the same way whoever starts it: the target is
checked, the database opened (and migrated lazily), a :class:`SyncRunner` built from the
declaration (agent, source label, lock, after-run hooks) and the reader's records written.

Example::

    from oppkit.sync.declared_sources import run_source
    print(run_source("mail/file", "rep.mbox").line())
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine

from ..agreement_alerts import check_agreements
from ..config import Settings, load_settings
from ..db.engine import connect_engine
from ..errors import OppkitError
from ..sources.catalog import find_source
from ..sources.declaration import Source, resolve, target_label
from .alert_writer import refresh_unanswered
from .runner import RunSummary, SyncRunner
from .runs import record_failure

# After-run hooks by the name a declaration uses, called with (connection, settings); all
# of a run's hooks share one transaction after its last commit.
AFTER_RUN_HOOKS: dict[str, Callable[[Connection, Settings], Any]] = {
    "refresh_unanswered": lambda conn, settings: refresh_unanswered(conn),
    # expiring agreements (Salesforce Contracts) as alerts on their accounts' open deals
    "check_agreements": lambda conn, settings: check_agreements(conn, settings),
}
# Before-run hooks, run under the run's lock with (engine, target, settings); what one
# returns (an object with ``line()``, or None) joins the run's summary line.
# Named as "module:function" and imported only when a run needs them (declarations
# load no client library).
BEFORE_RUN_HOOKS: dict[str, str] = {
    "push_salesforce_changes": "oppkit.sync.salesforce_push:push_before_pull",
}


def engine_for(db: str | Engine | None, settings: Settings) -> Engine:
    """``db`` itself when it is an engine, else an engine for the URL (or the settings')."""
    if isinstance(db, Engine):
        return db
    return connect_engine(db or settings.resolved_database_url)


def after_run_of(
    source: Source, settings: Settings | None = None
) -> Callable[[Connection], None] | None:
    """The source's after-run hooks as one callable, or None when it names none."""
    try:
        hooks = [AFTER_RUN_HOOKS[name] for name in source.after_run]
    except KeyError as exc:
        raise ValueError(f"source {source.key}: no after-run hook {exc.args[0]!r}") from None
    if not hooks:
        return None

    def after_run(conn: Connection) -> None:
        for hook in hooks:
            hook(conn, settings or load_settings())

    return after_run


def run_source(
    source: str | Source,
    target: Any,
    db: str | Engine | None = None,
    settings: Settings | None = None,
    *,
    progress: bool | None = None,
    lock_wait: float = 0.0,
) -> RunSummary:
    """Sync one target (a path, a server, an org) of a source declared as ``agent/name``.

    ``db`` is a URL or an engine (default: the settings' database); ``lock_wait`` is how
    long to wait for another agent holding the source's lock before giving up.
    """
    declared = find_source(source) if isinstance(source, str) else source
    settings = settings or load_settings()
    engine = engine_for(db, settings)
    try:
        target = declared.checked(target)
    except OppkitError as exc:  # a missing path: a failed run that status shows
        record_failure(engine, declared.agent, declared.name, target_label(target), str(exc))
        raise
    try:
        hooks = [resolve(BEFORE_RUN_HOOKS[name]) for name in declared.before_run]
    except KeyError as exc:
        raise ValueError(f"source {declared.key}: no before-run hook {exc.args[0]!r}") from None
    runner = SyncRunner(
        engine,
        settings,
        agent=declared.agent,
        source=declared.name,
        progress=progress,
        lock=declared.lock_key(target),
        lock_wait=lock_wait,
        target=target_label(target),
        after_run=after_run_of(declared, settings),
        before_run=[lambda hook=hook: hook(engine, target, settings) for hook in hooks],
    )
    return runner.run(declared.read(target, runner.cursors()))
