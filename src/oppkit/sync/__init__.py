"""Sync: read a source, write the shared database. One function per source.

Each function opens the database (migrating lazily), runs the source through the
:class:`~oppkit.sync.runner.SyncRunner` and returns its :class:`RunSummary`.

Example::

    from oppkit.sync import sync_mail
    print(sync_mail("rep.mbox").line())
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from ..config import Settings, load_settings
from ..db.engine import connect_engine
from ..errors import ConfigError
from .runner import RunSummary, SyncRunner

__all__ = ["RunSummary", "SyncRunner", "sync_calendar", "sync_mail", "sync_salesforce_export"]


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
    runner = SyncRunner(
        _engine(db, settings), settings, agent=agent, source=source, progress=progress
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
