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
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from icalendar import Calendar, Component

from oppkit.errors import printable
from oppkit.sources.records import (
    ActivityRecord,
    Checkpoint,
    Notice,
    Participant,
    Record,
    Skipped,
)
from oppkit.sources.recurrence import (
    MAX_OCCURRENCES,
    SeriesRefused,
    Window,
    calendar_window,
    expand,
    is_recurring,
)
from oppkit.sources.text import make_snippet

SOURCE = "calendar"
_NOT_PEOPLE = {"ROOM", "RESOURCE"}  # attendee CUTYPEs that are places or things
_LINES = re.compile(r"\r\n|\n|\r")
_BEGIN_VEVENT = re.compile(r"^BEGIN:VEVENT[ \t]*\r?$", re.IGNORECASE | re.MULTILINE)
_PROPERTY = re.compile(r"[A-Za-z0-9-]+[;:]")  # a content line's name, then params or value


def read_calendars(
    path: Path,
    previous: Mapping[str, dict] | None = None,
    *,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
    now: datetime | None = None,
) -> Iterator[Record]:
    """Yield meeting activities from an .ics file or a folder of .ics files.

    Recurring series are expanded within ``window_start`` .. ``window_end`` (default:
    :func:`oppkit.sources.recurrence.calendar_window`, 12 months back and 6 ahead).
    """
    now = now or datetime.now(UTC)
    window = _window(now, window_start, window_end)
    previous = previous or {}
    for file in ics_files(Path(path)):
        yield from _read_file(file, previous, window, now)


def _window(now: datetime, start: datetime | None, end: datetime | None) -> Window:
    if start is not None and end is not None:
        return start, end
    default = calendar_window(now)
    return start or default[0], end or default[1]


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
        yield Skipped(reason=f"cannot read file: {printable(exc)}", where=str(file))
        return
    digest = hashlib.sha256(data).hexdigest()
    checkpoint = Checkpoint(object=f"ics:{file.resolve()}", cursor={"sha256": digest})
    if (previous.get(checkpoint.object) or {}).get("sha256") == digest:
        return
    yield from ics_records(data, str(file), window, now)
    yield checkpoint


def ics_records(
    data: bytes | str, where: str, window: Window, now: datetime, *, what: str = "file"
) -> Iterator[Record]:
    """The meetings of one iCalendar text (a file, or a CalDAV object: ``what``), with a
    Skipped or Notice for what could not be used as it came.

    The text is parsed whole; when that fails, or loses events (a file cut off before
    END:VCALENDAR parses as nothing at all), it is read again event by event: the
    complete events land and each broken or cut one is one Skipped.
    """
    text = data.decode("utf-8-sig", "replace") if isinstance(data, bytes) else data
    error: Exception | None = None
    try:
        calendars = Calendar.from_ical(text, multiple=True)
    except Exception as exc:  # icalendar raises ValueError and friends on garbage
        calendars, error = [], exc
    expected = len(_BEGIN_VEVENT.findall(text))
    if error is None and expected == sum(len(c.walk("VEVENT")) for c in calendars):
        if not calendars:
            yield Skipped(reason=f"no calendar data in {what}", where=where)
        for calendar in calendars:
            yield from calendar_activities(calendar, where, window, now)
        return
    events = Calendar()
    found = 0
    junk: list[str] = []
    for kind, lines, context in _pieces(text):
        if kind == "junk":
            junk += lines
            continue
        found += 1
        name = f"{where}: {_raw_name(lines)}"
        if kind == "unclosed":
            found -= 1
            yield Notice(f"the {what} ends without END:VCALENDAR (cut off?); its complete"
                         " events are read", where)  # fmt: skip
            continue
        if kind == "cut":
            yield Skipped(f"event cut off at the end of the {what} (no END:VEVENT)", name)
            continue
        joined = "\n".join(lines)
        zones = [line for tzid, zone in context[1].items() if tzid in joined for line in zone]
        try:
            mini = Calendar.from_ical(
                "\r\n".join(["BEGIN:VCALENDAR", *context[0], *zones, *lines, "END:VCALENDAR"])
            )
            for event in mini.walk("VEVENT"):
                events.add_component(event)
        except Exception as exc:  # noqa: BLE001 - a broken event costs only itself
            yield Skipped(f"unreadable event: {printable(exc)}", name)
    if not found:
        reason = f"not an iCalendar {what}: {printable(error)}" if error else None
        yield Skipped(reason=reason or f"no calendar data in {what}", where=where)
        return
    if junk:
        yield Notice(f"{_lines(len(junk))} between events left out: {printable(junk[0], 80)!r}",
                     where)  # fmt: skip
    yield from calendar_activities(events, where, window, now)


def _lines(n: int) -> str:
    return f"{n} unreadable line{'' if n == 1 else 's'}"


