"""Tests for the .ics calendar source: fields, time zones, recurrence, bad input, checkpoints."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from oppkit.sources.ics import read_calendars
from oppkit.sources.records import ActivityRecord, Checkpoint, Skipped

NOW = datetime(2024, 5, 1, tzinfo=UTC)
WINDOW = {
    "window_start": datetime(2024, 3, 1, tzinfo=UTC),
    "window_end": datetime(2024, 4, 1, tzinfo=UTC),
}

BERLIN = """BEGIN:VTIMEZONE
TZID:Europe/Berlin
BEGIN:DAYLIGHT
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
TZNAME:CEST
DTSTART:19700329T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
END:DAYLIGHT
BEGIN:STANDARD
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
TZNAME:CET
DTSTART:19701025T030000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
END:STANDARD
END:VTIMEZONE
"""

TEAM = f"""BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Example Corp//Calendar 1.0//EN
{BERLIN}BEGIN:VEVENT
UID:kickoff-1@seller.example
DTSTAMP:20240110T080000Z
DTSTART;TZID=Europe/Berlin:20240115T100000
DTEND;TZID=Europe/Berlin:20240115T113000
SUMMARY:Kickoff with Customer GmbH
DESCRIPTION:Agenda:\\n- scope\\n- timeline
LOCATION:Berlin office\\, room 4
STATUS:CONFIRMED
ORGANIZER;CN=Alice Seller:mailto:Alice@Seller.example
ATTENDEE;CN="Bob Buyer";PARTSTAT=ACCEPTED;ROLE=REQ-PARTICIPANT:MAILTO:Bob.Buyer@Customer.EXAMPLE
ATTENDEE;CN=Carol Chief;PARTSTAT=DECLINED:mailto:carol@customer.example
ATTENDEE;CUTYPE=ROOM;CN=Room 4;PARTSTAT=ACCEPTED:mailto:room4@seller.example
ATTENDEE;CN=Phone bridge:urn:uuid:3b1f2d9e-0000-4000-8000-000000000000
END:VEVENT
BEGIN:VEVENT
UID:weekly-sync@seller.example
DTSTAMP:20240201T080000Z
DTSTART;TZID=Europe/Berlin:20240301T100000
DTEND;TZID=Europe/Berlin:20240301T103000
RRULE:FREQ=WEEKLY;COUNT=10
EXDATE;TZID=Europe/Berlin:20240315T100000
SUMMARY:Weekly sync
ORGANIZER;CN=Alice Seller:mailto:alice@seller.example
ATTENDEE;CN=Bob Buyer;PARTSTAT=TENTATIVE:mailto:bob.buyer@customer.example
END:VEVENT
BEGIN:VEVENT
UID:weekly-sync@seller.example
DTSTAMP:20240201T080000Z
RECURRENCE-ID;TZID=Europe/Berlin:20240322T100000
DTSTART;TZID=Europe/Berlin:20240322T150000
DTEND;TZID=Europe/Berlin:20240322T160000
SUMMARY:Weekly sync (moved)
ORGANIZER;CN=Alice Seller:mailto:alice@seller.example
END:VEVENT
BEGIN:VEVENT
UID:offsite-1@seller.example
DTSTAMP:20240201T080000Z
DTSTART;VALUE=DATE:20240610
DTEND;VALUE=DATE:20240612
SUMMARY:Customer offsite
END:VEVENT
BEGIN:VEVENT
UID:cancelled-1@seller.example
DTSTAMP:20240201T080000Z
DTSTART:20240205T130000Z
DTEND:20240205T140000Z
SUMMARY:Pricing call
STATUS:CANCELLED
END:VEVENT
BEGIN:VEVENT
UID:floating-1@seller.example
DTSTAMP:20240201T080000Z
DTSTART:20240206T130000
DURATION:PT45M
SUMMARY:Maybe lunch
STATUS:TENTATIVE
END:VEVENT
END:VCALENDAR
"""

# Bob's export of the kickoff, plus events that are odd or broken in different ways.
OTHER = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Other Vendor//Mail 2.0//EN
BEGIN:VEVENT
UID:kickoff-1@seller.example
DTSTAMP:20240110T080000Z
DTSTART:20240115T090000Z
DTEND:20240115T103000Z
SUMMARY:Kickoff with Customer GmbH
ORGANIZER;CN=Alice Seller:mailto:alice@seller.example
END:VEVENT
BEGIN:VEVENT
DTSTAMP:20240110T080000Z
DTSTART:20240207T160000Z
DTEND:20240207T163000Z
SUMMARY:Coffee without UID
ORGANIZER:mailto:alice@seller.example
END:VEVENT
BEGIN:VEVENT
UID:undated-1@seller.example
DTSTAMP:20240110T080000Z
SUMMARY:Undated idea
END:VEVENT
BEGIN:VEVENT
UID:typo-1@seller.example
DTSTAMP:20240110T080000Z
DTSTART:2024-02-08 10:00
SUMMARY:Typo in the date
END:VEVENT
END:VCALENDAR
"""


