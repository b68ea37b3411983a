"""Sync: read a source, write the shared database. One function per source.

Each function opens the database (migrating lazily), runs the source through the
:class:`~oppkit.sync.runner.SyncRunner` and returns its :class:`RunSummary`.

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
from ..db.engine import connect_engine
from ..errors import ConfigError
from .alert_writer import refresh_unanswered
from .runner import RunSummary, SyncRunner

if TYPE_CHECKING:  # simple-salesforce is heavy: notebooks and mail agents never load it
    from ..sources.exchange import ExchangeSettings
    from ..sources.imap import ImapSettings
    from ..sources.salesforce_client import SalesforceSettings

__all__ = [
    "RunSummary",
    "SyncRunner",
    "sync_caldav",
    "sync_calendar",
    "sync_exchange",
    "sync_imap",
    "sync_mail",
    "sync_salesforce",
    "sync_salesforce_export",
]


def _engine(db: str | Engine | None, settings: Settings) -> Engine:
    if isinstance(db, Engine):
        return db
    return connect_engine(db or settings.resolved_database_url)


def _existing(path: str | Path, what: str) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise ConfigError(f"{what} not found: {path}")
    return path


def _run(
    agent: str,
    source: str,
    read,  # noqa: ANN001  (path, previous cursors) -> records
    path: Path,
    db: str | Engine | None,
    settings: Settings | None,
    progress: bool | None,
) -> RunSummary:
    settings = settings or load_settings()
    after = refresh_unanswered if agent == "mail" else None
    runner = SyncRunner(
        _engine(db, settings),
        settings,
        agent=agent,
        source=source,
        progress=progress,
        after_run=after,
    )
    return runner.run(read(path, runner.cursors()))


def sync_mail(
    path: str | Path,
    db: str | Engine | None = None,
    settings: Settings | None = None,
    progress: bool | None = None,
) -> RunSummary:
    """Sync an mbox file, an .eml file or a folder of them into the database."""
    from ..sources.mail import read_mail

    return _run("mail", "file", read_mail, _existing(path, "mailbox"), db, settings, progress)


def sync_imap(
    server: ImapSettings,
    db: str | Engine | None = None,
    settings: Settings | None = None,
    progress: bool | None = None,
) -> RunSummary:
    """Sync the folders of one IMAP mailbox, incrementally by UIDVALIDITY + UID."""
    from ..sources.imap import read_imap

    settings = settings or load_settings()
    runner = SyncRunner(
        _engine(db, settings), settings, agent="mail", source="imap", progress=progress,
        lock=f"imap:{server.describe()}", after_run=refresh_unanswered,
    )  # fmt: skip
    return runner.run(read_imap(server, runner.cursors()))


def sync_exchange(
    server: ExchangeSettings,
    db: str | Engine | None = None,
    settings: Settings | None = None,
    *,
    calendar: bool = False,
    progress: bool | None = None,
) -> RunSummary:
    """Sync Exchange mail folders (incremental by EWS sync state) or calendars (a window)."""
    from ..sources.exchange import read_exchange_calendar, read_exchange_mail

    settings = settings or load_settings()
    agent = "calendar" if calendar else "mail"
    runner = SyncRunner(
        _engine(db, settings), settings, agent=agent, source="ews", progress=progress,
        lock=f"ews-{agent}:{server.endpoint}", after_run=None if calendar else refresh_unanswered,
    )  # fmt: skip
    read = read_exchange_calendar if calendar else read_exchange_mail
    return runner.run(read(server, runner.cursors()))


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
    from ..sources.caldav_source import read_caldav

    settings = settings or load_settings()
    runner = SyncRunner(
        _engine(db, settings), settings, agent="calendar", source="caldav", progress=progress,
        lock=f"caldav:{username or ''}@{url}",
    )  # fmt: skip
    records = read_caldav(
        url, runner.cursors(), username=username, password=password, calendars=calendars,
        session_verify=ca_file,
    )  # fmt: skip
    return runner.run(records)


def sync_calendar(
    path: str | Path,
    db: str | Engine | None = None,
    settings: Settings | None = None,
    progress: bool | None = None,
) -> RunSummary:
    """Sync an .ics file or a folder of .ics files into the database."""
    from ..sources.ics import read_calendars

    return _run(
        "calendar", "ics", read_calendars, _existing(path, "calendar"), db, settings, progress
    )


def sync_salesforce_export(
    directory: str | Path,
    db: str | Engine | None = None,
    settings: Settings | None = None,
    progress: bool | None = None,
) -> RunSummary:
    """Sync a Salesforce Data Export folder (Account.csv, Opportunity.csv, ...)."""
    from ..sources.salesforce_export import read_export

    directory = _existing(directory, "Salesforce export folder")
    if not directory.is_dir():
        raise ConfigError(f"not a folder: {directory}")
    return _run("salesforce-export", "csv", read_export, directory, db, settings, progress)


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
    from ..sources.salesforce import DEFAULT_OVERLAP, read_salesforce
    from ..sources.salesforce_client import SalesforceClient, SalesforceSettings

    settings = settings or load_settings()
    config = settings.extra.get("salesforce", {}) if settings.extra else {}
    salesforce = salesforce or SalesforceSettings.from_env(config)
    if overlap is None:
        minutes = config.get("overlap_minutes")
        overlap = timedelta(minutes=float(minutes)) if minutes is not None else DEFAULT_OVERLAP
    engine = _engine(db, settings)
    runner = SyncRunner(
        engine, settings, agent="salesforce", source="api", progress=progress,
        lock=f"salesforce:{salesforce.describe()}", lock_wait=lock_wait,
    )  # fmt: skip
    client = SalesforceClient.connect(salesforce)
    records = read_salesforce(
        client, runner.cursors(), objects=objects, overlap=overlap,
        opportunity_attributes=config.get("opportunity_attributes"),
    )  # fmt: skip
    return runner.run(records)
