"""The CalDAV source against a real Radicale: first sync, sync tokens, edits, deletions,
recurrence, bad events, expired tokens, servers without sync-collection, failures."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import caldav
import pytest
import requests
from caldav.lib import error as dav_error
from sqlalchemy import select

from oppkit.config import Settings
from oppkit.db.engine import connect_engine
from oppkit.db.schema import activities
from oppkit.errors import ConfigError, SourceError
from oppkit.sources import caldav_source
from oppkit.sources.caldav_source import read_caldav
from oppkit.sources.ics import read_calendars
from oppkit.sources.records import ActivityRecord, Checkpoint, Deleted, Participant, Skipped
from oppkit.sync import SyncRunner
from tests.fakes.radicale_server import RadicaleServer
from tests.servers.net import free_port

USER = "ava"
PASSWORD = "caldav-test-secret"
NOW = datetime(2024, 6, 1, tzinfo=UTC)
WINDOW = {
    "window_start": datetime(2024, 1, 1, tzinfo=UTC),
    "window_end": datetime(2024, 2, 1, tzinfo=UTC),
    "now": NOW,
}

BERLIN = """BEGIN:VTIMEZONE
TZID:Europe/Berlin
BEGIN:STANDARD
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
TZNAME:CET
DTSTART:19701025T030000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
END:STANDARD
BEGIN:DAYLIGHT
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
TZNAME:CEST
DTSTART:19700329T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
END:DAYLIGHT
END:VTIMEZONE
"""


def ical(uid: str, summary: str, start: str = "20240110T100000Z", body: str = "") -> str:
    """One VEVENT; ``start`` may carry a TZID (``TZID=Europe/Berlin:20240110T100000``)."""
    dtstart = f"DTSTART;{start}" if start.startswith("TZID=") else f"DTSTART:{start}"
    timezone = BERLIN if "Europe/Berlin" in start else ""
    return (
        "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//oppkit tests//EN\n"
        f"{timezone}BEGIN:VEVENT\nUID:{uid}\nDTSTAMP:20240101T000000Z\n{dtstart}\n"
        f"SUMMARY:{summary}\n{body}END:VEVENT\nEND:VCALENDAR\n"
    )


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RadicaleServer]:
    with RadicaleServer(tmp_path_factory.mktemp("radicale")) as server:
        yield server


@pytest.fixture(scope="module")
def principal(radicale: RadicaleServer) -> caldav.Principal:
    return caldav.DAVClient(radicale.url, username=USER, password=PASSWORD).get_principal()


@pytest.fixture
def calendar(principal: caldav.Principal, request: pytest.FixtureRequest) -> caldav.Calendar:
    """A fresh calendar for this test, named after it."""
    return principal.make_calendar(name=f"{request.node.name}-{uuid.uuid4().hex[:6]}")


def read(server: RadicaleServer, calendar: caldav.Calendar, previous=None, **kwargs) -> list:  # noqa: ANN001
    """One run of the source over ``calendar`` only, as a list of records."""
    return list(
        read_caldav(
            server.url,
            previous,
            username=USER,
            password=PASSWORD,
            calendars=[calendar.get_display_name()],
            **{**WINDOW, **kwargs},
        )
    )


def commit(records: list, previous: dict | None = None) -> dict:
    """The cursors after the runner committed these records' checkpoints."""
    cursors = dict(previous or {})
    cursors.update({r.object: r.cursor for r in records if isinstance(r, Checkpoint)})
    return cursors


def meetings(records: list) -> dict[str, ActivityRecord]:
    found = [r for r in records if isinstance(r, ActivityRecord)]
    by_id = {r.source_id: r for r in found}
    assert len(by_id) == len(found), "a record was yielded twice"
    return by_id


def deleted(records: list) -> list[str]:
    return sorted(r.source_id for r in records if isinstance(r, Deleted))


