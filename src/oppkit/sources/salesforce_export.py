"""Read a Salesforce Data Export folder (one CSV per object) into plain records.

Why: an org that gives no API access can still hand over its weekly Data Export
(Setup > Data Export). Its files use API field names and the same record ids as the
live API, so records read here carry ``source="salesforce"`` and land on the same rows
an API sync would write.

What: :func:`read_export` streams each known CSV in dependency order (stages, users,
accounts, contacts, campaigns, opportunities, then what hangs off them) and yields
records, :class:`Skipped` for rows it cannot use and a :class:`Checkpoint` per file
(and every :data:`CHECKPOINT_EVERY` rows) keyed by the file's SHA-256, so an unchanged
file is skipped on the next run and a killed run resumes mid-file.

Forgiving by design: files and columns may be missing (orgs differ); a bad optional
value (an amount of "n/a") is logged and stored as null; a row without its Id or a
required field is skipped; a file that is not UTF-8 or not CSV is skipped as a whole.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import logging
import math
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, NamedTuple, TypeVar
from urllib.parse import urlsplit

from dateutil.parser import isoparse

from oppkit.sources.records import (
    AccountRecord,
    ActivityRecord,
    CampaignMemberRecord,
    CampaignRecord,
    Checkpoint,
    OpportunityChangeRecord,
    OpportunityMemberRecord,
    OpportunityRecord,
    PersonRecord,
    Record,
    Skipped,
    StageRecord,
)
from oppkit.sources.text import make_snippet

log = logging.getLogger(__name__)

SOURCE = "salesforce"
CHECKPOINT_EVERY = 5000  # data rows between intermediate checkpoints
HISTORY_FILE = "OpportunityHistory.csv"
OPPORTUNITY_PREFIX = "006"  # Salesforce key prefixes of WhatId targets
ACCOUNT_PREFIX = "001"

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}
_T = TypeVar("_T")


# --- value parsers: "" and None mean null, anything unusable raises ValueError ----------


def parse_bool(value: str | None) -> bool | None:
    """``true``/``false`` (any case) or ``1``/``0``."""
    if value is None or not value.strip():
        return None
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"not a boolean: {value!r}")


def parse_datetime(value: str | None) -> datetime | None:
    """An ISO datetime (``2024-01-15T10:30:00.000Z``, ``2024-01-15 10:30:00``) in UTC."""
    if value is None or not value.strip():
        return None
    parsed = isoparse(value.strip())
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_date(value: str | None) -> date | None:
    """An ISO date (``2024-01-15``); a full datetime is accepted and cut to its date."""
    if value is None or not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        parsed = parse_datetime(value)
        assert parsed is not None
        return parsed.date()


def parse_float(value: str | None) -> float | None:
    if value is None or not value.strip():
        return None
    number = float(value.strip())
    if not math.isfinite(number):
        raise ValueError(f"not a finite number: {value!r}")
    return number


def parse_int(value: str | None) -> int | None:
    number = parse_float(value)
    return None if number is None else int(number)


def domain_from_website(website: str | None) -> str | None:
    """``https://www.Acme.com/about`` -> ``acme.com``; None when there is no usable host."""
    if website is None or not website.strip():
        return None
    text = website.strip()
    if "://" not in text:
        text = "//" + text
    try:
        host = urlsplit(text).hostname
    except ValueError:
        return None
    if not host:
        return None
    host = host.removeprefix("www.").rstrip(".")
    if "." not in host or " " in host:
        return None
    return host


# --- rows -----------------------------------------------------------------------------


class _Unusable(Exception):
    """A row lacks its Id or a required field; it becomes a Skipped."""


class _BrokenFile(Exception):
    """The CSV itself cannot be parsed any further."""

    def __init__(self, reason: str, where: str) -> None:
        super().__init__(reason)
        self.where = where


class _Row:
    """One CSV row with forgiving typed accessors: a bad optional value becomes None."""

    def __init__(self, values: dict[str, str], number: int, where: str) -> None:
        self.values = values
        self.number = number  # 1-based data row number (the header is not counted)
        self.where = where  # "Opportunity.csv line 12", for Skipped and log lines

    def text(self, column: str) -> str | None:
        value = self.values.get(column)
        if value is None:
            return None
        return value.strip() or None

    def require(self, column: str) -> str:
        value = self.text(column)
        if value is None:
            raise _Unusable(f"missing {column}")
        return value

    def _typed(self, column: str, parse: Callable[[str | None], _T | None]) -> _T | None:
        value = self.text(column)
        try:
            return parse(value)
        except (ValueError, OverflowError):
            log.warning("%s: unusable %s %r, stored as null", self.where, column, value)
            return None

    def as_bool(self, column: str, default: bool = False) -> bool:
        value = self._typed(column, parse_bool)
        return default if value is None else value

    def as_float(self, column: str) -> float | None:
        return self._typed(column, parse_float)

    def as_int(self, column: str) -> int | None:
        return self._typed(column, parse_int)

    def as_date(self, column: str) -> date | None:
        return self._typed(column, parse_date)

    def as_datetime(self, column: str) -> datetime | None:
        return self._typed(column, parse_datetime)

    def person_name(self) -> str | None:
        parts = (self.text("FirstName"), self.text("LastName"))
        return self.text("Name") or " ".join(p for p in parts if p) or None


