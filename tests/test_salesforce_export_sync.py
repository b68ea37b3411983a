"""A Salesforce Data Export -> database -> opportunities, pipeline, timeline; plus mail
matched to those opportunities. On SQLite and PostgreSQL."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

import oppkit
from oppkit.sync import sync_mail, sync_salesforce_export
from tests.conftest import make_email, write_mbox

TODAY = datetime.now(UTC).date()


def write_csv(path: Path, header: str, rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, quoting=csv.QUOTE_ALL)
        writer.writerow(header.split(","))
        writer.writerows(rows)


@pytest.fixture
def export(tmp_path: Path) -> Path:
    d = tmp_path / "sf"
    d.mkdir()
    write_csv(d / "OpportunityStage.csv", "Id,MasterLabel,IsActive,SortOrder,IsClosed,IsWon,DefaultProbability", [
        ["01J000000000001AAA", "Prospecting", "true", "1", "false", "false", "10"],
        ["01J000000000002AAA", "Proposal/Price Quote", "true", "2", "false", "false", "75"],
        ["01J000000000003AAA", "Closed Won", "true", "3", "true", "true", "100"],
        ["01J000000000004AAA", "Closed Lost", "true", "4", "true", "false", "0"],
    ])  # fmt: skip
    write_csv(d / "User.csv", "Id,Name,Email,Title,IsActive", [
        ["005000000000001AAA", "Ava Patel", "Ava.Patel@northwind.example", "AE", "true"],
        ["005000000000002AAA", "Ben Okafor", "ben.okafor@northwind.example", "AE", "true"],
    ])  # fmt: skip
    write_csv(d / "Account.csv", "Id,Name,Website,OwnerId,IsDeleted", [
        ["001000000000001AAA", "Acme Robotics GmbH", "https://www.acme-robotics.example/", "005000000000001AAA", "false"],
        ["001000000000002AAA", "Globex", "globex.example", "005000000000002AAA", "false"],
    ])  # fmt: skip
    write_csv(d / "Contact.csv", "Id,AccountId,Name,Email,Title", [
        ["003000000000001AAA", "001000000000001AAA", "Jürgen Müller", "juergen.mueller@ACME-robotics.example", "CTO"],
        ["003000000000002AAA", "001000000000002AAA", "Gina Globex", "gina@globex.example", "COO"],
        ["003000000000003AAA", "001000000000002AAA", "Hank Globex", "hank@globex.example", "CFO"],
        ["003000000000004AAA", "001000000000002AAA", "Free Mailer", "freemailer@gmail.com", "Advisor"],
    ])  # fmt: skip
    close = (TODAY + timedelta(days=30)).isoformat()
    write_csv(d / "Opportunity.csv", "Id,Name,AccountId,OwnerId,StageName,Amount,CloseDate,Probability,IsPrivate,SystemModstamp", [
        ["006000000000001AAA", "Acme pilot", "001000000000001AAA", "005000000000001AAA", "Proposal/Price Quote", "120000", close, "75", "false", "2026-01-01T00:00:00.000Z"],
        ["006000000000002AAA", "Globex analytics", "001000000000002AAA", "005000000000002AAA", "Prospecting", "", close, "10", "false", "2026-01-01T00:00:00.000Z"],
        ["006000000000003AAA", "Globex expansion", "001000000000002AAA", "005000000000002AAA", "Prospecting", "50000", close, "10", "false", "2026-01-01T00:00:00.000Z"],
        ["006000000000004AAA", "Globex secret", "001000000000002AAA", "005000000000002AAA", "Closed Won", "9000", "2025-12-01", "100", "true", "2026-01-01T00:00:00.000Z"],
    ])  # fmt: skip
    write_csv(d / "OpportunityContactRole.csv", "Id,OpportunityId,ContactId,Role,IsPrimary", [
        ["00K000000000001AAA", "006000000000001AAA", "003000000000001AAA", "Technical Buyer", "true"],
        ["00K000000000002AAA", "006000000000003AAA", "003000000000003AAA", "Economic Buyer", "true"],
    ])  # fmt: skip
    write_csv(d / "OpportunityHistory.csv", "Id,OpportunityId,StageName,Amount,CloseDate,CreatedDate,CreatedById", [
        ["008000000000001AAA", "006000000000001AAA", "Prospecting", "100000", "2026-02-01", "2026-01-01T10:00:00.000Z", "005000000000001AAA"],
        ["008000000000002AAA", "006000000000001AAA", "Proposal/Price Quote", "120000", close, "2026-02-01T10:00:00.000Z", "005000000000001AAA"],
    ])  # fmt: skip
    write_csv(d / "Task.csv", "Id,WhoId,WhatId,AccountId,OwnerId,Subject,Description,ActivityDate,Status,IsClosed,TaskSubtype,CompletedDateTime,CreatedDate", [
        ["00T000000000001AAA", "003000000000001AAA", "006000000000001AAA", "001000000000001AAA", "005000000000001AAA", "Call about pricing", "Discussed <b>pricing</b>", "2026-02-10", "Completed", "true", "Call", "2026-02-10T15:00:00.000Z", "2026-02-10T15:00:00.000Z"],
        ["00T000000000002AAA", "003000000000001AAA", "006000000000001AAA", "001000000000001AAA", "005000000000001AAA", "Send contract", "", (TODAY + timedelta(days=3)).isoformat(), "Not Started", "false", "Task", "", "2026-02-11T09:00:00.000Z"],
        ["00T000000000003AAA", "", "006000000000001AAA", "", "005000000000001AAA", "Bad date", "", "not-a-date", "Completed", "true", "Task", "", ""],
    ])  # fmt: skip
    write_csv(d / "Event.csv", "Id,WhoId,WhatId,AccountId,OwnerId,Subject,Location,StartDateTime,EndDateTime,DurationInMinutes", [
        ["00U000000000001AAA", "003000000000001AAA", "006000000000001AAA", "001000000000001AAA", "005000000000001AAA", "Demo", "Berlin", "2026-02-12T09:00:00.000Z", "2026-02-12T10:00:00.000Z", "60"],
    ])  # fmt: skip
    return d


def test_export_lands_as_opportunities_pipeline_and_timeline(db_url: str, settings, export: Path):
    summary = sync_salesforce_export(export, settings=settings)
    assert summary.errors == 0
    assert summary.skipped == 1  # the task without any usable date
    kit = oppkit.connect(db_url)

    opps = kit.opportunities().set_index("name")
    assert "Globex secret" not in opps.index  # private: hidden without a user
    assert opps.loc["Acme pilot", "account"] == "Acme Robotics GmbH"
    assert opps.loc["Acme pilot", "owner"] == "Ava Patel"
    assert opps.loc["Acme pilot", "amount"] == 120000
    assert pd.isna(opps.loc["Globex analytics", "amount"])  # null stays null
    assert opps.loc["Acme pilot", "days_to_close"] == 30
    assert opps.loc["Acme pilot", "close_date"] == TODAY + timedelta(days=30)
    assert set(kit.opportunities().columns) >= {
        "id", "name", "account", "owner", "stage", "amount", "close_date", "days_to_close",
        "open_alerts", "is_private", "source", "source_id",
    }  # fmt: skip

    pipeline = kit.pipeline()
    assert list(pipeline["stage"]) == ["Prospecting", "Proposal/Price Quote"]
    assert list(pipeline["count"]) == [2, 1]
    assert list(pipeline["amount"]) == [50000.0, 120000.0]

    tl = kit.timeline(opportunity="Acme pilot")
    assert list(tl["subject"]) == ["Send contract", "Demo", "Call about pricing"]
    assert list(tl["kind"]) == ["task", "meeting", "call"]
    assert tl.set_index("subject").loc["Send contract", "is_planned"]
    assert (
        tl.set_index("subject").loc["Call about pricing", "snippet"] == "Discussed <b>pricing</b>"
    )

    history = kit.stage_history(opportunity="Acme pilot")
    moves = history[history["field"] == "stage"]
    assert list(moves["new_value"]) == ["Proposal/Price Quote", "Prospecting"]
    amount = history[history["field"] == "amount"].iloc[0]
    assert (amount["old_value"], amount["new_value"]) == ("100000.0", "120000.0")

    members = kit.people(opportunity="Acme pilot")
    assert list(members["email"]) == ["juergen.mueller@acme-robotics.example"]
    assert members["role"].iloc[0] == "Technical Buyer"
    ppl = kit.people().set_index("email")
    assert ppl.loc["freemailer@gmail.com", "account"] == "Globex"  # from Salesforce, not the domain
    assert ppl.loc["ava.patel@northwind.example", "is_internal"]


def test_privacy_follows_owner_and_members(db_url: str, settings, export: Path):
    sync_salesforce_export(export, settings=settings)
    assert "Globex secret" in set(
        oppkit.connect(db_url, user="ben.okafor@northwind.example").opportunities()["name"]
    )
    assert "Globex secret" not in set(
        oppkit.connect(db_url, user="ava.patel@northwind.example").opportunities()["name"]
    )


def test_mail_links_to_the_opportunity_only_when_unambiguous(
    db_url: str, settings, export: Path, tmp_path: Path
):
    sync_salesforce_export(export, settings=settings)
    when = datetime(2026, 3, 1, 12, tzinfo=UTC)
    mails = [
        # Acme has one open opportunity: linked
        make_email(sender="juergen.mueller@acme-robotics.example", to=["ava.patel@northwind.example"],
                   subject="acme", body="x", when=when, message_id="a@x"),
        # Globex has two open ones; Hank is a member of only "Globex expansion": linked to it
        make_email(sender="hank@globex.example", to=["ben.okafor@northwind.example"],
                   subject="hank", body="x", when=when, message_id="h@x"),
        # Gina is on neither: account only
        make_email(sender="gina@globex.example", to=["ben.okafor@northwind.example"],
                   subject="gina", body="x", when=when, message_id="g@x"),
    ]  # fmt: skip
    sync_mail(write_mbox(tmp_path / "m.mbox", mails), settings=settings)
    tl = oppkit.connect(db_url).timeline(kind="email").set_index("subject")
    assert tl.loc["acme", "opportunity"] == "Acme pilot"
    assert tl.loc["hank", "opportunity"] == "Globex expansion"
    assert pd.isna(tl.loc["gina", "opportunity"])
    assert tl.loc["gina", "account"] == "Globex"


def test_rerun_of_an_unchanged_export_writes_nothing(db_url: str, settings, export: Path):
    first = sync_salesforce_export(export, settings=settings)
    second = sync_salesforce_export(export, settings=settings)
    assert first.written > 0
    assert second.read == 0
    kit = oppkit.connect(db_url, user="ben.okafor@northwind.example")
    assert len(kit.opportunities()) == 4
    assert len(kit.timeline()) == 3


def test_mail_first_then_salesforce_merges_people_and_accounts(
    db_url: str, settings, export: Path, tmp_path: Path
):
    mail = make_email(sender="Juergen.Mueller@acme-robotics.example", to=["ava.patel@northwind.example"],
                      subject="early", body="x", when=datetime(2026, 1, 2, tzinfo=UTC), message_id="e@x")  # fmt: skip
    sync_mail(write_mbox(tmp_path / "m.mbox", [mail]), settings=settings)
    sync_salesforce_export(export, settings=settings)
    kit = oppkit.connect(db_url)
    acme = kit.accounts()[lambda df: df["domain"] == "acme-robotics.example"]
    assert list(acme["name"]) == ["Acme Robotics GmbH"]  # one account, named by Salesforce
    people = kit.people()
    assert (people["email"] == "juergen.mueller@acme-robotics.example").sum() == 1
    assert people.set_index("email").loc["juergen.mueller@acme-robotics.example", "title"] == "CTO"
    assert date.today() is not None
