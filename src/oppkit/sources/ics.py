"""Meetings from iCalendar (.ics) files, as timeline activities.

Why: calendars show who met whom and when -- often the strongest signal on a deal. Most
calendar apps export .ics, so a file or a folder of them is the simplest calendar source.

What: every VEVENT becomes an :class:`ActivityRecord` of kind ``meeting`` with source
``calendar`` and the event UID as id, so the same meeting exported from two people's
calendars is one activity. Recurring series are expanded within a time window; each
occurrence gets ``UID/<original start in UTC>`` as id and the UID as thread. Times end up in
UTC (floating times are taken as UTC). Bad events and unparsable files become
:class:`Skipped` records, never errors. After each file a :class:`Checkpoint` holds the
file's sha256, and files whose hash matches the previous checkpoint are not read again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import recurring_ical_events
from icalendar import Calendar, Component

from oppkit.sources.records import ActivityRecord, Checkpoint, Participant, Record, Skipped
from oppkit.sources.text import make_snippet

SOURCE = "calendar"
WINDOW_PAST = timedelta(days=730)
WINDOW_FUTURE = timedelta(days=365)
_NOT_PEOPLE = {"ROOM", "RESOURCE"}  # attendee CUTYPEs that are places or things

Window = tuple[datetime, datetime]


def read_calendars(
    path: Path,
    previous: Mapping[str, dict] | None = None,
    *,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
    now: datetime | None = None,
) -> Iterator[Record]:
    """Yield meeting activities from an .ics file or a folder of .ics files."""
    now = now or datetime.now(UTC)
    window = (window_start or now - WINDOW_PAST, window_end or now + WINDOW_FUTURE)
    previous = previous or {}
    for file in ics_files(Path(path)):
        yield from _read_file(file, previous, window, now)


def ics_files(path: Path) -> list[Path]:
    """The .ics files at ``path`` (a file, or a folder searched recursively), sorted."""
    if not path.exists():
        raise FileNotFoundError(f"calendar path does not exist: {path}")
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() == ".ics")


def _read_file(
    file: Path, previous: Mapping[str, dict], window: Window, now: datetime
) -> Iterator[Record]:
    """The activities of one file and its checkpoint; nothing if it is unchanged."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        yield Skipped(reason=f"cannot read file: {exc}", where=str(file))
        return
    digest = hashlib.sha256(data).hexdigest()
    checkpoint = Checkpoint(object=f"ics:{file.resolve()}", cursor={"sha256": digest})
    if (previous.get(checkpoint.object) or {}).get("sha256") == digest:
        return
    try:
        calendars = Calendar.from_ical(data, multiple=True)
    except Exception as exc:  # icalendar raises ValueError and friends on garbage
        yield Skipped(reason=f"not an iCalendar file: {exc}", where=str(file))
    else:
        if not calendars:
            yield Skipped(reason="no calendar data in file", where=str(file))
        for calendar in calendars:
            yield from calendar_activities(calendar, file, window, now)
    yield checkpoint


def calendar_activities(
    calendar: Component, file: Path, window: Window, now: datetime
) -> Iterator[Record]:
    """Group a calendar's events by UID and turn each series into activities."""
    series: dict[str, list[Component]] = {}
    for event in calendar.walk("VEVENT"):
        where = f"{file}: {_text(event, 'SUMMARY') or _text(event, 'UID') or 'untitled event'}"
        if event.get("DTSTART") is None:
            yield Skipped(reason="event without DTSTART", where=where)
            continue
        try:
            uid = _text(event, "UID") or fallback_uid(event)
        except Exception as exc:
            yield Skipped(reason=f"unreadable event: {exc}", where=where)
            continue
        series.setdefault(uid, []).append(event)
    for uid, events in series.items():
        try:
            activities = list(_series_activities(uid, events, window, now))
        except Exception as exc:  # a broken date or rule must not stop the other events
            name = _text(events[0], "SUMMARY") or uid
            yield Skipped(reason=f"unreadable event: {exc}", where=f"{file}: {name}")
            continue
        yield from activities


def _series_activities(
    uid: str, events: list[Component], window: Window, now: datetime
) -> Iterator[ActivityRecord]:
    """One activity for a single event, one per occurrence in the window for a series."""
    if not any(_is_recurring(event) for event in events):
        latest = max(events, key=_sequence)  # the same UID twice: the newest revision wins
        yield _activity(latest, source_id=uid, thread_id=uid, now=now)
        return
    series = Calendar()
    for event in events:
        _check_rule(event)
        series.add_component(event)
    for occurrence in recurring_ical_events.of(series).between(*window):
        source_id = f"{uid}/{occurrence_key(occurrence)}"
        yield _activity(occurrence, source_id=source_id, thread_id=uid, now=now)


