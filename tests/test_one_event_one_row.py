"""One real-world event is one row, whichever sources report it: a Salesforce Event and
the calendar meeting it records, a Salesforce Task logged from an email and the message.
Real syncs (a Salesforce export, .ics files, an mbox, a Radicale CalDAV server) on
SQLite and PostgreSQL, in either order and again."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import caldav
import pandas as pd
import pytest
from sqlalchemy import create_engine, func, select

import oppkit
from oppkit.db.schema import activity_sources
from oppkit.frames.timeline import participants
from oppkit.sync import sync_caldav, sync_calendar, sync_mail, sync_salesforce_export
from oppkit.sync.twins import similar_subjects
from tests.fakes.radicale_server import RadicaleServer
from tests.support import make_email, write_mbox

AVA = "ava.patel@northwind.example"  # Salesforce user 005...1, owner of the Event
JUERGEN = "juergen.mueller@acme-robotics.example"  # contact 003...1, the Event's WhoId
START = datetime(2026, 2, 12, 9, tzinfo=UTC)  # the export's Event "Demo"

MEETING = """BEGIN:VEVENT
UID:{uid}
DTSTAMP:20260201T080000Z
DTSTART:{day}T090000Z
DTEND:{day}T103000Z
SUMMARY:{summary}
DESCRIPTION:{description}
LOCATION:Zoom
ORGANIZER;CN=Organizer:mailto:{organizer}
{attendees}END:VEVENT
"""


def _vevent(
    uid: str, summary: str, organizer: str, attendees: list[str], description="", day="20260212"
) -> str:
    lines = "".join(f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{a}\n" for a in attendees)
    return MEETING.format(uid=uid, summary=summary, organizer=organizer, attendees=lines,
                          description=description, day=day)  # fmt: skip


def _calendar(*events: str) -> str:
    body = "".join(events)
    return f"BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//test//test//EN\n{body}END:VCALENDAR\n"


def _write_ics(folder: Path, description: str = "Agenda") -> Path:
    """Ava's calendar: the meeting the Salesforce Event records (with one more attendee),
    and two others at the same time that are not it."""
    folder.mkdir(exist_ok=True)
    (folder / "ava.ics").write_text(
        _calendar(
            _vevent(
                "demo-1@northwind.example",
                "Demo",
                AVA,
                [JUERGEN, "kim@acme-robotics.example"],
                description,
            ),
            # same time, different subject, nobody in common: another meeting
            _vevent(
                "board@initech.example",
                "Board meeting",
                "ben.okafor@northwind.example",
                ["zed@initech.example"],
            ),
            # same time and subject, nobody in common: someone else's demo
            _vevent(
                "demo-9@initech.example",
                "Demo",
                "ben.okafor@northwind.example",
                ["yara@initech.example"],
            ),
        ),  # fmt: skip
        encoding="utf-8",
    )
    return folder


def _edit_csv(path: Path, change=None, add: list[dict] | None = None) -> None:  # noqa: ANN001
    """Rewrite an export CSV: ``change(row)`` on each row, then ``add`` rows."""
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        if change:
            change(row)
    rows += add or []
    fields = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fields, restval="", quoting=csv.QUOTE_ALL)
        writer.writeheader()
        writer.writerows(rows)


def _set_event(export: Path, **values: str) -> None:
    def change(row: dict) -> None:
        row.update(values)

    _edit_csv(export / "Event.csv", change)


def _rows(url: str, kind: str, when: datetime | None = None) -> pd.DataFrame:
    tl = oppkit.connect(url).timeline(kind=kind)
    return tl if when is None else tl[tl["occurred_at"] == pd.Timestamp(when)]


def _the(url: str, kind: str, subject: str) -> pd.Series:
    rows = _rows(url, kind)
    rows = rows[rows["subject"] == subject]
    assert len(rows) == 1, rows[["subject", "sources", "occurred_at"]]
    return rows.iloc[0]


def _people(url: str, activity_id: int) -> set[str]:
    return set(participants(oppkit.connect(url), [activity_id])["email"])


def _source_rows(url: str) -> int:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        n = conn.scalar(select(func.count()).select_from(activity_sources))
    engine.dispose()
    return n


def _assert_one_demo(url: str) -> None:
    at_start = _rows(url, "meeting", START)
    assert sorted(at_start["subject"]) == ["Board meeting", "Demo", "Demo"]
    ours = at_start[at_start["sources"] == "calendar,salesforce"]
    assert len(ours) == 1, at_start[["subject", "sources"]]
    row = ours.iloc[0]
    assert row["subject"] == "Demo"
    assert row["opportunity"] == "Acme pilot"  # Salesforce's deal link
    assert row["duration_minutes"] == 90  # the calendar's times
    assert _people(url, int(row["id"])) == {AVA, JUERGEN, "kim@acme-robotics.example"}
    others = at_start[at_start["sources"] == "calendar"]
    assert len(others) == 2 and set(others["opportunity"].dropna()) == set()


@pytest.mark.parametrize("first", ["salesforce", "calendar"])
def test_salesforce_event_and_calendar_meeting_are_one_row(
    db_url: str, settings, export: Path, tmp_path: Path, first: str
):
    calendars = _write_ics(tmp_path / "cal")
    syncs = {
        "salesforce": lambda: sync_salesforce_export(export, settings=settings),
        "calendar": lambda: sync_calendar(calendars, settings=settings),
    }
    second = "calendar" if first == "salesforce" else "salesforce"
    for name in (first, second):
        assert syncs[name]().errors == 0
    _assert_one_demo(db_url)
    sources_before = _source_rows(db_url)

    # both change upstream and sync again, in both orders: still one row, each side
    # writing only what it owns
    _set_event(export, Subject="Demo (logged)", Description="Changed in Salesforce")
    _write_ics(calendars, description="Agenda v2")
    for name in (second, first, second):
        assert syncs[name]().errors == 0
    _assert_one_demo(db_url)
    assert _source_rows(db_url) == sources_before
    demo = _rows(db_url, "meeting", START)
    demo = demo[demo["sources"] == "calendar,salesforce"].iloc[0]
    assert demo["snippet"] == "Agenda v2"  # the calendar owns subject and body
    assert demo["source"] == first  # the first source that reported it


@pytest.mark.parametrize("first", ["salesforce", "mail"])
def test_logged_email_task_and_the_message_are_one_row(
    db_url: str, settings, export: Path, tmp_path: Path, first: str
):
    _edit_csv(
        export / "Task.csv",
        add=[
            {
                "Id": "00T000000000009AAA",
                "WhoId": "003000000000001AAA",
                "WhatId": "006000000000001AAA",
                "AccountId": "001000000000001AAA",
                "OwnerId": "005000000000001AAA",
                "Subject": "Email: Pricing for the pilot",
                "Description": f"To: {JUERGEN}\nHi Jürgen, here is the pricing.",
                "ActivityDate": "2026-02-20",
                "Status": "Completed",
                "IsClosed": "true",
                "TaskSubtype": "Email",
                "CompletedDateTime": "2026-02-20T14:02:00.000Z",
                "CreatedDate": "2026-02-20T14:02:00.000Z",
            }
        ],
    )
    sent = datetime(2026, 2, 20, 14, 0, 30, tzinfo=UTC)
    mbox = write_mbox(
        tmp_path / "ava.mbox",
        [
            make_email(sender=f"Ava Patel <{AVA}>", to=[JUERGEN], subject="Pricing for the pilot",
                       body="Hi Jürgen, here is the pricing.", when=sent,
                       message_id="pricing-1@northwind.example"),
            # a minute later, same people, another subject: another email
            make_email(sender=f"Ava Patel <{AVA}>", to=[JUERGEN], subject="Lunch on Friday?",
                       body="Shall we?", when=sent.replace(minute=1),
                       message_id="lunch-1@northwind.example"),
            # same subject and time, but Jürgen wrote it: not the email Ava logged
            make_email(sender=f"Jürgen <{JUERGEN}>", to=[AVA], subject="Pricing for the pilot",
                       body="Which pricing?", when=sent, message_id="pricing-2@acme.example"),
        ],
    )  # fmt: skip
    syncs = {
        "salesforce": lambda: sync_salesforce_export(export, settings=settings),
        "mail": lambda: sync_mail(mbox, settings=settings),
    }
    second = "mail" if first == "salesforce" else "salesforce"
    for name in (first, second, first):
        assert syncs[name]().errors == 0

    emails = _rows(db_url, "email")
    assert len(emails) == 3, emails[["subject", "sources"]]
    logged = emails[emails["sources"] == "mail,salesforce"]
    assert len(logged) == 1
    row = logged.iloc[0]
    assert row["subject"] == "Pricing for the pilot"  # the mailbox owns subject and time
    assert row["occurred_at"] == pd.Timestamp(sent)
    assert row["sender"] == AVA and row["opportunity"] == "Acme pilot"
    assert set(emails[emails["sources"] == "mail"]["subject"]) == {
        "Lunch on Friday?",
        "Pricing for the pilot",
    }


@pytest.fixture(scope="module")
def radicale(tmp_path_factory):
    with RadicaleServer(tmp_path_factory.mktemp("radicale")) as server:
        yield server


def test_deleted_on_one_side_stays_while_the_other_has_it(
    db_url: str, settings, export: Path, radicale: RadicaleServer, request
):
    user = f"ava{abs(hash(request.node.nodeid)) % 10**6}"
    calendar = caldav.DAVClient(radicale.url, username=user, password="x").principal()
    calendar = calendar.make_calendar(name="Work")
    event = calendar.save_event(
        _calendar(_vevent("demo-1@northwind.example", "Demo", AVA, [JUERGEN]))
    )

    def caldav_sync() -> None:
        assert sync_caldav(radicale.url, settings=settings, username=user, password="x").errors == 0

    def salesforce_sync(deleted: str) -> None:
        _set_event(export, IsDeleted=deleted)
        assert sync_salesforce_export(export, settings=settings).errors == 0

    def demo() -> pd.DataFrame:
        rows = _rows(db_url, "meeting", START)
        return rows[rows["subject"] == "Demo"]

    salesforce_sync("false")
    caldav_sync()
    assert list(demo()["sources"]) == ["calendar,salesforce"]

    salesforce_sync("true")  # deleted in Salesforce: the calendar still has it
    assert list(demo()["sources"]) == ["calendar"]
    assert list(demo()["opportunity"]) == ["Acme pilot"]

    event.delete()  # and deleted in the calendar: gone
    caldav_sync()
    assert demo().empty

    salesforce_sync("false")  # restored in Salesforce: back, one row
    assert list(demo()["sources"]) == ["salesforce"]
    assert len(_rows(db_url, "meeting")) == 1


def test_the_same_ical_uid_is_the_same_meeting_and_different_uids_never_are(
    db_url: str, settings, export: Path, tmp_path: Path
):
    _set_event(export, Subject="Acme sync", ICalUId="demo-1@northwind.example")
    event = dict(zip(["Id", "WhoId", "WhatId", "AccountId", "OwnerId"], [
        "00U000000000002AAA", "003000000000001AAA", "006000000000001AAA", "001000000000001AAA",
        "005000000000001AAA"], strict=True))  # fmt: skip
    event.update(Subject="Kickoff", StartDateTime="2026-02-13T09:00:00.000Z",
                 DurationInMinutes="90", ICalUId="kickoff-sf@northwind.example")  # fmt: skip
    _edit_csv(export / "Event.csv", add=[event])
    (tmp_path / "cal").mkdir()
    (tmp_path / "cal" / "ava.ics").write_text(
        _calendar(
            # the Event's UID: the same meeting, though subject and people differ
            _vevent(
                "demo-1@northwind.example",
                "Demo",
                "ben.okafor@northwind.example",
                ["zed@initech.example"],
            ),
            # same start, subject and people as the Event "Kickoff", another UID: not it
            _vevent("kickoff-cal@northwind.example", "Kickoff", AVA, [JUERGEN], day="20260213"),
        ),  # fmt: skip
        encoding="utf-8",
    )
    assert sync_calendar(tmp_path / "cal", settings=settings).errors == 0
    assert sync_salesforce_export(export, settings=settings).errors == 0
    meetings = _rows(db_url, "meeting").set_index("source_id")
    assert meetings.loc["demo-1@northwind.example", "sources"] == "calendar,salesforce"
    assert meetings.loc["demo-1@northwind.example", "subject"] == "Demo"
    assert meetings.loc["kickoff-cal@northwind.example", "sources"] == "calendar"
    assert meetings.loc["00U000000000002AAA", "sources"] == "salesforce"
    assert len(meetings) == 3


def test_subjects_are_similar_without_prefixes_and_punctuation():
    assert similar_subjects("Email: Pricing for the pilot", "RE: Pricing for the pilot")
    assert similar_subjects("Acme Robotics — discovery workshop", "Discovery workshop")
    assert not similar_subjects("Demo", "Acme Robotics — Demo")  # one word is too little
    assert not similar_subjects("Board meeting", "Demo")
    assert not similar_subjects(None, "Demo")


def test_an_email_logged_late_still_joins_its_message_and_the_closest_pair_wins(
    db_url: str, settings, tmp_path
):
    """Logging may lag the message by an hour or more (an Outlook add-in); a thread's two
    messages with the same subject each join their own logged Task, not each other's."""
    from datetime import UTC, datetime, timedelta

    import oppkit
    from oppkit.sources.records import ActivityRecord, Participant
    from oppkit.sync import SyncRunner, sync_mail
    from tests.support import make_email, write_mbox

    ava, hank = "ava.patel@northwind.example", "hank@globex.example"
    t0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
    mails = [
        make_email(sender=ava, to=[hank], subject="Pricing", body="Prices attached.",
                   when=t0, message_id="p1@northwind.example"),
        make_email(sender=ava, to=[hank], subject="Re: Pricing", body="One more thing.",
                   when=t0 + timedelta(minutes=50), message_id="p2@northwind.example"),
    ]  # fmt: skip
    sync_mail(write_mbox(tmp_path / "m.mbox", mails), settings=settings)
    tasks = [
        ActivityRecord(
            source="salesforce", source_id=f"00T00000000000{n}AAA", kind="email",
            subject=f"Email: {subject}", occurred_at=when, owner_ref=None,
            participants=[Participant(ava, "Ava", "from"), Participant(hank, "Hank", "to")],
        )
        for n, subject, when in (
            ("1", "Pricing", t0 + timedelta(minutes=95)),  # logged late
            ("2", "Re: Pricing", t0 + timedelta(minutes=52)),
        )
    ]  # fmt: skip
    from oppkit.db.engine import connect_engine

    SyncRunner(connect_engine(db_url), settings, agent="test").run(tasks)
    emails = oppkit.connect(db_url).timeline(kind="email")
    assert len(emails) == 2  # two messages, each one row with both sources
    assert set(emails["sources"]) == {"mail,salesforce"}