def _csv_rows(path: Path, skip: int = 0) -> Iterator[_Row]:
    """Stream the data rows of ``path`` after the first ``skip``; blank lines don't count."""
    line = 1
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            header = [name.strip() for name in next(reader, [])]
            number = 0
            while True:
                line = reader.line_num + 1  # where the next record starts
                values = next(reader, None)
                if values is None:
                    return
                if not values:
                    continue
                number += 1
                if number > skip:
                    yield _Row(
                        dict(zip(header, values, strict=False)), number, f"{path.name} line {line}"
                    )
    except csv.Error as exc:
        raise _BrokenFile(f"cannot parse CSV: {exc}", f"{path.name} line {line}") from exc


# --- one builder per object: the mapping from API field names to records --------------


def _stage(row: _Row) -> StageRecord:
    name = row.text("MasterLabel") or row.text("ApiName")
    if name is None:
        raise _Unusable("missing MasterLabel and ApiName")
    if row.as_bool("IsWon"):
        status = "won"
    elif row.as_bool("IsClosed"):
        status = "lost"
    else:
        status = "open"
    return StageRecord(
        source=SOURCE,
        name=name,
        status=status,
        sort_order=row.as_int("SortOrder"),
        probability=row.as_float("DefaultProbability"),
        is_active=row.as_bool("IsActive", default=True),
    )


def _user(row: _Row) -> PersonRecord:
    return PersonRecord(
        source=SOURCE,
        source_id=row.require("Id"),
        email=row.text("Email"),
        name=row.person_name(),
        title=row.text("Title"),
        is_user=True,
        updated_at=_updated_at(row),
    )


def _account(row: _Row) -> AccountRecord:
    return AccountRecord(
        source=SOURCE,
        source_id=row.require("Id"),
        name=row.require("Name"),
        domain=domain_from_website(row.text("Website")),
        owner_ref=row.text("OwnerId"),
        industry=row.text("Industry"),
        account_type=row.text("Type"),
        created_at=row.as_datetime("CreatedDate"),
        updated_at=_updated_at(row),
        is_deleted=row.as_bool("IsDeleted"),
    )


def _contact(row: _Row) -> PersonRecord:
    return PersonRecord(
        source=SOURCE,
        source_id=row.require("Id"),
        email=row.text("Email"),
        name=row.person_name(),
        title=row.text("Title"),
        account_ref=row.text("AccountId"),
        updated_at=_updated_at(row),
        is_deleted=row.as_bool("IsDeleted"),
    )


def _campaign(row: _Row) -> CampaignRecord:
    return CampaignRecord(
        source=SOURCE,
        source_id=row.require("Id"),
        name=row.require("Name"),
        status=row.text("Status"),
        campaign_type=row.text("Type"),
        start_date=row.as_date("StartDate"),
        end_date=row.as_date("EndDate"),
        is_deleted=row.as_bool("IsDeleted"),
    )


def _opportunity(row: _Row) -> OpportunityRecord:
    return OpportunityRecord(
        source=SOURCE,
        source_id=row.require("Id"),
        name=row.require("Name"),
        account_ref=row.text("AccountId"),
        owner_ref=row.text("OwnerId"),
        stage=row.text("StageName"),
        amount=row.as_float("Amount"),  # empty stays None, never 0
        currency=row.text("CurrencyIsoCode"),
        close_date=row.as_date("CloseDate"),
        probability=row.as_float("Probability"),
        is_private=row.as_bool("IsPrivate"),
        campaign_ref=row.text("CampaignId"),
        opportunity_type=row.text("Type"),
        lead_source=row.text("LeadSource"),
        created_at=row.as_datetime("CreatedDate"),
        updated_at=_updated_at(row),
        is_deleted=row.as_bool("IsDeleted"),
    )


