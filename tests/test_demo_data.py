"""The demo organisation's export files: deterministic, well-formed and consistent."""

from __future__ import annotations

import csv
import email
import mailbox
import os
import re
import subprocess
import sys
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pandas as pd
import pytest
import recurring_ical_events
from icalendar import Calendar

from oppkit.demo_data import DemoFiles, write_demo_files
from oppkit.demo_truth import TRUTH_FILE, activity_keys, load_truth, record_key, score

TODAY = date(2026, 3, 2)
# Mail structure does not depend on the seed, only the wording, times and ids do.
EXPECTED_COUNTS = {"anna.keller.mbox": 135, "ben.okafor.mbox": 127}

FIELDS = {
    "User": "Id Email Name FirstName LastName Title IsActive UserRoleId",
    "Account": "Id Name Website Industry Type OwnerId CreatedDate LastModifiedDate "
    "SystemModstamp IsDeleted",
    "Contact": "Id AccountId FirstName LastName Name Email Title OwnerId SystemModstamp IsDeleted",
    "OpportunityStage": "Id MasterLabel ApiName IsActive SortOrder IsClosed IsWon "
    "DefaultProbability ForecastCategoryName",
    "Opportunity": "Id Name AccountId OwnerId StageName Amount CloseDate Probability IsPrivate "
    "IsClosed IsWon CampaignId Type LeadSource CreatedDate LastModifiedDate SystemModstamp "
    "IsDeleted",
    "OpportunityContactRole": "Id OpportunityId ContactId Role IsPrimary IsDeleted",
    "OpportunityHistory": "Id OpportunityId StageName Amount CloseDate Probability CreatedDate "
    "CreatedById IsDeleted",
    "Campaign": "Id Name Status Type StartDate EndDate IsActive ParentId BudgetedCost ActualCost "
    "ExpectedRevenue IsDeleted",
    "Lead": "Id FirstName LastName Name Email Company Title Status LeadSource OwnerId IsConverted "
    "ConvertedDate ConvertedAccountId ConvertedContactId ConvertedOpportunityId CreatedDate "
    "SystemModstamp IsDeleted",
    "CampaignMember": "Id CampaignId ContactId LeadId Status HasResponded FirstRespondedDate "
    "IsDeleted",
    "Task": "Id WhoId WhatId AccountId OwnerId Subject Description ActivityDate Status Priority "
    "IsClosed TaskSubtype CallType CallDurationInSeconds CompletedDateTime CreatedDate "
    "SystemModstamp IsDeleted",
    "Event": "Id WhoId WhatId AccountId OwnerId Subject Description Location StartDateTime "
    "EndDateTime DurationInMinutes ActivityDateTime IsAllDayEvent CreatedDate SystemModstamp "
    "IsDeleted",
}
PREFIXES = {
    "Account": "001",
    "Contact": "003",
    "User": "005",
    "Opportunity": "006",
    "Task": "00T",
    "Event": "00U",
    "Campaign": "701",
    "CampaignMember": "00v",
    "Lead": "00Q",
    "OpportunityContactRole": "00K",
    "OpportunityHistory": "008",
    "OpportunityStage": "01J",
}
# (object, field) -> objects it may point at; empty values are allowed where noted
REFERENCES = {
    ("Account", "OwnerId"): "User",
    ("Contact", "AccountId"): "Account",
    ("Contact", "OwnerId"): "User",
    ("Opportunity", "AccountId"): "Account",
    ("Opportunity", "OwnerId"): "User",
    ("Opportunity", "CampaignId"): "Campaign",
    ("OpportunityContactRole", "OpportunityId"): "Opportunity",
    ("OpportunityContactRole", "ContactId"): "Contact",
    ("OpportunityHistory", "OpportunityId"): "Opportunity",
    ("OpportunityHistory", "CreatedById"): "User",
    ("CampaignMember", "CampaignId"): "Campaign",
    ("CampaignMember", "ContactId"): "Contact",
    ("CampaignMember", "LeadId"): "Lead",
    ("Task", "WhoId"): "Contact",
    ("Task", "WhatId"): "Opportunity Account",  # one logged email is on its account
    ("Task", "AccountId"): "Account",
    ("Task", "OwnerId"): "User",
    ("Event", "WhoId"): "Contact",
    ("Event", "WhatId"): "Opportunity",
    ("Event", "AccountId"): "Account",
    ("Event", "OwnerId"): "User",
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoFiles:
    return write_demo_files(tmp_path_factory.mktemp("demo"), seed=7, today=TODAY)


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _mbox(path: Path) -> list[tuple[bytes, EmailMessage]]:
    box = mailbox.mbox(path, create=False)
    try:
        raws = [box.get_bytes(key) for key in box.keys()]
    finally:
        box.close()
    return [(raw, email.message_from_bytes(raw, policy=policy.default)) for raw in raws]


def _all_messages(demo: DemoFiles) -> dict[str, list[tuple[bytes, EmailMessage]]]:
    return {p.name: _mbox(p) for p in sorted(demo.mail_dir.glob("*.mbox"))}


def _unique_messages(demo: DemoFiles) -> list[EmailMessage]:
    seen, out = set(), []
    for messages in _all_messages(demo).values():
        for _, msg in messages:
            key = msg["Message-ID"] or id(msg)
            if key not in seen:
                seen.add(key)
                out.append(msg)
    return out


def _csv(demo: DemoFiles, name: str) -> list[dict[str, str]]:
    with open(demo.salesforce_dir / f"{name}.csv", encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _calendars(demo: DemoFiles) -> dict[str, Calendar]:
    return {
        p.name: Calendar.from_ical(p.read_bytes()) for p in sorted(demo.calendar_dir.glob("*.ics"))
    }


def _checksum_ok(sf_id: str) -> bool:
    flags = [
        sum(1 << j for j, c in enumerate(sf_id[i : i + 5]) if "A" <= c <= "Z") for i in (0, 5, 10)
    ]
    return sf_id[15:] == "".join("ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"[f] for f in flags)


def test_layout_and_metadata(demo: DemoFiles) -> None:
    assert demo.company == "Northwind Analytics"
    assert demo.internal_domains == ["northwind.example"]
    assert sorted(p.name for p in demo.mail_dir.iterdir()) == sorted(EXPECTED_COUNTS)
    assert sorted(p.name for p in demo.calendar_dir.iterdir()) == [
        "anna.keller.ics",
        "ben.okafor.ics",
        "david.lindqvist.ics",
    ]
    assert sorted(p.stem for p in demo.salesforce_dir.iterdir()) == sorted(FIELDS)


def test_same_seed_and_today_give_identical_files(demo: DemoFiles, tmp_path: Path) -> None:
    again = write_demo_files(tmp_path / "again", seed=7, today=TODAY)
    assert _files(again.root) == _files(demo.root)
    rerun = write_demo_files(tmp_path / "again", seed=7, today=TODAY)  # overwrite in place
    assert _files(rerun.root) == _files(demo.root)
    other = write_demo_files(tmp_path / "other", seed=8, today=TODAY)
    assert _files(other.root)["mail/anna.keller.mbox"] != _files(demo.root)["mail/anna.keller.mbox"]


def test_mailboxes_hold_the_expected_messages(demo: DemoFiles, tmp_path: Path) -> None:
    counts = {name: len(msgs) for name, msgs in _all_messages(demo).items()}
    assert counts == EXPECTED_COUNTS
    other = write_demo_files(tmp_path / "other", seed=8, today=TODAY)
    assert {name: len(msgs) for name, msgs in _all_messages(other).items()} == EXPECTED_COUNTS


def test_every_message_parses_and_exactly_one_lacks_a_message_id(demo: DemoFiles) -> None:
    missing = 0
    for _, msg in (m for msgs in _all_messages(demo).values() for m in msgs):
        assert msg.defects == []
        assert msg["From"].addresses and msg["Date"].datetime.tzinfo is not None
        assert (
            msg.get_body(("plain", "html")) is not None
            or msg.get_content_type() == "multipart/report"
        )
        missing += msg["Message-ID"] is None
    assert missing == 1
    assert 220 <= len(_unique_messages(demo)) <= 260


def test_shared_messages_are_in_both_mailboxes_and_identical(demo: DemoFiles) -> None:
    boxes = [
        {m["Message-ID"]: raw for raw, m in msgs if m["Message-ID"]}
        for msgs in _all_messages(demo).values()
    ]
    shared = boxes[0].keys() & boxes[1].keys()
    assert 15 <= len(shared) <= 25
    assert all(boxes[0][key] == boxes[1][key] for key in shared)


def test_message_ids_are_unique_within_a_mailbox(demo: DemoFiles) -> None:
    for msgs in _all_messages(demo).values():
        ids = [m["Message-ID"] for _, m in msgs if m["Message-ID"]]
        assert len(ids) == len(set(ids))


def test_threads_have_references_and_quotes(demo: DemoFiles) -> None:
    messages = _unique_messages(demo)
    by_id = {m["Message-ID"]: m for m in messages if m["Message-ID"]}
    replies = [m for m in messages if m["In-Reply-To"] and m["Subject"].startswith("Re: ")]
    assert len(replies) > 100
    for reply in replies:
        parent = by_id[reply["In-Reply-To"]]
        assert reply["References"].split()[-1] == parent["Message-ID"]
        text = reply.get_body(("plain", "html")).get_content()
        assert re.search(r"On \w{3}, \d+ \w{3} \d{4} at \d\d:\d\d, .+ wrote:", text)
    plain = [m.get_body(("plain",)) for m in replies]
    assert any("\n> " in p.get_content() for p in plain if p is not None)
    assert sum("\n-- \n" in m.get_body(("plain", "html")).get_content() for m in messages) > 30


def test_rfc2047_display_names_decode(demo: DemoFiles) -> None:
    raws = [raw for msgs in _all_messages(demo).values() for raw, _ in msgs]
    encoded = [raw for raw in raws if re.search(rb"^From:\s+=\?utf-8\?", raw, re.M)]
    assert encoded
    names = {
        email.message_from_bytes(raw, policy=policy.default)["From"].addresses[0].display_name
        for raw in encoded
    }
    assert "Jürgen Müller" in names and "Zoë Ørsted" in names
    assert not any(re.search(rb"^From: .*[\x80-\xff]", raw, re.M) for raw in raws)


def test_tricky_messages_are_present(demo: DemoFiles) -> None:
    messages = _unique_messages(demo)
    raw_mail = b"".join(p.read_bytes() for p in demo.mail_dir.glob("*.mbox"))
    # "From " at the start of a body line is escaped in the file, and reads back as ">From ".
    assert b"\n>From our side" in raw_mail and b"\nFrom our side" not in raw_mail
    assert any(
        ">From our side" in m.get_body(("plain",)).get_content()
        for m in messages
        if m["Subject"] == "Workshop notes"
    )
    auto = [
        m
        for m in messages
        if m["Auto-Submitted"] == "auto-replied"
        and m["Subject"] == "Automatic reply: Out of office"
    ]
    assert len(auto) == 1 and auto[0]["In-Reply-To"]
    bounce = [m for m in messages if m.get_content_type() == "multipart/report"]
    assert len(bounce) == 1 and bounce[0].get_param("report-type") == "delivery-status"
    assert "MAILER-DAEMON" in str(bounce[0]["From"])
    pdfs = [
        p
        for m in messages
        for p in m.iter_attachments()
        if p.get_content_type() == "application/pdf"
    ]
    assert len(pdfs) == 1 and pdfs[0].get_content().startswith(b"%PDF")
    assert any(m.get_content_type() == "text/html" for m in messages)
    assert sum(m.get_content_type() == "multipart/alternative" for m in messages) > 10
    senders = {a.addr_spec for m in messages for a in m["From"].addresses}
    assert "Bob.Smith@ACME-ROBOTICS.example" in senders
    text = "\n".join(
        m.get_body(("plain", "html")).get_content()
        for m in messages
        if m.get_content_type() != "multipart/report"
    )
    for signal in (
        "Could you send the security questionnaire?",
        "I'll send the revised contract by Friday",
        "we have a budget freeze until Q3",
        "the project is postponed to next quarter",
    ):
        assert signal in text


def test_internal_only_mail_exists(demo: DemoFiles) -> None:
    internal = [
        m
        for m in _unique_messages(demo)
        if all(
            a.domain == "northwind.example"
            for h in ("From", "To", "Cc")
            if m[h]
            for a in m[h].addresses
        )
    ]
    assert len(internal) >= 10


def test_cc_people_who_are_not_contacts(demo: DemoFiles) -> None:
    contacts = {r["Email"].lower() for r in _csv(demo, "Contact")}
    cc = Counter(
        a.addr_spec.lower() for m in _unique_messages(demo) if m["Cc"] for a in m["Cc"].addresses
    )
    strangers = {
        addr
        for addr, n in cc.items()
        if n >= 3 and addr not in contacts and not addr.endswith("@northwind.example")
    }
    assert {"tom.becker@acme-robotics.example", "lena.fischer@globex.example"} <= strangers


def test_mail_dates_are_recent_and_never_in_the_future(demo: DemoFiles) -> None:
    now = datetime.combine(TODAY, datetime.min.time(), UTC)
    dates = [m["Date"].datetime for m in _unique_messages(demo)]
    assert max(dates) < now
    recent = sum(d >= now - timedelta(days=120) for d in dates)
    assert recent / len(dates) > 0.85 and min(dates) >= now - timedelta(days=160)


def test_every_contact_and_user_address_is_used(demo: DemoFiles) -> None:
    seen = {
        a.addr_spec.lower()
        for m in _unique_messages(demo)
        for h in ("From", "To", "Cc")
        if m[h]
        for a in m[h].addresses
    }
    for cal in _calendars(demo).values():
        for ev in cal.walk("VEVENT"):
            people = [ev["ORGANIZER"], *ev.get("ATTENDEE", [])]
            seen |= {str(p).lower().removeprefix("mailto:") for p in people}
    wanted = {r["Email"].lower() for r in _csv(demo, "Contact") + _csv(demo, "User")}
    assert wanted - seen == set()
    assert "priya.natarajan.bi@gmail.com" in wanted


def test_csv_headers_match_the_export(demo: DemoFiles) -> None:
    for name, fields in FIELDS.items():
        with open(demo.salesforce_dir / f"{name}.csv", encoding="utf-8", newline="") as f:
            assert next(csv.reader(f)) == fields.split(), name
    raw = (demo.salesforce_dir / "Opportunity.csv").read_bytes()
    assert raw.startswith(b'"Id","Name",') and b"\r\n" in raw


def test_ids_have_the_right_prefix_and_checksum(demo: DemoFiles) -> None:
    seen = set()
    for name, prefix in PREFIXES.items():
        rows = _csv(demo, name)
        assert rows, name
        for row in rows:
            sf_id = row["Id"]
            assert len(sf_id) == 18 and sf_id.startswith(prefix) and _checksum_ok(sf_id), sf_id
            seen.add(sf_id)
    assert len(seen) == sum(len(_csv(demo, name)) for name in PREFIXES)


def test_references_point_at_existing_rows(demo: DemoFiles) -> None:
    ids = {name: {r["Id"] for r in _csv(demo, name)} for name in PREFIXES}
    checked = 0
    for (name, field), target in REFERENCES.items():
        for row in _csv(demo, name):
            if row[field] == "" and field in ("CampaignId", "ContactId", "LeadId"):
                continue
            assert any(row[field] in ids[t] for t in target.split()), (name, field, row[field])
            checked += 1
    assert checked > 300
    stages = {r["MasterLabel"] for r in _csv(demo, "OpportunityStage")}
    assert {r["StageName"] for r in _csv(demo, "Opportunity")} == stages
    assert {r["StageName"] for r in _csv(demo, "OpportunityHistory")} <= stages
    # a task or event's contact belongs to the account it names
    account_of = {r["Id"]: r["AccountId"] for r in _csv(demo, "Contact")}
    for row in _csv(demo, "Task") + _csv(demo, "Event"):
        assert account_of[row["WhoId"]] == row["AccountId"]


def test_value_formats(demo: DemoFiles) -> None:
    formats = {
        "datetime": re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z"),
        "date": re.compile(r"\d{4}-\d\d-\d\d"),
        "bool": re.compile(r"true|false"),
    }
    kinds = {
        "CreatedDate": "datetime",
        "LastModifiedDate": "datetime",
        "SystemModstamp": "datetime",
        "StartDateTime": "datetime",
        "EndDateTime": "datetime",
        "ActivityDateTime": "datetime",
        "CloseDate": "date",
        "StartDate": "date",
        "EndDate": "date",
        "IsDeleted": "bool",
        "IsClosed": "bool",
        "IsWon": "bool",
        "IsPrivate": "bool",
        "IsActive": "bool",
        "IsPrimary": "bool",
        "IsAllDayEvent": "bool",
    }
    for name in FIELDS:
        for row in _csv(demo, name):
            for field, kind in kinds.items():
                if field in row:
                    assert formats[kind].fullmatch(row[field]), (name, field, row[field])


def test_opportunities_cover_the_interesting_cases(demo: DemoFiles) -> None:
    opps = _csv(demo, "Opportunity")
    assert len(opps) == 18
    assert {r["StageName"] for r in opps} == {
        r["MasterLabel"] for r in _csv(demo, "OpportunityStage")
    }
    assert sum(r["StageName"] == "Closed Won" for r in opps) in (2, 3)
    assert sum(r["StageName"] == "Closed Lost" for r in opps) == 2
    assert sum(r["Amount"] == "" for r in opps) == 1
    assert sum(r["IsPrivate"] == "true" for r in opps) == 1
    assert all(5_000 <= float(r["Amount"]) <= 400_000 for r in opps if r["Amount"])
    closes = [date.fromisoformat(r["CloseDate"]) - TODAY for r in opps]
    assert all(timedelta(days=-60) <= d <= timedelta(days=180) for d in closes)
    open_per_account = Counter(r["AccountId"] for r in opps if r["IsClosed"] == "false")
    assert 1 in open_per_account.values() and 2 in open_per_account.values()
    assert "Acme Robotics — Predictive maintenance pilot" in {r["Name"] for r in opps}
    roles = Counter(r["OpportunityId"] for r in _csv(demo, "OpportunityContactRole"))
    assert set(roles) == {r["Id"] for r in opps} and set(roles.values()) <= {1, 2, 3}


def test_history_shows_progress_an_amount_change_and_a_pushed_close_date(demo: DemoFiles) -> None:
    rows = sorted(_csv(demo, "OpportunityHistory"), key=lambda r: r["CreatedDate"])
    by_opp: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_opp.setdefault(row["OpportunityId"], []).append(row)
    current = {r["Id"]: r for r in _csv(demo, "Opportunity")}
    for oid, history in by_opp.items():
        assert history[-1]["StageName"] == current[oid]["StageName"]
        assert history[-1]["CloseDate"] == current[oid]["CloseDate"]
    amount_changes = [o for o, h in by_opp.items() if len({r["Amount"] for r in h}) > 1]
    close_pushes = {o: len({r["CloseDate"] for r in h}) - 1 for o, h in by_opp.items()}
    assert len(amount_changes) == 1
    assert sorted(close_pushes.values())[-1] == 2 and sorted(close_pushes.values())[-2] == 0
    assert sum(len(h) > 2 for h in by_opp.values()) > 8


def test_tasks_and_events(demo: DemoFiles) -> None:
    tasks, events = _csv(demo, "Task"), _csv(demo, "Event")
    assert 50 <= len(tasks) <= 60 and 12 <= len(events) <= 18
    open_tasks = [t for t in tasks if t["IsClosed"] == "false"]
    assert open_tasks and all(date.fromisoformat(t["ActivityDate"]) > TODAY for t in open_tasks)
    calls = [t for t in tasks if t["TaskSubtype"] == "Call"]
    assert calls and all(t["CallDurationInSeconds"].isdigit() for t in calls)
    assert {t["TaskSubtype"] for t in tasks} == {"Call", "Email", "Task"}
    assert sum(t["IsDeleted"] == "true" for t in tasks) == 1
    assert any("\n" in t["Description"] and '"' in t["Description"] for t in tasks)
    for e in events:
        start, end = (
            datetime.fromisoformat(e[k].replace("Z", "+00:00"))
            for k in ("StartDateTime", "EndDateTime")
        )
        assert end - start == timedelta(minutes=int(e["DurationInMinutes"]))


def test_calendars_parse_with_timezones_and_attendees(demo: DemoFiles) -> None:
    uids: dict[str, set[str]] = {}
    for name, cal in _calendars(demo).items():
        tzids = {str(tz["TZID"]) for tz in cal.walk("VTIMEZONE")}
        for ev in cal.walk("VEVENT"):
            uids.setdefault(str(ev["UID"]), set()).add(name)
            assert ev["DTSTART"].params["TZID"] in tzids
            assert str(ev["ORGANIZER"]).startswith("mailto:") and ev["ORGANIZER"].params["CN"]
            attendees = ev["ATTENDEE"]
            assert all(a.params["PARTSTAT"] and a.params["CN"] for a in attendees)
            assert any(not str(a).endswith("@northwind.example") for a in attendees)
            assert " — " in str(ev["SUMMARY"])
        assert tzids <= {"Europe/Berlin", "America/New_York"}
    assert 28 <= len(uids) <= 34
    assert sum(len(files) > 1 for files in uids.values()) >= 3


def test_recurring_cancelled_and_planned_meetings(demo: DemoFiles) -> None:
    cal = _calendars(demo)["anna.keller.ics"]
    weekly = [ev for ev in cal.walk("VEVENT") if "RRULE" in ev]
    assert len(weekly) == 1 and weekly[0]["RRULE"]["COUNT"] == [8]
    excluded = weekly[0]["EXDATE"].dts[0].dt
    occurrences = [
        ev
        for ev in recurring_ical_events.of(cal).between(
            TODAY - timedelta(days=400), TODAY + timedelta(days=400)
        )
        if ev["UID"] == weekly[0]["UID"]
    ]
    starts = [ev["DTSTART"].dt for ev in occurrences]
    assert len(starts) == 7 and excluded not in starts
    assert all(
        b - a in (timedelta(weeks=1), timedelta(weeks=2))
        for a, b in zip(starts, starts[1:], strict=False)
    )
    events = {str(ev["UID"]): ev for c in _calendars(demo).values() for ev in c.walk("VEVENT")}
    cancelled = [ev for ev in events.values() if ev["STATUS"] == "CANCELLED"]
    assert len(cancelled) == 1
    soon = [
        ev
        for ev in events.values()
        if ev["STATUS"] == "CONFIRMED"
        and "RRULE" not in ev
        and TODAY < ev["DTSTART"].dt.date() <= TODAY + timedelta(days=21)
    ]
    assert 2 <= len(soon) <= 3
    past = [ev for ev in events.values() if ev["DTSTART"].dt.date() < TODAY]
    assert all(ev["DTSTART"].dt.date() >= TODAY - timedelta(days=120) for ev in past)


# --------------------------------------------------------------------------- the truth


def _truth(demo: DemoFiles) -> dict:
    return load_truth(demo.root)


def _records(truth: dict, source: str) -> list[tuple[dict, dict]]:
    return [(e, r) for e in truth["events"] for r in e["records"] if r["source"] == source]


def test_truth_is_written_beside_the_files_and_is_deterministic(demo: DemoFiles, tmp_path: Path):
    assert (demo.root / TRUTH_FILE).is_file()
    truth = _truth(demo)
    assert (truth["seed"], truth["today"]) == (7, TODAY.isoformat())
    again = write_demo_files(tmp_path / "again", seed=7, today=TODAY)
    assert (again.root / TRUTH_FILE).read_bytes() == (demo.root / TRUTH_FILE).read_bytes()
    # another process (another hash seed) writes the same bytes, calendars included
    code = (
        "import sys; from datetime import date; from oppkit.demo_data import write_demo_files; "
        f"write_demo_files(sys.argv[1], seed=7, today=date.fromisoformat({TODAY.isoformat()!r}))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "other")], check=True, env=env)
    assert _files(tmp_path / "other") == _files(demo.root)


def test_truth_covers_every_message_in_the_mailboxes(demo: DemoFiles) -> None:
    truth = _truth(demo)
    boxes: dict[str, set[str]] = {}
    no_id = []
    for name, msgs in _all_messages(demo).items():
        for _, msg in msgs:
            if msg["Message-ID"]:
                boxes.setdefault(msg["Message-ID"], set()).add(name)
            else:
                no_id.append(msg)
    mail = _records(truth, "mail")
    assert {r["message_id"]: set(r["mailboxes"]) for _, r in mail if r["message_id"]} == boxes
    assert all(r["source_id"] == r["message_id"].strip("<>") for _, r in mail if r["message_id"])
    [(event, record)] = [(e, r) for e, r in mail if r["message_id"] is None]
    [msg] = no_id
    assert record["source_id"] is None and event["subject"] == msg["Subject"]
    assert event["occurred_at"] == msg["Date"].datetime.astimezone(UTC).strftime(
        "%Y-%m-%dT%H:%M:%S.000Z"
    )


def test_truth_covers_every_meeting_in_the_calendars(demo: DemoFiles) -> None:
    truth = _truth(demo)
    seen: dict[tuple[str, str], set[str]] = {}
    for name, cal in _calendars(demo).items():
        window = (TODAY - timedelta(days=400), TODAY + timedelta(days=400))
        for ev in recurring_ical_events.of(cal).between(*window):
            start = ev["DTSTART"].dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
            seen.setdefault((str(ev["UID"]), start), set()).add(name)
    meetings = _records(truth, "calendar")
    assert {(r["uid"], r["start"]): set(r["calendars"]) for _, r in meetings} == seen
    for event, record in meetings:
        series = "recurring" in event["tags"]
        stamp = record["start"].replace("-", "").replace(":", "").replace(".000", "")
        assert record["source_id"] == (f"{record['uid']}/{stamp}" if series else record["uid"])
        assert event["opportunity_id"] and event["occurred_at"] == record["start"]


def test_truth_places_every_salesforce_task_and_event(demo: DemoFiles) -> None:
    truth = _truth(demo)
    opportunities = {r["Id"] for r in _csv(demo, "Opportunity")}
    assert {o["id"] for o in truth["opportunities"]} == opportunities
    rows = {r["Id"]: r for r in _csv(demo, "Task") + _csv(demo, "Event")}
    records = _records(truth, "salesforce")
    assert sorted(r["source_id"] for _, r in records) == sorted(rows)
    for event, record in records:
        row = rows[record["source_id"]]
        if row["WhatId"] in opportunities:  # Salesforce's own link is the truth here
            assert event["opportunity_id"] == row["WhatId"]
        else:  # the one email Ben logged to the account
            assert row["WhatId"] == row["AccountId"] == event["account_id"]
            assert event["opportunity_id"] is None
        sources = [r["source"] for r in event["records"]]
        if record["object"] == "Task" and sources[0] == "mail":  # a logged email
            assert row["TaskSubtype"] == "Email" and row["Subject"] == f"Email: {event['subject']}"
        if record["object"] == "Event" and sources[0] == "calendar":  # a logged meeting
            assert row["StartDateTime"] == event["occurred_at"]
            assert row["Subject"] == event["subject"]
    keys = [record_key(r) for e in truth["events"] for r in e["records"] if record_key(r)]
    assert len(keys) == len(set(keys))  # every record belongs to exactly one event


def test_truth_shows_the_harder_cases(demo: DemoFiles) -> None:
    truth = _truth(demo)
    tags = Counter(t for e in truth["events"] for t in e["tags"])
    for tag in ("after close, in grace", "after close, long after", "old thread, other deal",
                "forward", "internal", "account only", "several live deals",
                "person on two deals", "recurring"):  # fmt: skip
        assert tags[tag] > 0, tag
    grouped = [tuple(r["source"] for r in e["records"]) for e in truth["events"]]
    assert grouped.count(("mail", "salesforce")) >= 10  # emails also logged as Tasks
    assert grouped.count(("calendar", "salesforce")) >= 10  # meetings also logged as Events
    # two open deals on one account, each with mail of its own
    by_deal = Counter(e["opportunity"] for e in truth["events"] if e["kind"] == "email")
    assert by_deal["umbrella-clin"] and by_deal["umbrella-hipaa"]
    assert by_deal["vandelay-import"] and by_deal["vandelay-pos"]
    # mail after a deal closed: within the grace still that deal's, long after not
    closes = {o["key"]: o["close_date"] for o in truth["opportunities"]}
    for event in truth["events"]:
        day = event["occurred_at"][:10]
        if "after close, in grace" in event["tags"]:
            assert day > closes[event["opportunity"]]
        if "after close, long after" in event["tags"]:
            assert event["opportunity"] not in ("globex-dw", "wayne-board")


# --------------------------------------------------------------------------- scoring


def test_score_compares_activities_with_the_truth() -> None:
    def event(name, deal, *keys, subject="s", at="2026-01-05T10:00:00.000Z"):
        records = [{"source": k.split(":")[0], "source_id": k.split(":", 1)[1] or None}
                   for k in keys]  # fmt: skip
        return {"event": name, "kind": "email", "occurred_at": at, "subject": subject,
                "opportunity_id": deal, "account_id": "001A", "tags": [name],
                "records": records}  # fmt: skip

    truth = {
        "opportunities": [{"id": "006A", "name": "Deal A"}, {"id": "006B", "name": "Deal B"}],
        "events": [
            event("e1", "006A", "mail:m1", "salesforce:00T1"),  # an email logged as a Task
            event("e2", "006B", "calendar:u2"),
            event("e3", None, "mail:m3"),  # the account only
            event("e4", "006A", "mail:", subject="Hello"),  # no Message-ID: subject and time
            event("e5", "006B", "calendar:u5/20260105T100000Z"),
            event("e6", None, "mail:m6"),
            event("e7", "006A", "mail:m7"),  # never synced
        ],
    }
    ids = [1, 2, 3, 4, 5, 6, 7]
    timeline = pd.DataFrame({
        "id": ids,
        "occurred_at": pd.to_datetime(["2026-01-05 10:00:30"] * 7, utc=True),
        "kind": ["email"] * 7,
        "subject": ["s", "s", "s", "s", "Hello", "s", "s"],
        "source": ["mail", "salesforce", "calendar", "mail", "mail", "calendar", "mail"],
        "source_id": ["m1", "00T1", "u2", "m3", "sha256:ab", "u5/20260105T100000Z", "zz"],
        "sources": [None, None, None, None, None, "calendar:u5/20260105T100000Z, mail:m6", None],
        "opportunity_id": pd.array([10, 10, 10, 11, None, 11, 10], dtype="Int64"),
        "opportunity": ["Deal A", "Deal A", "Deal A", "Deal B", None, "Deal B", "Deal A"],
    })  # fmt: skip
    opportunities = pd.DataFrame({"id": [10, 11], "source_id": ["006A", "006B"]})
    result = score(truth, timeline, opportunities)
    # linked: 1, 2 (right), 3 (B's meeting on A), 4 (account-only mail on B), 6 (right)
    assert (result.linked, result.linked_right) == (5, 3) and result.precision == 0.6
    # belong to a deal: 1, 2, 3, 5 (not linked), 6
    assert (result.should_link, result.found) == (5, 3) and result.recall == 0.6
    assert result.duplicates == ["e1"] and result.merges == [6]
    assert result.missing == ["e7"] and result.unknown == [7]
    assert list(result.wrong["activity"]) == [3, 4]
    assert list(result.wrong["truth"]) == ["Deal B", "account only"]
    assert list(result.missed["activity"]) == [3, 5]
    assert result.by_tag.loc["e1", "duplicated"] == 1
    assert result.failures() == ["precision", "recall", "duplicates", "merges"]
    assert result.failures({"precision": 0.5, "recall": 0.5}) == []


def test_activity_keys_read_merged_sources_in_any_shape() -> None:
    row = {"source": "mail", "source_id": "m1"}
    assert activity_keys(row) == ["mail:m1"]
    assert activity_keys({**row, "sources": None}) == ["mail:m1"]
    assert activity_keys({**row, "sources": float("nan")}) == ["mail:m1"]
    assert activity_keys({**row, "sources": "mail:m1; salesforce:00T1"}) == [
        "mail:m1", "salesforce:00T1"
    ]  # fmt: skip
    assert activity_keys({**row, "sources": [("mail", "m1"), ("salesforce", "00T1")]}) == [
        "mail:m1", "salesforce:00T1"
    ]  # fmt: skip
    listed = [{"source": "mail", "source_id": "m1"}, "calendar:u/20260105T100000Z"]
    assert activity_keys({**row, "sources": listed}) == ["mail:m1", "calendar:u/20260105T100000Z"]