@pytest.fixture
def calendars(tmp_path: Path) -> Path:
    folder = tmp_path / "calendars"
    (folder / "bob").mkdir(parents=True)
    (folder / "team.ics").write_text(TEAM)
    (folder / "bob" / "other.ics").write_text(OTHER)
    (folder / "broken.ics").write_text("this is not a calendar\njust some notes\n")
    (folder / "readme.txt").write_text("ignored: not an .ics file")
    return folder


def read(path: Path, previous: dict | None = None, **kwargs) -> list:
    kwargs = {"now": NOW, **WINDOW, **kwargs}
    return list(read_calendars(path, previous, **kwargs))


def activities(records: list) -> dict[str, ActivityRecord]:
    return {r.source_id: r for r in records if isinstance(r, ActivityRecord)}


def test_missing_path_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read(tmp_path / "nope")


def test_event_fields_and_berlin_time_in_utc(calendars: Path) -> None:
    kickoff = activities(read(calendars / "team.ics"))["kickoff-1@seller.example"]
    assert kickoff.source == "calendar"
    assert kickoff.kind == "meeting"
    assert kickoff.thread_id == "kickoff-1@seller.example"
    assert kickoff.occurred_at == datetime(2024, 1, 15, 9, 0, tzinfo=UTC)  # 10:00 CET
    assert kickoff.duration_minutes == 90
    assert kickoff.subject == "Kickoff with Customer GmbH"
    assert kickoff.snippet == "Agenda:\n- scope\n- timeline"
    assert kickoff.location == "Berlin office, room 4"
    assert kickoff.status == "confirmed"
    assert kickoff.is_planned is False


def test_participants_roles_responses_and_lowercased_emails(calendars: Path) -> None:
    kickoff = activities(read(calendars / "team.ics"))["kickoff-1@seller.example"]
    people = [(p.role, p.email, p.name, p.response) for p in kickoff.participants]
    # the room (CUTYPE=ROOM) and the non-mailto phone bridge are left out
    assert people == [
        ("organizer", "alice@seller.example", "Alice Seller", None),
        ("attendee", "bob.buyer@customer.example", "Bob Buyer", "accepted"),
        ("attendee", "carol@customer.example", "Carol Chief", "declined"),
    ]


def test_weekly_series_expanded_in_window_with_exdate_and_moved_instance(
    calendars: Path,
) -> None:
    found = activities(read(calendars / "team.ics"))
    weekly = {k: v for k, v in found.items() if k.startswith("weekly-sync@seller.example/")}
    # March 2024: 1, 8, (15 excluded), 22 moved, 29 -- April is outside the window
    assert sorted(weekly) == [
        "weekly-sync@seller.example/20240301T090000Z",
        "weekly-sync@seller.example/20240308T090000Z",
        "weekly-sync@seller.example/20240322T090000Z",
        "weekly-sync@seller.example/20240329T090000Z",
    ]
    assert {a.thread_id for a in weekly.values()} == {"weekly-sync@seller.example"}
    moved = weekly["weekly-sync@seller.example/20240322T090000Z"]  # id keeps the original slot
    assert moved.occurred_at == datetime(2024, 3, 22, 14, 0, tzinfo=UTC)
    assert moved.subject == "Weekly sync (moved)"
    assert moved.duration_minutes == 60
    regular = weekly["weekly-sync@seller.example/20240301T090000Z"]
    assert regular.duration_minutes == 30
    assert [p.response for p in regular.participants] == [None, "tentative"]


def test_series_crosses_daylight_saving_time(calendars: Path) -> None:
    found = activities(read(calendars / "team.ics", window_end=datetime(2024, 4, 8, tzinfo=UTC)))
    # 10:00 in Berlin is 08:00 UTC once summer time starts on 31 March
    april = found["weekly-sync@seller.example/20240405T080000Z"]
    assert april.occurred_at == datetime(2024, 4, 5, 8, 0, tzinfo=UTC)
    assert april.is_planned is False


def test_default_window_is_twelve_months_back_six_ahead(tmp_path: Path) -> None:
    now = datetime(2024, 5, 1, 12, tzinfo=UTC)
    start = (now - timedelta(days=1000, hours=-6)).strftime("%Y%m%dT%H%M%SZ")  # daily at 18:00
    (tmp_path / "daily.ics").write_text(
        "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//t//t//EN\nBEGIN:VEVENT\nUID:standup\n"
        f"DTSTART:{start}\nDURATION:PT15M\nRRULE:FREQ=DAILY\nSUMMARY:Standup\n"
        "END:VEVENT\nEND:VCALENDAR\n"
    )
    found = list(read_calendars(tmp_path / "daily.ics", now=now))
    meetings = [r for r in found if isinstance(r, ActivityRecord)]
    # [calendar] past_months = 12, future_months = 6: 2023-05-01 12:00 .. 2024-11-01 12:00
    assert len(meetings) == 366 + 184
    assert min(m.occurred_at for m in meetings) == datetime(2023, 5, 1, 18, tzinfo=UTC)
    assert max(m.occurred_at for m in meetings) == datetime(2024, 10, 31, 18, tzinfo=UTC)
    assert sum(m.is_planned for m in meetings) == 184  # today 18:00 .. 31 October