def _contact_role(row: _Row) -> OpportunityMemberRecord:
    return OpportunityMemberRecord(
        source=SOURCE,
        source_id=row.require("Id"),
        opportunity_ref=row.require("OpportunityId"),
        person_ref=row.require("ContactId"),
        role=row.text("Role"),
        is_primary=row.as_bool("IsPrimary"),
        is_deleted=row.as_bool("IsDeleted"),
    )


def _campaign_member(row: _Row) -> CampaignMemberRecord:
    person = row.text("ContactId") or row.text("LeadId")
    if person is None:
        raise _Unusable("missing ContactId and LeadId")
    return CampaignMemberRecord(
        source=SOURCE,
        source_id=row.require("Id"),
        campaign_ref=row.require("CampaignId"),
        person_ref=person,
        status=row.text("Status"),
        is_deleted=row.as_bool("IsDeleted"),
    )


def _task(row: _Row) -> ActivityRecord:
    source_id = row.require("Id")
    subtype = row.text("TaskSubtype")
    if subtype == "Call" or row.text("CallType"):
        kind = "call"
    elif subtype == "Email":
        kind = "email"
    else:
        kind = "task"
    occurred_at = (
        row.as_datetime("CompletedDateTime")
        or _midnight(row.as_date("ActivityDate"))
        or row.as_datetime("CreatedDate")
    )
    if occurred_at is None:
        raise _Unusable("no CompletedDateTime, ActivityDate or CreatedDate")
    seconds = row.as_float("CallDurationInSeconds")
    done = row.as_bool("IsClosed") or row.text("Status") == "Completed"
    return ActivityRecord(
        source=SOURCE,
        source_id=source_id,
        kind=kind,
        occurred_at=occurred_at,
        subject=row.text("Subject"),
        snippet=make_snippet(row.text("Description")),
        duration_minutes=None if seconds is None else seconds / 60,
        is_planned=not done,
        status=row.text("Status"),
        is_deleted=row.as_bool("IsDeleted"),
        **_activity_refs(row),
    )


def _event(row: _Row) -> ActivityRecord:
    source_id = row.require("Id")
    start = (
        row.as_datetime("StartDateTime")
        or row.as_datetime("ActivityDateTime")
        or _midnight(row.as_date("ActivityDate"))
    )
    if start is None:
        raise _Unusable("no StartDateTime, ActivityDateTime or ActivityDate")
    duration = row.as_float("DurationInMinutes")
    end = row.as_datetime("EndDateTime")
    if duration is None and end is not None:
        duration = (end - start).total_seconds() / 60
    return ActivityRecord(
        source=SOURCE,
        source_id=source_id,
        kind="meeting",
        occurred_at=start,
        subject=row.text("Subject"),
        snippet=make_snippet(row.text("Description")),
        duration_minutes=duration,
        location=row.text("Location"),
        is_planned=start > datetime.now(UTC),
        is_deleted=row.as_bool("IsDeleted"),
        **_activity_refs(row),
    )


def _updated_at(row: _Row) -> datetime | None:
    return row.as_datetime("SystemModstamp") or row.as_datetime("LastModifiedDate")


def _midnight(day: date | None) -> datetime | None:
    return None if day is None else datetime.combine(day, time(), UTC)


def _activity_refs(row: _Row) -> dict[str, Any]:
    """Task/Event links: WhatId points at an opportunity or account by its key prefix."""
    what = row.text("WhatId") or ""
    who = row.text("WhoId")
    return {
        "opportunity_ref": what if what.startswith(OPPORTUNITY_PREFIX) else None,
        "account_ref": row.text("AccountId") or (what if what.startswith(ACCOUNT_PREFIX) else None),
        "person_refs": [who] if who else [],
        "owner_ref": row.text("OwnerId"),
    }


# Files in dependency order; OpportunityHistory is handled by _history_changes instead.
EXPORT_FILES: dict[str, Callable[[_Row], Record] | None] = {
    "OpportunityStage.csv": _stage,
    "User.csv": _user,
    "Account.csv": _account,
    "Contact.csv": _contact,
    "Campaign.csv": _campaign,
    "Opportunity.csv": _opportunity,
    "OpportunityContactRole.csv": _contact_role,
    HISTORY_FILE: None,
    "CampaignMember.csv": _campaign_member,
    "Task.csv": _task,
    "Event.csv": _event,
}


# --- OpportunityHistory: snapshots -> changes ------------------------------------------

HISTORY_FIELDS = ("stage", "amount", "close_date")


class _Snapshot(NamedTuple):
    opportunity_id: str
    changed_at: datetime
    row_id: str
    changed_by: str | None
    values: dict[str, str | None]  # HISTORY_FIELDS -> value as string


