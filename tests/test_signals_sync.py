"""Signals found while syncing mail: alerts and tasks on the deal, unanswered questions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import oppkit
from oppkit.sync import sync_mail, sync_salesforce_export
from tests.support import make_email, write_mbox

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def deal(db_url: str, settings, export: Path) -> str:  # noqa: F811
    sync_salesforce_export(export, settings=settings)
    return db_url


def test_requests_commitments_and_risks_become_alerts_on_the_deal(
    deal: str, settings, tmp_path: Path
):
    wednesday = datetime(2026, 3, 4, 10, tzinfo=UTC)
    mails = [
        make_email(sender="juergen.mueller@acme-robotics.example", to=["ava.patel@northwind.example"],
                   subject="questionnaire", body="Hi Ava,\n\nCould you send the security questionnaire?\n\nThanks",
                   when=wednesday, message_id="req@x"),
        make_email(sender="ava.patel@northwind.example", to=["juergen.mueller@acme-robotics.example"],
                   subject="Re: questionnaire", body="I'll send the revised contract by Friday.",
                   when=wednesday + timedelta(hours=1), message_id="com@x", in_reply_to="req@x"),
        make_email(sender="juergen.mueller@acme-robotics.example", to=["ava.patel@northwind.example"],
                   subject="bad news", body="Unfortunately we have a budget freeze until Q3.",
                   when=wednesday + timedelta(hours=2), message_id="risk@x"),
        make_email(sender="juergen.mueller@acme-robotics.example", to=["ava.patel@northwind.example"],
                   subject="Automatic reply", body="Could you send me anything? I am out of office.",
                   when=wednesday + timedelta(hours=3), message_id="auto@x"),
    ]  # fmt: skip
    mails[-1]["Auto-Submitted"] = "auto-replied"
    sync_mail(write_mbox(tmp_path / "m.mbox", mails), settings=settings)
    sync_mail(write_mbox(tmp_path / "m2.mbox", mails), settings=settings)  # a re-run adds nothing

    kit = oppkit.connect(deal)
    found = kit.alerts(opportunity="Acme pilot", status="open")
    kinds = sorted(found["kind"])
    assert kinds == ["commitment", "request", "risk"]
    commitment = found[found["kind"] == "commitment"].iloc[0]
    assert commitment["due_at"].date().isoformat() == "2026-03-06"  # the Friday after
    assert set(found["activity_id"]) <= set(kit.timeline(opportunity="Acme pilot")["id"])
    assert all(found["rule"].str.len() > 0)
    assert kit.opportunities().set_index("name").loc["Acme pilot", "open_alerts"] == 3


def test_unanswered_customer_question_alert_opens_and_closes(deal: str, settings, tmp_path: Path):
    asked = NOW - timedelta(days=5)
    question = make_email(sender="juergen.mueller@acme-robotics.example", to=["ava.patel@northwind.example"],
                          subject="Pricing tiers", body="Which tier includes SSO?", when=asked, message_id="q@x")  # fmt: skip
    fresh = make_email(sender="juergen.mueller@acme-robotics.example", to=["ava.patel@northwind.example"],
                       subject="Another", body="Is the demo still on?", when=NOW - timedelta(hours=2), message_id="q2@x")  # fmt: skip
    statement = make_email(sender="juergen.mueller@acme-robotics.example", to=["ava.patel@northwind.example"],
                           subject="FYI", body="We received the deck.", when=asked, message_id="s@x")  # fmt: skip
    sync_mail(write_mbox(tmp_path / "a.mbox", [question, fresh, statement]), settings=settings)
    kit = oppkit.connect(deal)
    open_ = kit.alerts(status="open")
    unanswered = open_[open_["rule"] == "unanswered.question"]
    assert list(unanswered["text"]) == [
        "Unanswered question: Pricing tiers"
    ]  # not the 2-hour-old one

    reply = make_email(sender="ava.patel@northwind.example", to=["juergen.mueller@acme-robotics.example"],
                       subject="Re: Pricing tiers", body="Enterprise does.", when=NOW - timedelta(hours=1),
                       message_id="r@x", in_reply_to="q@x")  # fmt: skip
    sync_mail(write_mbox(tmp_path / "b.mbox", [reply]), settings=settings)
    alerts = kit.alerts()
    assert alerts.set_index("rule").loc["unanswered.question", "status"] == "done"