def test_all_day_cancelled_and_floating_events(calendars: Path) -> None:
    found = activities(read(calendars / "team.ics"))
    offsite = found["offsite-1@seller.example"]
    assert offsite.occurred_at == datetime(2024, 6, 10, tzinfo=UTC)
    assert offsite.duration_minutes == 2 * 1440
    assert offsite.is_planned is True  # one-off events are kept outside the window
    cancelled = found["cancelled-1@seller.example"]
    assert cancelled.status == "cancelled"
    floating = found["floating-1@seller.example"]
    assert floating.occurred_at == datetime(2024, 2, 6, 13, 0, tzinfo=UTC)
    assert floating.duration_minutes == 45
    assert floating.status == "tentative"


def test_folder_is_read_recursively_and_same_meeting_shares_its_id(calendars: Path) -> None:
    records = read(calendars)
    kickoffs = [
        r
        for r in records
        if isinstance(r, ActivityRecord) and r.source_id == "kickoff-1@seller.example"
    ]
    assert len(kickoffs) == 2  # Alice's and Bob's exports: the runner merges them
    assert {k.occurred_at for k in kickoffs} == {datetime(2024, 1, 15, 9, 0, tzinfo=UTC)}
    checkpoints = [r.object for r in records if isinstance(r, Checkpoint)]
    assert checkpoints == [
        f"ics:{(calendars / name).resolve()}"
        for name in ("bob/other.ics", "broken.ics", "team.ics")
    ]


def test_event_without_uid_gets_a_stable_id(calendars: Path) -> None:
    def coffee_ids() -> list[str]:
        return [
            a.source_id
            for a in activities(read(calendars / "bob" / "other.ics")).values()
            if a.subject == "Coffee without UID"
        ]

    first, second = coffee_ids(), coffee_ids()
    assert len(first) == 1
    assert first == second
    assert len(first[0]) == 64 and int(first[0], 16) >= 0  # sha256 hex


def test_bad_input_is_skipped_with_where_and_the_run_goes_on(calendars: Path) -> None:
    records = read(calendars)
    skipped = [r for r in records if isinstance(r, Skipped)]
    assert len(skipped) == 3
    undated, typo, garbage = skipped
    assert undated.reason == "event without DTSTART"
    assert undated.where == f"{calendars / 'bob' / 'other.ics'}: Undated idea"
    assert typo.reason.startswith("unreadable event")
    assert typo.where == f"{calendars / 'bob' / 'other.ics'}: Typo in the date"
    assert garbage.where == str(calendars / "broken.ics")
    assert "not an iCalendar file" in garbage.reason
    # the files after the broken one were still read
    assert "offsite-1@seller.example" in activities(records)


def test_checkpoints_hash_files_and_unchanged_files_are_not_read_again(calendars: Path) -> None:
    first = read(calendars)
    previous = {r.object: r.cursor for r in first if isinstance(r, Checkpoint)}
    assert all(len(cursor["sha256"]) == 64 for cursor in previous.values())
    assert read(calendars, previous) == []

    (calendars / "broken.ics").write_text(
        "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//t//t//EN\nBEGIN:VEVENT\nUID:fixed-1\n"
        "DTSTART:20240220T100000Z\nSUMMARY:Fixed\nEND:VEVENT\nEND:VCALENDAR\n"
    )
    again = read(calendars, previous)
    assert [r.source_id for r in again if isinstance(r, ActivityRecord)] == ["fixed-1"]
    assert [r.object for r in again if isinstance(r, Checkpoint)] == [
        f"ics:{(calendars / 'broken.ics').resolve()}"
    ]


def test_a_rule_with_interval_zero_is_skipped_not_looped_on(tmp_path):
    path = tmp_path / "loop.ics"
    path.write_text(
        "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//t//t//EN\n"
        "BEGIN:VEVENT\nUID:loop@x\nDTSTART:20260302T100000Z\nDTEND:20260302T110000Z\n"
        "RRULE:FREQ=WEEKLY;INTERVAL=0\nSUMMARY:Looping\nEND:VEVENT\n"
        "BEGIN:VEVENT\nUID:ok@x\nDTSTART:20260303T100000Z\nDTEND:20260303T110000Z\n"
        "SUMMARY:Fine\nEND:VEVENT\nEND:VCALENDAR\n"
    )
    records = list(read_calendars(path))
    skipped = [r for r in records if isinstance(r, Skipped)]
    assert [s.reason for s in skipped] == [
        "unreadable event: RRULE INTERVAL must be at least 1, got 0"
    ]
    assert [r.subject for r in records if isinstance(r, ActivityRecord)] == ["Fine"]
