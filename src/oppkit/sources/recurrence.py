"""Recurring meetings expanded into occurrences: within a window, with bounded work.

Why: a calendar may hold a rule no person would write -- ``RRULE:FREQ=MINUTELY`` without
an end, ``FREQ=SECONDLY`` since 1970, ``COUNT=10000000`` -- and expanding it as it stands
took 480 s and 4.5 GB and lost the file's good meetings with it. Both calendar sources
(.ics files and CalDAV) expand series here, so both are bounded the same way.

What:

* :func:`calendar_window` -- the window occurrences are kept in: ``[calendar]
  past_months`` back and ``future_months`` ahead of now (default 12 and 6; see
  :func:`oppkit.config.calendar_months`).
* :func:`expand` -- the occurrences of one series (the events sharing a UID) in the
  window, sorted by start: at most :data:`MAX_OCCURRENCES`, with ``cut`` set when there
  were more. A rule that is not one (``FREQ=FOO``, ``INTERVAL=0``, no FREQ) raises
  :class:`BadRule`; a rule that repeats more than :data:`STEP_BUDGET` times before the
  window even starts raises :class:`SeriesRefused`. Both say why in one line.

How the work is bounded: before recurring_ical_events expands a series, every rule of
it is stepped through with dateutil (uncached, so nothing is kept) up to the window's
end. Steps before the window count against :data:`STEP_BUDGET`; once a rule has more
than :data:`MAX_OCCURRENCES` starts in the window the expansion is asked to stop at the
next one. So the library never computes more than the budget plus the cap per rule. A
rule whose BY parts can never meet (30 February) would have dateutil step through every
date up to the year 9999 looking for one: it is tried on the calendar's last 32 years
first, and refused (:class:`SeriesRefused`) when it finds none there.

Example::

    window = calendar_window(datetime.now(UTC))
    found = expand(events_of_one_uid, window)
    found.occurrences  # icalendar components, one per occurrence
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import recurring_ical_events
from dateutil.relativedelta import relativedelta
from dateutil.rrule import rrule, rrulestr
from icalendar import Calendar, Component
from icalendar.prop import vRecur

from oppkit.config import Settings, calendar_months
from oppkit.errors import printable

MAX_OCCURRENCES = 5000  # occurrences of one series kept in the window
STEP_BUDGET = 100_000  # rule steps before the window (about a quarter second of dateutil)

Window = tuple[datetime, datetime]
_DAY_PARTS = {"BYMONTH", "BYWEEKNO", "BYYEARDAY", "BYMONTHDAY", "BYDAY", "BYSETPOS"}
_PROBE_YEAR = 9968  # a leap year: any DTSTART's month and day exist in it


class BadRule(ValueError):
    """A recurrence rule that cannot be read (an unknown FREQ, INTERVAL 0, no FREQ)."""


class SeriesRefused(ValueError):
    """A series that would take unbounded work to expand; the message says why."""


@dataclass
class Expansion:
    """The occurrences of a series in the window; ``cut``: there were more than kept."""

    occurrences: list[Component]
    cut: bool = False


def calendar_window(now: datetime, settings: Settings | None = None) -> Window:
    """(start, end) of the window around ``now`` from the calendar settings."""
    past, future = calendar_months(settings)
    return now - relativedelta(months=past), now + relativedelta(months=future)


def is_recurring(event: Component) -> bool:
    return any(event.get(name) is not None for name in ("RRULE", "RDATE", "RECURRENCE-ID"))


def expand(
    events: list[Component],
    window: Window,
    *,
    limit: int = MAX_OCCURRENCES,
    budget: int = STEP_BUDGET,
) -> Expansion:
    """The occurrences of one series (``events`` share a UID) starting in ``window``.

    Sorted by start; at most ``limit`` of them (``cut`` tells there were more). Raises
    :class:`BadRule` or :class:`SeriesRefused` (one line each) instead of working on.
    """
    start, end = window
    stop = end
    for event in events:
        for rule in rules_of(event):
            cutoff = _cutoff(event, rule, window, limit + _exdates(event) + 1, budget)
            if cutoff is not None:
                stop = min(stop, cutoff)
    series = Calendar()
    for event in events:
        series.add_component(event)
    found = recurring_ical_events.of(series).between(start, stop)
    found.sort(key=lambda occurrence: _utc(occurrence["DTSTART"].dt))
    return Expansion(found[:limit], cut=len(found) > limit or stop < end)


def rules_of(event: Component) -> list[Any]:
    """The RRULE values of an event, each checked: :class:`BadRule` for a broken one."""
    found = event.get("RRULE")
    rules = [] if found is None else found if isinstance(found, list) else [found]
    for rule in rules:
        if not isinstance(rule, vRecur):  # icalendar keeps what it cannot parse as vBroken
            text = f"bad RRULE {printable(str(rule), 80)!r}"
            error = getattr(rule, "parse_error", None)
            raise BadRule(f"{text} ({printable(error, 120)})" if error else text)
        if not rule.get("FREQ"):
            raise BadRule("bad RRULE (no FREQ)")
        for interval in rule.get("INTERVAL", []):
            if int(interval) < 1:  # the expander would loop on it forever
                raise BadRule(f"RRULE INTERVAL must be at least 1, got {interval}")
        for count in rule.get("COUNT", []):
            if int(count) < 1:  # the expander would take it as no COUNT at all
                raise BadRule(f"RRULE COUNT must be at least 1, got {count}")
    return rules


def _cutoff(
    event: Component, rule: Any, window: Window, wanted: int, budget: int
) -> datetime | None:
    """Step through ``rule`` up to the window's end: None when fewer than ``wanted``
    occurrences start in the window, else just after the ``wanted``-th such start."""
    steps = inside = 0
    plain, dtstart = _dateutil_rule(event, rule)
    if _DAY_PARTS & set(rule) and _matches_no_day(plain, dtstart):
        raise SeriesRefused("its rule matches no date at all (like 30 February); not expanded")
    start, end = (_like(moment, dtstart) for moment in window)
    for moment in plain:
        if moment >= end:
            return None
        if moment >= start:
            inside += 1
            if inside >= wanted:
                return _utc(moment) + timedelta(seconds=1)
        else:
            steps += 1
            if steps > budget:
                freq = str(rule.get("FREQ", ["?"])[0])
                raise SeriesRefused(
                    f"FREQ={printable(freq, 20)} from {dtstart:%Y-%m-%d} repeats more"
                    f" than {budget} times before the window; not expanded"
                )
    return None


def _matches_no_day(plain: rrule, dtstart: datetime) -> bool:
    """Can the rule's BY parts never meet? dateutil would step through every date up to the
    year 9999 to find out (a minute and more); from 9968 on it has 32 years to go, which
    hold every kind of year (leap or not, each weekday for 1 January) -- milliseconds."""
    probe = plain.replace(
        dtstart=dtstart.replace(year=_PROBE_YEAR), count=None, until=None, interval=1, cache=False
    )
    return next(iter(probe), None) is None


def _dateutil_rule(event: Component, rule: vRecur) -> tuple[rrule, datetime]:
    """The rule as dateutil's (uncached), with UNTIL made comparable to DTSTART; and
    DTSTART as a datetime."""
    dtstart = event["DTSTART"].dt
    if not isinstance(dtstart, datetime):
        dtstart = datetime.combine(dtstart, time())
    bare = type(rule)({k: v for k, v in rule.items() if k != "UNTIL"})
    try:
        plain = rrulestr(bare.to_ical().decode(), dtstart=dtstart, cache=False)
        until = rule.get("UNTIL")
        if until:
            plain = plain.replace(until=_like(until[0], dtstart, end_of_day=True), cache=False)
    except (ValueError, TypeError, OverflowError) as exc:
        raise BadRule(
            f"bad RRULE {printable(rule.to_ical(), 80)!r}: {printable(exc, 120)}"
        ) from exc
    return plain, dtstart


def _like(moment: date | datetime, model: datetime, *, end_of_day: bool = False) -> datetime:
    """``moment`` comparable with ``model``: aware in its zone, or naive UTC wall time."""
    if not isinstance(moment, datetime):
        moment = datetime.combine(moment, time.max if end_of_day else time())
    if model.tzinfo is None:
        return moment if moment.tzinfo is None else moment.astimezone(UTC).replace(tzinfo=None)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _utc(moment: date | datetime) -> datetime:
    if not isinstance(moment, datetime):
        return datetime.combine(moment, time(), tzinfo=UTC)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _exdates(event: Component) -> int:
    """How many dates EXDATE takes out (occurrences the cutoff must look past)."""
    found = event.get("EXDATE")
    values = [] if found is None else found if isinstance(found, list) else [found]
    return sum(len(getattr(value, "dts", [])) for value in values)