def _snapshot(row: _Row) -> _Snapshot:
    row_id = row.require("Id")
    opportunity_id = row.require("OpportunityId")
    changed_at = row.as_datetime("CreatedDate")
    if changed_at is None:
        raise _Unusable("missing or unusable CreatedDate")
    amount = row.as_float("Amount")
    close_date = row.as_date("CloseDate")
    return _Snapshot(
        opportunity_id=opportunity_id,
        changed_at=changed_at,
        row_id=row_id,
        changed_by=row.text("CreatedById"),
        values={
            "stage": row.text("StageName"),
            "amount": None if amount is None else str(amount),
            "close_date": None if close_date is None else close_date.isoformat(),
        },
    )


def _history_changes(snapshots: list[_Snapshot]) -> Iterator[OpportunityChangeRecord]:
    """One change per field that differs between consecutive snapshots of a deal.

    The first snapshot records the initial stage (old value None).
    """
    by_opportunity: dict[str, list[_Snapshot]] = defaultdict(list)
    for snap in snapshots:
        by_opportunity[snap.opportunity_id].append(snap)
    for opportunity_id, snaps in by_opportunity.items():
        snaps.sort(key=lambda s: (s.changed_at, s.row_id))
        before: dict[str, str | None] | None = None
        for snap in snaps:
            if before is None:
                changed = [("stage", None)] if snap.values["stage"] is not None else []
            else:
                changed = [(f, before[f]) for f in HISTORY_FIELDS if before[f] != snap.values[f]]
            for name, old in changed:
                yield OpportunityChangeRecord(
                    source=SOURCE,
                    source_id=f"{snap.row_id}:{name}",
                    opportunity_ref=opportunity_id,
                    field=name,
                    old_value=old,
                    new_value=snap.values[name],
                    changed_at=snap.changed_at,
                    changed_by_ref=snap.changed_by,
                )
            before = snap.values


# --- files ----------------------------------------------------------------------------


def _fingerprint(path: Path) -> str:
    """SHA-256 of the file; raises UnicodeDecodeError if it is not UTF-8 text."""
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                exc.start += offset  # report the position in the file, not in the chunk
                raise
            offset += len(chunk)
        decoder.decode(b"", final=True)
    return digest.hexdigest()


def _read_file(
    path: Path, build: Callable[[_Row], Record] | None, previous: Mapping[str, dict]
) -> Iterator[Record]:
    object_name = f"salesforce-export:{path.name}"
    try:
        sha256 = _fingerprint(path)
    except UnicodeDecodeError as exc:
        yield Skipped(f"not UTF-8 text ({exc.reason} near byte {exc.start})", path.name)
        return
    except OSError as exc:
        yield Skipped(f"cannot read file: {exc}", path.name)
        return

    last = previous.get(object_name) or {}
    resume = 0
    if last.get("sha256") == sha256:
        if last.get("complete"):
            return  # unchanged since the last complete read
        if build is not None:  # history is grouped in memory, so it always restarts
            resume = int(last.get("row") or 0)

    rows = resume
    try:
        if build is None:
            snapshots: list[_Snapshot] = []
            for row in _csv_rows(path):
                rows = row.number
                try:
                    snapshots.append(_snapshot(row))
                except _Unusable as exc:
                    yield Skipped(str(exc), row.where)
            yield from _history_changes(snapshots)
        else:
            for row in _csv_rows(path, skip=resume):
                rows = row.number
                try:
                    row.require("Id")
                    record = build(row)
                except _Unusable as exc:
                    yield Skipped(str(exc), row.where)
                else:
                    yield record
                if rows % CHECKPOINT_EVERY == 0:
                    cursor = {"sha256": sha256, "row": rows, "complete": False}
                    yield Checkpoint(object=object_name, cursor=cursor)
    except _BrokenFile as exc:
        yield Skipped(str(exc), exc.where)
        return
    yield Checkpoint(object=object_name, cursor={"sha256": sha256, "rows": rows, "complete": True})


def read_export(directory: Path, previous: Mapping[str, dict] | None = None) -> Iterator[Record]:
    """Yield records from a Salesforce Data Export folder in dependency order.

    ``previous`` maps ``salesforce-export:<file>`` to the last committed checkpoint cursor:
    files whose SHA-256 matches a complete cursor are skipped, an incomplete one resumes
    after its ``row``. Missing files are skipped silently; a missing folder raises
    FileNotFoundError (that is a wrong path, not bad data).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"not a Salesforce export folder: {directory}")
    for filename, build in EXPORT_FILES.items():
        path = directory / filename
        if path.is_file():
            yield from _read_file(path, build, previous or {})
        else:
            log.debug("%s: no %s, nothing to read", directory, filename)