def _activity(event: Component, *, source_id: str, thread_id: str, now: datetime) -> ActivityRecord:
    start = to_utc(event["DTSTART"].dt)
    return ActivityRecord(
        source=SOURCE,
        source_id=source_id,
        kind="meeting",
        occurred_at=start,
        subject=_text(event, "SUMMARY"),
        snippet=make_snippet(_text(event, "DESCRIPTION")),
        participants=participants(event),
        thread_id=thread_id,
        duration_minutes=duration_minutes(event, start),
        location=_text(event, "LOCATION"),
        is_planned=start > now,
        status=(_text(event, "STATUS") or "").lower() or None,
    )


def to_utc(value: date | datetime) -> datetime:
    """A DATE or DATE-TIME value as an aware UTC datetime (floating and dates as UTC)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
    return datetime.combine(value, time(), tzinfo=UTC)


def duration_minutes(event: Component, start: datetime) -> float | None:
    """Length from DTEND or DURATION; an all-day event without either lasts one day."""
    if event.get("DTEND") is not None:
        delta = to_utc(event["DTEND"].dt) - start
    elif event.get("DURATION") is not None:
        delta = event["DURATION"].dt
    elif not isinstance(event["DTSTART"].dt, datetime):
        delta = timedelta(days=1)
    else:
        return None
    minutes = delta.total_seconds() / 60
    return minutes if minutes >= 0 else None


def participants(event: Component) -> list[Participant]:
    """The organizer and the attendees with a mailto: address (rooms and resources left out)."""
    people: list[Participant] = []
    seen: set[tuple[str, str]] = set()
    for role, name in (("organizer", "ORGANIZER"), ("attendee", "ATTENDEE")):
        for address in _as_list(event.get(name)):
            email = mailto(address)
            params = getattr(address, "params", {})
            if (
                not email
                or (role, email) in seen
                or params.get("CUTYPE", "").upper() in _NOT_PEOPLE
            ):
                continue
            seen.add((role, email))
            response = params.get("PARTSTAT") if role == "attendee" else None
            people.append(
                Participant(
                    email=email,
                    name=(params.get("CN") or "").strip() or None,
                    role=role,
                    response=response.lower() if response else None,
                )
            )
    return people


def mailto(address: Any) -> str | None:
    """The lower-cased e-mail of a ``mailto:`` calendar address, else None."""
    value = str(address).strip()
    if not value.lower().startswith("mailto:"):
        return None
    return value[len("mailto:") :].strip().lower() or None


def occurrence_key(occurrence: Component) -> str:
    """The occurrence's original start (RECURRENCE-ID, else DTSTART) as ``%Y%m%dT%H%M%SZ``.

    The original start, not a moved one, so an occurrence keeps its id when it is
    rescheduled and matches copies of the series that do not know about the move.
    """
    prop = occurrence.get("RECURRENCE-ID") or occurrence["DTSTART"]
    return to_utc(prop.dt).strftime("%Y%m%dT%H%M%SZ")


def fallback_uid(event: Component) -> str:
    """A stable id for an event without UID, from its start, summary and organizer."""
    start = to_utc(event["DTSTART"].dt).isoformat()
    organizer = mailto(event.get("ORGANIZER")) or ""
    key = json.dumps([start, _text(event, "SUMMARY") or "", organizer])
    return hashlib.sha256(key.encode()).hexdigest()


def _check_rule(event: Component) -> None:
    """Refuse rules the expander would loop on forever (INTERVAL=0 comes from real servers)."""
    for rule in _as_list(event.get("RRULE")):
        for interval in rule.get("INTERVAL", []) if hasattr(rule, "get") else []:
            if int(interval) < 1:
                raise ValueError(f"RRULE INTERVAL must be at least 1, got {interval}")


def _is_recurring(event: Component) -> bool:
    return any(event.get(name) is not None for name in ("RRULE", "RDATE", "RECURRENCE-ID"))


def _sequence(event: Component) -> int:
    try:
        return int(str(event.get("SEQUENCE", 0)))
    except ValueError:
        return 0


def _text(component: Component, name: str) -> str | None:
    value = component.get(name)
    if isinstance(value, list):  # a property given twice
        value = value[0] if value else None
    text = str(value).strip() if value is not None else ""
    return text or None


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