@pytest.fixture
def fetched(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every calendar object the source downloads (calendar-multiget hrefs)."""
    hrefs: list[str] = []
    original = caldav.Calendar.multiget

    def spy(self, event_urls, raise_notfound=False):  # noqa: ANN001, ANN202
        urls = list(event_urls)
        hrefs.extend(str(u) for u in urls)
        return original(self, urls, raise_notfound=raise_notfound)

    monkeypatch.setattr(caldav.Calendar, "multiget", spy)
    return hrefs


# -- first sync -----------------------------------------------------------------------------

KICKOFF = ical(
    "kickoff@seller.example",
    "Kickoff with Customer GmbH",
    start="TZID=Europe/Berlin:20240115T100000",
    body=(
        "DTEND;TZID=Europe/Berlin:20240115T113000\n"
        "LOCATION:Berlin office\n"
        "STATUS:CONFIRMED\n"
        "ORGANIZER;CN=Alice Seller:mailto:Alice@Seller.example\n"
        "ATTENDEE;CN=Bob Buyer;PARTSTAT=ACCEPTED:mailto:bob@customer.example\n"
        "ATTENDEE;CN=Carol Chief;PARTSTAT=DECLINED:mailto:carol@customer.example\n"
        "ATTENDEE;CUTYPE=ROOM;CN=Room 4:mailto:room4@seller.example\n"
    ),
)


def test_first_sync_yields_meetings_like_the_ics_source(
    radicale: RadicaleServer, calendar: caldav.Calendar, tmp_path: Path
):
    calendar.add_event(KICKOFF)
    calendar.add_event(ical("demo@seller.example", "Demo", body="DURATION:PT45M\n"))

    records = read(radicale, calendar)

    found = meetings(records)
    assert set(found) == {"kickoff@seller.example", "demo@seller.example"}
    kickoff = found["kickoff@seller.example"]
    assert kickoff.source == "calendar" and kickoff.kind == "meeting"
    assert kickoff.occurred_at == datetime(2024, 1, 15, 9, 0, tzinfo=UTC)  # CET -> UTC
    assert kickoff.occurred_at.tzinfo is UTC
    assert kickoff.duration_minutes == 90
    assert kickoff.thread_id == "kickoff@seller.example"
    assert kickoff.status == "confirmed" and kickoff.location == "Berlin office"
    assert kickoff.participants == [
        Participant("alice@seller.example", "Alice Seller", "organizer", None),
        Participant("bob@customer.example", "Bob Buyer", "attendee", "accepted"),
        Participant("carol@customer.example", "Carol Chief", "attendee", "declined"),
    ]
    assert found["demo@seller.example"].duration_minutes == 45
    # the very record the .ics source makes of the same event: one activity, not two
    (tmp_path / "kickoff.ics").write_text(KICKOFF)
    from_file = [r for r in read_calendars(tmp_path, **WINDOW) if isinstance(r, ActivityRecord)]
    assert from_file == [kickoff]
    # one checkpoint for the calendar, after its records, with a token and each href's ids
    checkpoints = [r for r in records if isinstance(r, Checkpoint)]
    assert len(checkpoints) == 1 and records[-1] is checkpoints[0]
    assert checkpoints[0].object == f"caldav:{calendar.url.canonical()}"
    cursor = checkpoints[0].cursor
    assert cursor["sync_token"].startswith("http://radicale.org/ns/sync/")
    assert sorted(ids for h in cursor["hrefs"].values() for ids in h["ids"]) == sorted(found)
    assert all(h["etag"] for h in cursor["hrefs"].values())


def test_second_read_with_the_cursors_yields_nothing(
    radicale: RadicaleServer, calendar: caldav.Calendar, fetched: list[str]
):
    calendar.add_event(KICKOFF)
    first = read(radicale, calendar)
    assert len(meetings(first)) == 1 and len(fetched) == 1

    assert read(radicale, calendar, commit(first)) == []
    assert len(fetched) == 1  # nothing downloaded the second time


def test_added_and_edited_events_are_all_the_next_run_reads(
    radicale: RadicaleServer, calendar: caldav.Calendar, fetched: list[str]
):
    events = [calendar.add_event(ical(f"e{i}@seller.example", f"Call {i}")) for i in range(4)]
    first = read(radicale, calendar)
    assert len(meetings(first)) == 4 and len(fetched) == 4

    calendar.add_event(ical("new@seller.example", "New call", start="20240120T150000Z"))
    events[2].data = ical("e2@seller.example", "Call 2, moved", start="20240111T080000Z")
    events[2].save()
    fetched.clear()
    second = read(radicale, calendar, commit(first))

    found = meetings(second)
    assert set(found) == {"new@seller.example", "e2@seller.example"}
    assert found["e2@seller.example"].subject == "Call 2, moved"
    assert found["e2@seller.example"].occurred_at == datetime(2024, 1, 11, 8, tzinfo=UTC)
    assert len(fetched) == 2  # the sync token named just these two; 4 were not downloaded
    assert deleted(second) == []
    cursor = commit(second, commit(first))
    (state,) = cursor.values()
    assert state["sync_token"] != commit(first)[next(iter(cursor))]["sync_token"]
    assert len(state["hrefs"]) == 5


def test_deleted_events_yield_deleted_for_every_id(
    radicale: RadicaleServer, calendar: caldav.Calendar
):
    single = calendar.add_event(ical("gone@seller.example", "Gone"))
    weekly = calendar.add_event(
        ical("weekly-gone@seller.example", "Weekly", body="RRULE:FREQ=WEEKLY;COUNT=3\n")
    )
    calendar.add_event(ical("stays@seller.example", "Stays"))
    first = read(radicale, calendar)
    assert len(meetings(first)) == 5

    single.delete()
    weekly.delete()
    second = read(radicale, calendar, commit(first))

    assert meetings(second) == {}
    assert deleted(second) == [
        "gone@seller.example",
        "weekly-gone@seller.example/20240110T100000Z",
        "weekly-gone@seller.example/20240117T100000Z",
        "weekly-gone@seller.example/20240124T100000Z",
    ]
    (state,) = commit(second).values()
    assert [h["ids"] for h in state["hrefs"].values()] == [["stays@seller.example"]]
    assert read(radicale, calendar, commit(second, commit(first))) == []


def test_weekly_event_expands_within_the_window_and_tracks_dropped_occurrences(
    radicale: RadicaleServer, calendar: caldav.Calendar
):
    series = ical(
        "weekly@seller.example",
        "Weekly sync",
        start="TZID=Europe/Berlin:20231201T100000",
        body="DTEND;TZID=Europe/Berlin:20231201T103000\nRRULE:FREQ=WEEKLY;BYDAY=FR\n",
    )
    event = calendar.add_event(series)
    first = read(radicale, calendar)

    found = meetings(first)
    assert sorted(found) == [
        f"weekly@seller.example/202401{day:02d}T090000Z" for day in (5, 12, 19, 26)
    ]  # December lies before the window, February after it
    assert {r.thread_id for r in found.values()} == {"weekly@seller.example"}
    assert all(r.duration_minutes == 30 for r in found.values())

    event.data = series.replace(
        "END:VEVENT", "EXDATE;TZID=Europe/Berlin:20240112T100000\nEND:VEVENT"
    )
    event.save()
    second = read(radicale, calendar, commit(first))
    assert sorted(meetings(second)) == [
        f"weekly@seller.example/202401{day:02d}T090000Z" for day in (5, 19, 26)
    ]
    assert deleted(second) == ["weekly@seller.example/20240112T090000Z"]


def test_a_malformed_event_is_skipped_and_the_rest_syncs(
    radicale: RadicaleServer, calendar: caldav.Calendar
):
    auth = (USER, PASSWORD)
    url = str(calendar.url)
    headers = {"Content-Type": "text/calendar"}
    # Radicale refuses iCalendar it cannot parse, so garbage never reaches a client ...
    refused = requests.put(url + "garbage.ics", data=b"not iCalendar", headers=headers, auth=auth)
    assert refused.status_code == 400
    # ... but it stores an event whose rule it can read and recurrence expansion cannot
    broken = ical("broken@seller.example", "Broken rule", body="RRULE:FREQ=WEEKLY;INTERVAL=-1\n")
    stored = requests.put(url + "broken.ics", data=broken.encode(), headers=headers, auth=auth)
    assert stored.status_code == 201
    calendar.add_event(ical("fine@seller.example", "Fine"))

    records = read(radicale, calendar)

    assert set(meetings(records)) == {"fine@seller.example"}
    (skipped,) = [r for r in records if isinstance(r, Skipped)]
    assert skipped.reason.startswith("unreadable event:")
    assert skipped.where.startswith(f"{calendar.url.path}broken.ics")
    # the broken member is remembered by ETag: not read (nor skipped) again until it changes
    assert read(radicale, calendar, commit(records)) == []


def test_an_object_that_is_not_icalendar_is_skipped():
    window = (WINDOW["window_start"], WINDOW["window_end"])
    (skipped,) = caldav_source._object_records("not iCalendar", "/ava/cal/x.ics", window, NOW)
    assert isinstance(skipped, Skipped)
    assert (
        skipped.reason.startswith("not an iCalendar object") and skipped.where == "/ava/cal/x.ics"
    )


@pytest.mark.parametrize(
    "token",
    ["http://radicale.org/ns/sync/" + "0" * 64, "expired-or-foreign-token"],
    ids=["unknown", "malformed"],
)
def test_a_refused_sync_token_falls_back_to_a_full_listing(
    radicale: RadicaleServer, calendar: caldav.Calendar, fetched: list[str], token: str
):
    events = [calendar.add_event(ical(f"t{i}@seller.example", f"Call {i}")) for i in range(3)]
    first = read(radicale, calendar)
    events[0].data = ical("t0@seller.example", "Call 0, edited")
    events[0].save()
    events[1].delete()
    cursors = commit(first)
    (key,) = cursors
    cursors[key] = {**cursors[key], "sync_token": token}
    fetched.clear()

    second = read(radicale, calendar, cursors)

    assert set(meetings(second)) == {"t0@seller.example"}  # t2 is unchanged: not read again
    assert deleted(second) == ["t1@seller.example"]
    assert len(fetched) == 1
    (state,) = commit(second).values()
    assert state["sync_token"].startswith("http://radicale.org/ns/sync/")
    assert read(radicale, calendar, commit(second, cursors)) == []


def test_a_refused_token_with_a_lost_cursor_reads_everything_once(
    radicale: RadicaleServer, calendar: caldav.Calendar
):
    for i in range(3):
        calendar.add_event(ical(f"l{i}@seller.example", f"Call {i}"))
    key = f"caldav:{calendar.url.canonical()}"
    cursors = {key: {"sync_token": "http://radicale.org/ns/sync/" + "f" * 64, "hrefs": {}}}

    records = read(radicale, calendar, cursors)

    assert sorted(meetings(records)) == [f"l{i}@seller.example" for i in range(3)]  # no dupes
    assert deleted(records) == []


def test_a_server_without_sync_collection_is_compared_by_etag(
    radicale: RadicaleServer,
    calendar: caldav.Calendar,
    fetched: list[str],
    monkeypatch: pytest.MonkeyPatch,
):
    def unsupported(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        raise dav_error.ReportError("sync-collection REPORT not supported")

    monkeypatch.setattr(caldav.Calendar, "get_objects_by_sync_token", unsupported)
    events = [calendar.add_event(ical(f"p{i}@seller.example", f"Call {i}")) for i in range(3)]
    first = read(radicale, calendar)
    assert len(meetings(first)) == 3
    (state,) = commit(first).values()
    assert state["sync_token"] is None and len(state["hrefs"]) == 3

    assert read(radicale, calendar, commit(first)) == []
    events[0].data = ical("p0@seller.example", "Call 0, edited")
    events[0].save()
    events[2].delete()
    fetched.clear()
    second = read(radicale, calendar, commit(first))
    assert set(meetings(second)) == {"p0@seller.example"}
    assert deleted(second) == ["p2@seller.example"]
    assert len(fetched) == 1


# -- calendars, failures --------------------------------------------------------------------


def test_calendars_are_chosen_by_name_or_url(radicale: RadicaleServer, principal: caldav.Principal):
    tag = uuid.uuid4().hex[:6]
    one = principal.make_calendar(name=f"one-{tag}")
    two = principal.make_calendar(name=f"two-{tag}")
    one.add_event(ical(f"one-{tag}@x.example", "One"))
    two.add_event(ical(f"two-{tag}@x.example", "Two"))

    def ids(*wanted: str) -> set[str]:
        records = read_caldav(
            radicale.url, username=USER, password=PASSWORD, calendars=wanted, **WINDOW
        )
        return set(meetings(list(records)))

    assert ids(f"one-{tag}") == {f"one-{tag}@x.example"}
    assert ids(str(two.url)) == {f"two-{tag}@x.example"}
    assert ids(f"one-{tag}", two.url.path) == {f"one-{tag}@x.example", f"two-{tag}@x.example"}
    with pytest.raises(ConfigError, match="no calendar nope"):
        ids("nope")


def test_the_same_meeting_in_two_calendars_stays_until_both_drop_it(
    radicale: RadicaleServer, principal: caldav.Principal
):
    tag = uuid.uuid4().hex[:6]
    mine = principal.make_calendar(name=f"mine-{tag}")
    team = principal.make_calendar(name=f"team-{tag}")
    shared = ical(f"shared-{tag}@x.example", "Shared meeting")
    in_mine, in_team = mine.add_event(shared), team.add_event(shared)

    def run(previous: dict) -> tuple[list, dict]:
        records = list(
            read_caldav(
                radicale.url, previous, username=USER, password=PASSWORD,
                calendars=[f"mine-{tag}", f"team-{tag}"], **WINDOW,
            )
        )  # fmt: skip
        return records, commit(records, previous)

    first, cursors = run({})
    assert [r.source_id for r in first if isinstance(r, ActivityRecord)] == [
        f"shared-{tag}@x.example"
    ] * 2  # one activity, upserted twice
    in_mine.delete()
    second, cursors = run(cursors)
    assert deleted(second) == []  # the team calendar still has it
    in_team.delete()
    third, cursors = run(cursors)
    assert deleted(third) == [f"shared-{tag}@x.example"]


def test_an_unreachable_server_is_a_one_line_source_error():
    url = f"http://{USER}:{PASSWORD}@127.0.0.1:{free_port()}/"
    with pytest.raises(SourceError) as caught:
        list(read_caldav(url, username=USER, password=PASSWORD))
    message = str(caught.value)
    assert message.startswith(f"CalDAV server http://127.0.0.1:{url.rsplit(':', 1)[1]}")
    assert "cannot list the calendars" in message and "refused" in message.lower()
    assert PASSWORD not in message and "\n" not in message


def test_a_server_dying_half_way_keeps_the_checkpoints_and_a_rerun_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(caldav_source, "BATCH", 2)  # checkpoints after 2 and 4 events too
    server = RadicaleServer(tmp_path)
    with server:
        principal = caldav.DAVClient(server.url, username=USER, password=PASSWORD).get_principal()
        first, second = (
            principal.make_calendar(name="first"),
            principal.make_calendar(name="second"),
        )
        for i in range(5):
            first.add_event(ical(f"a{i}@x.example", f"A {i}"))
        second.add_event(ical("b0@x.example", "B 0"))

        committed: dict = {}
        both = {"username": USER, "password": PASSWORD, "calendars": ["first", "second"]}
        records = read_caldav(server.url, **both, **WINDOW)
        seen = []
        for record in records:  # the runner commits at each checkpoint
            if isinstance(record, Checkpoint):
                committed = commit([record], committed)
                break
            seen.append(record)
        assert len(meetings(seen)) == 2 and len(committed) == 1

        server.stop()
        with pytest.raises(SourceError, match=r"^CalDAV server http://127\.0\.0\.1:\d+/: cannot"):
            list(records)

        server.start()  # same port, same storage
        rerun = list(read_caldav(server.url, committed, **both, **WINDOW))

    everything = {f"a{i}@x.example" for i in range(5)} | {"b0@x.example"}
    assert set(meetings(rerun)) == everything - set(meetings(seen))  # nothing twice
    final = commit(rerun, committed)
    assert sorted(
        i for c in final.values() for h in c["hrefs"].values() for i in h["ids"]
    ) == sorted(everything)
    assert all(c["sync_token"] for c in final.values())


def test_through_the_sync_runner_a_deleted_event_hides_its_activity(
    radicale: RadicaleServer, calendar: caldav.Calendar, sqlite_url: str, tmp_path: Path
):
    settings = Settings(database_url=sqlite_url, internal_domains=("seller.example",))
    engine = connect_engine(sqlite_url)
    (tmp_path / "kickoff.ics").write_text(KICKOFF)
    ics_runner = SyncRunner(engine, settings, agent="calendar", source="ics", progress=False)
    ics_runner.run(read_calendars(tmp_path, ics_runner.cursors(), **WINDOW))
    demo = calendar.add_event(ical("demo@seller.example", "Demo"))
    calendar.add_event(KICKOFF)

    def sync() -> None:
        runner = SyncRunner(engine, settings, agent="caldav", source="caldav", progress=False)
        runner.run(read(radicale, calendar, runner.cursors()))

    def rows() -> dict[str, bool]:
        with engine.connect() as conn:
            query = select(activities.c.source_id, activities.c.is_deleted)
            return dict(conn.execute(query).all())

    sync()
    assert rows() == {"kickoff@seller.example": False, "demo@seller.example": False}
    demo.delete()
    sync()
    assert rows() == {"kickoff@seller.example": False, "demo@seller.example": True}
    engine.dispose()


def test_a_wrong_url_is_a_clear_source_error(radicale: RadicaleServer):
    with pytest.raises(SourceError) as caught:
        list(read_caldav(radicale.url + "no/such/place/", username=USER, password=PASSWORD))
    assert str(caught.value) == (
        f"CalDAV server {radicale.url}no/such/place/: cannot list the calendars: "
        "not found (HTTP 404); is the URL right?"
    )
