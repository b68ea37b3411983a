"""One Python function per built-in source, for notebooks, the demo and benchmarks.

Each is a thin wrapper: it turns its arguments into the source's target and calls
:func:`~oppkit.sync.declared_sources.run_source` with the declaration from
:mod:`oppkit.sources.catalog`. A new source needs none of these: ``run_source("agent/name",
target)`` runs any declared source.

Example::

    from oppkit.sync import sync_mail
    print(sync_mail("rep.mbox").line())
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from ..config import Settings, load_settings
from .declared_sources import run_source
from .runner import RunSummary

if TYPE_CHECKING:  # simple-salesforce is heavy: notebooks and mail agents never load it
    from ..sources.exchange import ExchangeSettings
    from ..sources.imap import ImapSettings
    from ..sources.salesforce_client import SalesforceSettings


def sync_mail(
    path: str | Path,
    db: str | Engine | None = None,
    settings: Settings | None = None,
    progress: bool | None = None,
) -> RunSummary:
    """Sync an mbox file, an .eml file or a folder of them into the database."""
    return run_source("mail/file", path, db, settings, progress=progress)


def sync_imap(
    server: ImapSettings,
    db: str | Engine | None = None,
    settings: Settings | None = None,
    progress: bool | None = None,
) -> RunSummary:
    """Sync the folders of one IMAP mailbox, incrementally by UIDVALIDITY + UID."""
    return run_source("mail/imap", server, db, settings, progress=progress)


def sync_exchange(
    server: ExchangeSettings,
    db: str | Engine | None = None,
    settings: Settings | None = None,
    *,
    calendar: bool = False,
    progress: bool | None = None,
) -> RunSummary:
    """Sync Exchange mail folders (incremental by EWS sync state) or calendars (a window)."""
    source = "calendar/ews" if calendar else "mail/ews"
    return run_source(source, server, db, settings, progress=progress)


def sync_caldav(
    url: str,
    db: str | Engine | None = None,
    settings: Settings | None = None,
    *,
    username: str | None = None,
    password: str | None = None,
    calendars: list[str] | None = None,
    ca_file: str | None = None,
    progress: bool | None = None,
) -> RunSummary:
    """Sync the calendars of a CalDAV account, incrementally by sync-token (or ETag)."""
    from ..sources.caldav_source import CaldavAccount

    account = CaldavAccount(
        url, username, password, tuple(calendars) if calendars else None, ca_file
    )
    return run_source("calendar/caldav", account, db, settings, progress=progress)


def sync_calendar(
    path: str | Path,
    db: str | Engine | None = None,
    settings: Settings | None = None,
    progress: bool | None = None,
) -> RunSummary:
    """Sync an .ics file or a folder of .ics files into the database."""
    return run_source("calendar/ics", path, db, settings, progress=progress)


def sync_salesforce_export(
    directory: str | Path,
    db: str | Engine | None = None,
    settings: Settings | None = None,
    progress: bool | None = None,
) -> RunSummary:
    """Sync a Salesforce Data Export folder (Account.csv, Opportunity.csv, ...)."""
    return run_source("salesforce-export/csv", directory, db, settings, progress=progress)


def sync_salesforce(
    db: str | Engine | None = None,
    settings: Settings | None = None,
    *,
    salesforce: SalesforceSettings | None = None,
    objects: list[str] | None = None,
    overlap: timedelta | None = None,
    lock_wait: float = 0.0,
    progress: bool | None = None,
) -> RunSummary:
    """Sync a Salesforce org through its REST API, incrementally (see oppkit.sources.salesforce).

    Credentials come from ``salesforce`` or the OPPKIT_SF_* environment variables; custom
    Opportunity fields map to attributes via oppkit.toml's
    ``[salesforce.opportunity_attributes]`` (e.g. ``Region__c = "region"``).
    """
    from ..sources.salesforce import salesforce_org

    settings = settings or load_settings()
    org = salesforce_org(settings, salesforce, objects=objects, overlap=overlap)
    return run_source("salesforce/api", org, db, settings, progress=progress, lock_wait=lock_wait)