def _pieces(text: str) -> Iterator[tuple[str, list[str], tuple[list[str], dict[str, list[str]]]]]:
    """Each VEVENT of ``text`` as ("event" or "cut", its lines, the context to parse it
    in: its calendar's property lines and time zones by TZID). "cut": it never ends;
    "unclosed" (no lines): the text ends inside a VCALENDAR after its last event; "junk":
    a line in a calendar, outside its events, that is no property."""
    props: list[str] = []
    zones: dict[str, list[str]] = {}
    block: list[str] | None = None  # the top-level component being read
    name = ""
    depth = 0
    open_calendar = False
    for line in _LINES.split(text):
        upper = line.rstrip().upper()
        if upper.startswith("BEGIN:"):
            component = upper[6:]
            if component == "VCALENDAR" or (component == "VEVENT" and name == "VEVENT" and block):
                if block is not None and name == "VEVENT":  # a new one began: that one was cut
                    yield "cut", block, (props, zones)
                block = None
                if component == "VCALENDAR":
                    props, zones, open_calendar = [], {}, True
                    continue
            if block is None:
                block, name, depth = [line], component, 1
            else:
                block.append(line)
                depth += 1
        elif block is not None:
            block.append(line)
            if upper.startswith("END:"):
                depth -= 1
                if depth == 0:
                    if name == "VEVENT":
                        yield "event", block, (props, zones)
                    elif name == "VTIMEZONE":
                        tzid = next((z for z in block if z.upper().startswith("TZID")), ":")
                        zones = {**zones, tzid.partition(":")[2].strip(): block}
                    block = None
        elif upper.startswith("END:VCALENDAR"):
            open_calendar = False
        elif _PROPERTY.match(line) and not upper.startswith("END:"):
            props = [*props, line]
        elif line[:1] in (" ", "\t") and props:  # a folded property line goes on
            props = [*props, line]
        elif line.strip() and open_calendar:
            yield "junk", [line], (props, zones)
    if block is not None and name == "VEVENT":
        yield "cut", block, (props, zones)
    elif open_calendar:
        yield "unclosed", [], (props, zones)


def _raw_name(lines: list[str]) -> str:
    """What to call an event read as raw lines: its SUMMARY, else its UID."""
    for key in ("SUMMARY", "UID"):
        for line in lines:
            if line.upper().startswith(key) and line[len(key) : len(key) + 1] in (":", ";"):
                value = line.partition(":")[2].strip()
                if value:
                    return printable(value, 120)
    return "untitled event"


def calendar_activities(
    calendar: Component, where: str, window: Window, now: datetime
) -> Iterator[Record]:
    """Group a calendar's events by UID and turn each series into activities; ``where``
    names the file (or CalDAV member) in Skipped and Notice."""
    series: dict[str, list[Component]] = {}
    for event in calendar.walk("VEVENT"):
        name = f"{where}: {_name(event)}"
        if event.get("DTSTART") is None:
            yield Skipped(reason="event without DTSTART", where=name)
            continue
        try:
            uid = _text(event, "UID") or fallback_uid(event)
        except Exception as exc:
            yield Skipped(reason=f"unreadable event: {printable(exc)}", where=name)
            continue
        series.setdefault(uid, []).append(event)
    for uid, events in series.items():
        name = f"{where}: {_name(events[0])}"
        try:
            activities, cut = _series_activities(uid, events, window, now)
        except SeriesRefused as exc:
            yield Skipped(reason=f"series {printable(uid, 100)}: {exc}", where=name)
            continue
        except Exception as exc:  # a broken date or rule must not stop the other events
            yield Skipped(reason=f"unreadable event: {printable(exc)}", where=name)
            continue
        yield from activities
        lost = [str(e) for event in events for key, e in getattr(event, "errors", []) if not key]
        if lost:  # icalendar leaves out a content line it cannot parse, and says so here
            yield Notice(f"{_lines(len(lost))} left out of the event: {printable(lost[0], 120)}",
                         name)  # fmt: skip
        if cut:
            yield Notice(
                f"series {printable(uid, 100)}: more than {MAX_OCCURRENCES} occurrences in"
                f" the window; the first {MAX_OCCURRENCES} are kept",
                name,
            )


def _series_activities(
    uid: str, events: list[Component], window: Window, now: datetime
) -> tuple[list[ActivityRecord], bool]:
    """One activity for a single event, one per occurrence in the window for a series;
    and whether the series had more occurrences than were kept."""
    if not any(is_recurring(event) for event in events):
        latest = max(events, key=_sequence)  # the same UID twice: the newest revision wins
        return [_activity(latest, source_id=uid, thread_id=uid, now=now)], False
    expansion = expand(events, window)
    activities = [
        _activity(occurrence, source_id=f"{uid}/{occurrence_key(occurrence)}", thread_id=uid,
                  now=now)
        for occurrence in expansion.occurrences
    ]  # fmt: skip
    return activities, expansion.cut


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


def _sequence(event: Component) -> int:
    try:
        return int(str(event.get("SEQUENCE", 0)))
    except ValueError:
        return 0


def _name(event: Component) -> str:
    """What to call an event in a message: its SUMMARY, else its UID (printable)."""
    return printable(_text(event, "SUMMARY") or _text(event, "UID") or "untitled event", 120)


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
