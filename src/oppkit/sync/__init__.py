"""Sync: read a source, write the shared database.

Every source is declared once in :mod:`oppkit.sources.catalog`;
:func:`~oppkit.sync.declared_sources.run_source` runs any of them through the
:class:`~oppkit.sync.runner.SyncRunner`, and the ``sync_*`` functions
(:mod:`oppkit.sync.source_functions`) are its shortcuts for the built-in sources. Each
opens the database (migrating lazily) and returns the run's :class:`RunSummary`.

Example::

    from oppkit.sync import run_source, sync_mail
    print(sync_mail("rep.mbox").line())
    print(run_source("calendar/ics", "team.ics").line())
"""

from __future__ import annotations

from .declared_sources import run_source
from .runner import RunSummary, SyncRunner
from .source_functions import (
    sync_caldav,
    sync_calendar,
    sync_exchange,
    sync_imap,
    sync_mail,
    sync_salesforce,
    sync_salesforce_export,
)

__all__ = [
    "RunSummary",
    "SyncRunner",
    "run_source",
    "sync_caldav",
    "sync_calendar",
    "sync_exchange",
    "sync_imap",
    "sync_mail",
    "sync_salesforce",
    "sync_salesforce_export",
]
