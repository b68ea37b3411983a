"""Interactions: plans and results on an account (kit.interactions), with the real
Salesforce client syncing a wire-level fake org, a real SMTP server (aiosmtpd) and a
registered SMS sender. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select

import oppkit
from oppkit.actions import NotAllowed, add_note, set_private
from oppkit.db.schema import outbox
from oppkit.errors import ConfigError, OppkitError
from oppkit.workflow import register_sender
from oppkit.workflow.communications import unregister_sender
from tests.fakes.salesforce import FakeOrg
from tests.support import small_org
from tests.support import sync_fake_salesforce as sync

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
AVA = "ava.patel@northwind.example"
BEN = "ben.okafor@northwind.example"
BOB = "bob.smith@acme-robotics.example"
NOW = datetime.now(UTC)
TODAY = NOW.date()
CONFIG = """
[interactions]
result_types = ["Reached", "No answer", "Meeting booked"]

[interactions.templates.thank_you]
subject = "Thank you, {first_name}"
body = "Hello {first_name}, thanks for the call about {opportunity}. {comments}"
html = "<p>Hello {name}</p>"

[interactions.templates.thank_you.de]
subject = "Danke, {first_name}"
body = "Hallo {first_name}, danke für das Gespräch über {opportunity}. {comments}"
"""

pytestmark = pytest.mark.usefixtures("sf_fast_retries")


@pytest.fixture
def org() -> FakeOrg:
    org = small_org(T0)
    acme = org.ids["acme"]
    ben = org.add("User", FirstName="Ben", LastName="Okafor", Email=BEN, Username="ben")
    bob = org.add("Contact", AccountId=acme, FirstName="Bob", LastName="Smith", Email=BOB)
    org.ids |= {"bob": bob, "ben": ben}
    return org


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "oppkit.toml"
    path.write_text(CONFIG, encoding="utf-8")
    monkeypatch.setenv("OPPKIT_CONFIG", str(path))
    return path


def _row(frame: pd.DataFrame, name: str) -> pd.Series:
    rows = frame[frame["name"] == name]
    assert len(rows) == 1, f"{name!r}: {len(rows)} rows"
    return rows.iloc[0]


def test_a_plan_is_upcoming_then_overdue_and_in_open_tasks_once(db_url, settings, fake, org):
    sync(db_url, settings, fake)
    kit = oppkit.connect(db_url, user=AVA)
    start = NOW + timedelta(days=2)
    call = kit.interactions.plan(
        "Pricing call", "Call", start=start, end=start + timedelta(minutes=30),
        opportunity="Acme pilot", contact=BOB, location="Teams",
        location_comments="link in the invite", description="Walk through the price list",
        source_type="Inbound", reason="Pricing question",
    )  # fmt: skip
    row = _row(kit.interactions(), "Pricing call")
    assert row["id"] == call and not pd.isna(row["interaction_id"])
    assert (row["interaction_type"], row["status"], row["account"], row["opportunity"]) == (
        "call", "planned", "Acme Robotics", "Acme pilot",
    )  # fmt: skip
    assert (row["assigned_to"], row["contact"], row["location"], row["source"]) == (
        AVA, BOB, "Teams", "oppkit",
    )  # fmt: skip
    assert (row["location_comments"], row["description"], row["source_type"], row["reason"]) == (
        "link in the invite", "Walk through the price list", "Inbound", "Pricing question",
    )  # fmt: skip
    assert row["planned_start"] == pd.Timestamp(start).floor("us")
    assert row["planned_end"] - row["planned_start"] == pd.Timedelta(minutes=30)
    assert list(kit.interactions(account="acme-robotics.example", status="planned")["id"]) == [call]
    assert kit.interactions(status="overdue").empty and kit.interactions(status="done").empty
    # upcoming on the timeline; not a task yet
    on_timeline = kit.timeline(account="Acme Robotics").set_index("id").loc[call]
    assert on_timeline["is_planned"] and on_timeline["occurred_at"] > pd.Timestamp(NOW)
    assert (on_timeline["kind"], on_timeline["status"]) == ("call", "planned")
    assert call not in set(kit.open_tasks()["activity_id"].dropna())

    # plans whose start passed are overdue, in open tasks once, whatever their type
    visit = kit.interactions.plan("Site visit", "visit", start=NOW - timedelta(days=1),
                                  account="acme-robotics.example")  # fmt: skip
    nda = kit.interactions.plan("Send the NDA", "task", start=NOW - timedelta(hours=2),
                                opportunity="Acme pilot")  # fmt: skip
    overdue = kit.interactions(status="overdue")
    assert set(overdue["id"]) == {visit, nda} and set(overdue["status"]) == {"overdue"}
    assert set(kit.interactions(status="planned")["id"]) == {call, visit, nda}
    tasks = kit.open_tasks()
    assert sorted(tasks["activity_id"].dropna().tolist()) == sorted([visit, nda])
    assert set(tasks["origin"]) == {"interaction"} and set(tasks["status"]) == {"overdue"}
    assert tasks["text"].tolist() == ["Site visit", "Send the NDA"]  # oldest due first
    deal_tasks = kit.open_tasks(opportunity="Acme pilot")
    assert deal_tasks[["origin", "activity_id", "text"]].values.tolist() == [
        ["interaction", nda, "Send the NDA"]
    ]
    # a cancelled plan leaves both lists
    kit.interactions.cancel(nda)
    assert _row(kit.interactions(), "Send the NDA")["status"] == "cancelled"
    assert kit.open_tasks(opportunity="Acme pilot").empty
    with pytest.raises(OppkitError, match="is cancelled already"):
        kit.interactions.record_result(nda, "Done")


def test_a_result_with_an_email_is_sent_after_commit_and_stands_on_the_timeline(
    db_url, settings, fake, org, smtp_server, config, monkeypatch, tmp_path
):
    monkeypatch.setenv("OPPKIT_SMTP_FROM", "crm@northwind.example")
    sync(db_url, settings, fake)
    kit = oppkit.connect(db_url, user=AVA)
    call = kit.interactions.plan("Pricing call", "call", start=NOW - timedelta(hours=1),
                                 opportunity="Acme pilot", contact=BOB)  # fmt: skip
    sheet = tmp_path / "price list.pdf"
    sheet.write_bytes(b"%PDF-1.4 prices")
    at = NOW - timedelta(minutes=20)
    done = kit.interactions.record_result(
        call, "reached", at=at, duration=25, comments="Quote by Friday.",
        description="Bob wants 40 seats",
        message={"template": "thank_you", "language": "de-CH", "attachments": [str(sheet)]},
    )  # fmt: skip
    assert done.message_status == "sent" and done.id == call
    [mail] = smtp_server.to(BOB)
    assert mail["Subject"] == "Danke, Bob" and mail["From"] == "crm@northwind.example"
    text = mail.get_body(("plain",)).get_content()
    assert "Hallo Bob, danke für das Gespräch über Acme pilot. Quote by Friday." in text
    assert mail.get_body(("html",)).get_content().strip() == "<p>Hello Bob Smith</p>"
    [attached] = list(mail.iter_attachments())
    assert attached.get_filename() == "price list.pdf"
    assert attached.get_content() == b"%PDF-1.4 prices"

    row = _row(kit.interactions(), "Pricing call")
    assert (row["status"], row["result_type"], row["duration_minutes"]) == ("done", "Reached", 25)
    assert (row["result_comments"], row["result_description"], row["message_status"]) == (
        "Quote by Friday.", "Bob wants 40 seats", "sent",
    )  # fmt: skip
    assert row["result_at"] == pd.Timestamp(at).floor("us")
    assert row["planned_start"] == pd.Timestamp(NOW - timedelta(hours=1)).floor("us")  # kept
    assert kit.open_tasks().empty
    timeline = kit.timeline(opportunity="Acme pilot").set_index("id")
    assert not timeline.loc[call, "is_planned"] and timeline.loc[call, "status"] == "done"
    assert timeline.loc[call, "occurred_at"] == pd.Timestamp(at).floor("us")
    sent = timeline.loc[done.message_activity]
    assert (sent["kind"], sent["subject"], sent["direction"], sent["status"]) == (
        "email", "Danke, Bob", "outbound", "sent",
    )  # fmt: skip
    items = kit.interactions.items(call)
    assert items[["id", "relation", "status"]].values.tolist() == [
        [done.message_activity, "message", "sent"]
    ]
    with pytest.raises(OppkitError, match="is done already"):
        kit.interactions.record_result(call, "Reached")

    # free text, sent as plain text only: the html part is left out
    demo = kit.interactions.plan("Demo", "meeting", start=NOW - timedelta(hours=3),
                                 account="Acme Robotics", contact=BOB)  # fmt: skip
    plain = kit.interactions.record_result(
        "Demo", "Meeting booked",
        message={"body": "Hi {first_name}, see you at {interaction}.", "html": "<b>x</b>",
                 "subject": "Next steps", "as_text": True},
    )  # fmt: skip
    assert plain.message_status == "sent"
    mail = smtp_server.to(BOB)[-1]
    assert mail["Subject"] == "Next steps" and not mail.is_multipart()
    assert mail.get_content().strip() == "Hi Bob, see you at Demo."
    assert _row(kit.interactions(), "Demo")["id"] == demo


def test_an_sms_goes_through_the_registered_sender_with_retries(db_url, settings, fake, org):
    sync(db_url, settings, fake)
    kit = oppkit.connect(db_url, user=AVA)
    calls = []

    def flaky(message) -> None:  # noqa: ANN001
        calls.append((message.recipient, message.body))
        if len(calls) < 3:
            raise ConnectionError("gateway busy")

    register_sender("sms")(flaky)
    try:
        plan = kit.interactions.plan("Reminder", "sms", start=NOW - timedelta(minutes=5),
                                     opportunity="Acme pilot", contact=BOB)  # fmt: skip
        with pytest.raises(OppkitError, match="SMS needs to= a phone number"):
            kit.interactions.record_result(plan, "Reached", message={"channel": "sms",
                                                                     "body": "Hi"})  # fmt: skip
        assert _row(kit.interactions(), "Reminder")["status"] == "overdue"  # nothing recorded
        done = kit.interactions.record_result(
            plan, "Reached",
            message={"channel": "sms", "to": "+49 170 1234567",
                     "body": "Hi {first_name}, the call is at 10."},
        )  # fmt: skip
    finally:
        unregister_sender("sms")
    assert done.message_status == "sent"
    assert calls == [("+49 170 1234567", "Hi Bob, the call is at 10.")] * 3
    with kit.engine.connect() as conn:
        row = conn.execute(select(outbox).where(outbox.c.id == done.message)).one()
    assert (row.status, row.attempts, row.channel) == ("sent", 3, "sms")
    sms = kit.timeline(kind="sms").set_index("id").loc[done.message_activity]
    assert (sms["status"], sms["opportunity"]) == ("sent", "Acme pilot")
    assert _row(kit.interactions(), "Reminder")["message_status"] == "sent"


def test_result_types_are_a_configured_list_and_others_are_refused(
    db_url, settings, fake, org, config
):
    sync(db_url, settings, fake)
    kit = oppkit.connect(db_url, user=AVA)
    assert kit.interactions.result_types() == ["Reached", "No answer", "Meeting booked"]
    plan = kit.interactions.plan("Intro call", "call", start=NOW, account="Acme Robotics")
    with pytest.raises(
        OppkitError, match="'Done' is not one of: Reached, No answer, Meeting booked"
    ):
        kit.interactions.record_result(plan, "Done")
    with pytest.raises(OppkitError, match="interaction type 'fax' is not one of: call, meeting"):
        kit.interactions.plan("Fax", "fax", start=NOW, account="Acme Robotics")
    with pytest.raises(OppkitError, match="no message template 'nope'; templates: thank_you"):
        kit.interactions.record_result(plan, "Reached", message={"template": "nope"})
    assert _row(kit.interactions(), "Intro call")["status"] in ("planned", "overdue")
    config.write_text('[interactions]\nresult_types = ["Reached", "reached"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="'reached' is listed twice"):
        kit.interactions.result_types()


def test_salesforce_tasks_and_events_are_interactions_completed_in_salesforce(
    db_url, settings, fake, org
):
    acme, pilot, bob = org.ids["acme"], org.ids["pilot"], org.ids["bob"]
    task = dict(WhatId=pilot, WhoId=bob, OwnerId=org.ids["ava"], Priority="Normal")
    org.add("Task", Subject="Send the contract", Status="Not Started",
            ActivityDate=TODAY + timedelta(days=5), **task)  # fmt: skip
    org.add("Task", Subject="Chase the PO", Status="In Progress",
            ActivityDate=TODAY - timedelta(days=3), **task)  # fmt: skip
    org.add("Task", Subject="Kick-off call", Status="Completed", IsClosed=True,
            TaskSubtype="Call", ActivityDate=TODAY - timedelta(days=10),
            Description="Went well", **task)  # fmt: skip
    start = (NOW + timedelta(days=3)).replace(microsecond=0)
    org.add("Event", WhatId=pilot, WhoId=bob, OwnerId=org.ids["ava"], Subject="Workshop",
            StartDateTime=start, EndDateTime=start + timedelta(hours=2),
            DurationInMinutes=120, Location="Berlin", Description="Bring the roadmap")  # fmt: skip
    org.add("Event", WhatId=acme, OwnerId=org.ids["ava"], Subject="Lunch",
            StartDateTime=start - timedelta(days=20), DurationInMinutes=60)  # fmt: skip
    sync(db_url, settings, fake)
    kit = oppkit.connect(db_url, user=AVA)
    frame = kit.interactions(source="salesforce")
    statuses = dict(zip(frame["name"], frame["status"], strict=True))
    assert statuses == {"Send the contract": "planned", "Chase the PO": "overdue",
                        "Kick-off call": "done", "Workshop": "planned", "Lunch": "done"}  # fmt: skip
    workshop = _row(frame, "Workshop")
    assert (workshop["interaction_type"], workshop["location"], workshop["description"]) == (
        "meeting", "Berlin", "Bring the roadmap",
    )  # fmt: skip
    assert workshop["planned_start"] == pd.Timestamp(start)
    assert workshop["planned_end"] == pd.Timestamp(start + timedelta(hours=2))
    assert (workshop["contact"], workshop["assigned_to"], workshop["opportunity"]) == (
        BOB, AVA, "Acme pilot",
    )  # fmt: skip
    kickoff = _row(frame, "Kick-off call")
    assert (kickoff["interaction_type"], kickoff["description"]) == ("call", "Went well")
    assert kickoff["result_at"].date() == TODAY - timedelta(days=10)
    assert pd.isna(kickoff["interaction_id"]) and kickoff["source"] == "salesforce"
    assert _row(frame, "Send the contract")["planned_start"].date() == TODAY + timedelta(days=5)

    # its fields are Salesforce's: complete it there
    for name in ("Chase the PO", "Workshop"):
        with pytest.raises(NotAllowed, match="Salesforce's fields.*do it in Salesforce"):
            kit.interactions.record_result(name, "Reached")
    with pytest.raises(NotAllowed, match="Salesforce Task"):
        kit.interactions.follow_up("Chase the PO", "Call again", start=NOW)
    assert kit.interactions.items("Chase the PO").empty
    # the overdue Salesforce task is an open task once (as the Salesforce task it is)
    tasks = kit.open_tasks()
    assert sorted(tasks["text"]) == ["Chase the PO", "Send the contract"]
    assert set(tasks["origin"]) == {"activity"}

    # a plan made here on the Salesforce account is oppkit's: a sync never touches it
    mine = kit.interactions.plan("Renewal chat", "call", start=NOW + timedelta(days=9),
                                 account="Acme Robotics", contact=BOB)  # fmt: skip
    before = _row(kit.interactions(), "Renewal chat")
    org.advance(minutes=5)
    org.update("Account", acme, Name="Acme Robotics GmbH")
    sync(db_url, settings, fake)
    after = _row(kit.interactions(), "Renewal chat")
    assert after.drop("account").equals(before.drop("account")) and after["id"] == mine
    assert pd.isna(after["opportunity"])  # the account only, as planned; never matched


def test_follow_ups_and_attached_activities_hang_under_a_plan(db_url, settings, fake, org):
    sync(db_url, settings, fake)
    kit = oppkit.connect(db_url, user=AVA)
    call = kit.interactions.plan("Pricing call", "call", start=NOW + timedelta(days=1),
                                 opportunity="Acme pilot", contact=BOB)  # fmt: skip
    quote = kit.interactions.follow_up(call, "Send the quote", "email",
                                       start=NOW + timedelta(days=2))  # fmt: skip
    again = kit.interactions.follow_up("Pricing call", "Check in", start=NOW + timedelta(days=7))
    note = add_note(kit, "Acme pilot", "Prepared the price list")
    kit.interactions.attach(call, note)
    kit.interactions.attach(call, note)  # again: nothing new
    items = kit.interactions.items(call)
    assert items[["id", "relation", "name"]].values.tolist() == [
        [note, "activity", "Prepared the price list"],
        [quote, "follow-up", "Send the quote"],
        [again, "follow-up", "Check in"],
    ]
    frame = kit.interactions().set_index("id")
    assert frame.loc[quote, "follows"] == call and frame.loc[again, "follows"] == call
    assert frame.loc[again, "interaction_type"] == "call"  # the plan's type by default
    assert (frame.loc[quote, "opportunity"], frame.loc[quote, "contact"]) == ("Acme pilot", BOB)
    assert frame.loc[quote, "assigned_to"] == AVA
    with pytest.raises(OppkitError, match="not one of our people"):
        kit.interactions.plan("Lunch", "meeting", start=NOW, account="Acme Robotics",
                              assigned_to=BOB)  # fmt: skip
    with pytest.raises(OppkitError, match="cannot end before it starts"):
        kit.interactions.plan("Lunch", "meeting", start=NOW, end=NOW - timedelta(hours=1),
                              account="Acme Robotics")  # fmt: skip
    with pytest.raises(oppkit.NotFoundError, match="no interaction matches 'Nothing'"):
        kit.interactions.items("Nothing")


def test_a_plan_on_a_private_deal_is_invisible_to_a_colleague(db_url, settings, fake, org):
    sync(db_url, settings, fake)
    ava = oppkit.connect(db_url, user=AVA)
    set_private(ava, "Acme pilot", True)
    secret = ava.interactions.plan("Secret pricing call", "call", start=NOW - timedelta(days=1),
                                   opportunity="Acme pilot", contact=BOB)  # fmt: skip
    follow = ava.interactions.follow_up(secret, "Secret follow-up", start=NOW + timedelta(days=1))
    public = ava.interactions.plan("Account review", "meeting", start=NOW + timedelta(days=3),
                                   account="Acme Robotics")  # fmt: skip
    assert set(ava.interactions()["id"]) == {secret, follow, public}
    assert secret in set(ava.open_tasks()["activity_id"])

    for who in (BEN, None):
        ben = oppkit.connect(db_url, user=who)
        seen = ben.interactions()
        assert seen["id"].tolist() == [public]
        assert "Secret" not in seen.to_csv() and "Acme pilot" not in seen.to_csv()
        assert ben.open_tasks().empty
        for ref in (secret, "Secret pricing call", follow):
            with pytest.raises(oppkit.NotFoundError):
                ben.interactions.items(ref)
            with pytest.raises(oppkit.NotFoundError):
                ben.interactions.record_result(ref, "Reached")
            with pytest.raises(oppkit.NotFoundError):
                ben.interactions.follow_up(ref, "Mine now", start=NOW)
        for ref in ("Acme pilot", org.ids["pilot"]):
            with pytest.raises(oppkit.NotFoundError):
                ben.interactions.plan("Sneak", "call", start=NOW, opportunity=ref)
            with pytest.raises(oppkit.NotFoundError):
                ben.interactions(opportunity=ref)
        with pytest.raises(oppkit.NotFoundError):
            ben.interactions.attach(public, secret)
        assert ben.interactions.items(public).empty
