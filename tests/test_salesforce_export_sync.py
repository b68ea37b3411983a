"""A Salesforce Data Export -> database -> opportunities, pipeline, timeline; plus mail
matched to those opportunities. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd

import oppkit
from oppkit.sync import sync_mail, sync_salesforce_export
from tests.support import TODAY, make_email, write_mbox


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
