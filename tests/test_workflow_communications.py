"""Communication triggers end to end: a real SMTP server (aiosmtpd) receives the mail a
transition sends after it commits; failures are retried and recorded in the outbox."""

from __future__ import annotations

from pathlib import Path

import pytest

import oppkit
from oppkit.cli import main
from oppkit.workflow import TriggerFailed, register_sender
from oppkit.workflow.communications import unregister_sender
from tests.servers.net import free_port
from tests.servers.smtp import Inbox
from tests.workflow_support import TEST_WORKFLOW, add_person

AVA = "ava.patel@northwind.example"


@pytest.fixture
def smtp(smtp_server: Inbox, monkeypatch: pytest.MonkeyPatch) -> Inbox:
    monkeypatch.setenv("OPPKIT_SMTP_FROM", "crm@northwind.example")
    return smtp_server


@pytest.fixture
def kit(db_url: str, tmp_path: Path) -> oppkit.Kit:
    path = tmp_path / "workflow.toml"
    path.write_text(TEST_WORKFLOW, encoding="utf-8")
    kit = oppkit.connect(db_url)
    add_person(kit.engine, AVA, "Ava Patel", internal=True)
    kit.workflow.load(path)
    return oppkit.connect(db_url, user=AVA)


def propose(kit: oppkit.Kit, deal: int, **kw) -> object:  # noqa: ANN003
    return kit.workflow.transition(
        deal, "Send proposal", amount=12500, close_date="2026-12-31",
        decision_maker="Dr. <Evil> & Sons", **kw,
    )  # fmt: skip


def test_a_transition_mails_the_filled_template_after_commit(kit, smtp):
    deal = kit.workflow.create('Acme <script>alert("x")</script> pilot')
    result = propose(kit, deal)
    assert [m["status"] for m in result.messages] == ["sent"]
    [(rcpt, mail)] = smtp.messages
    assert rcpt == [AVA]
    assert mail["From"] == "crm@northwind.example"
    assert mail["Subject"] == 'Proposal for Acme <script>alert("x")</script> pilot'
    text = mail.get_body(("plain",)).get_content()
    assert "pilot: 12,500  by 2026-12-31, decided by Dr. <Evil> & Sons." in text
    html = mail.get_body(("html",)).get_content()
    assert "<b>Acme &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; pilot</b>" in html
    assert "(Dr. &lt;Evil&gt; &amp; Sons)" in html
    assert "<script>" not in html
    box = kit.workflow.outbox(deal)
    assert box[["channel", "recipient", "status", "attempts"]].values.tolist() == [
        ["email", AVA, "sent", 1]
    ]
    assert box["sent_at"].notna().all() and box["last_error"].isna().all()


def test_a_mail_server_that_is_down_keeps_the_transition_and_records_the_failure(
    kit, db_url, monkeypatch, smtp
):
    monkeypatch.setenv("OPPKIT_SMTP_PORT", str(free_port()))  # nobody listens there
    deal = kit.workflow.create("Initech")
    result = propose(kit, deal)
    assert kit.opportunities()["step"].tolist() == ["Proposal sent"]
    [message] = result.messages
    assert (message["status"], message["attempts"]) == ("failed", 3)
    assert "ConnectionRefusedError" in message["last_error"]
    assert smtp.messages == []

    monkeypatch.setenv("OPPKIT_SMTP_PORT", str(smtp.port))  # the server is back
    assert main(["workflow", "deliver", "--db", db_url]) == 0
    assert len(smtp.messages) == 1
    row = kit.workflow.outbox(deal).iloc[0]
    assert (row["status"], row["attempts"]) == ("sent", 4)


def test_every_message_a_transition_sends_is_an_activity_on_the_deals_timeline(
    kit, db_url, monkeypatch, smtp
):
    monkeypatch.setenv("OPPKIT_SMTP_PORT", str(free_port()))  # the first try fails
    deal = kit.workflow.create("Initech")
    propose(kit, deal)
    [message] = kit.timeline(opportunity=deal).query("kind == 'email'").to_dict("records")
    assert (message["subject"], message["status"], message["direction"]) == (
        "Proposal for Initech", "failed", "internal",  # to the owner, a colleague
    )  # fmt: skip
    monkeypatch.setenv("OPPKIT_SMTP_PORT", str(smtp.port))
    kit.workflow.deliver()
    shown = kit.timeline(opportunity=deal).query("kind == 'email'")
    assert shown["status"].tolist() == ["sent"]  # one message, one row


def test_sms_goes_through_a_registered_sender_with_retries(kit, db_url, tmp_path):
    sent, failures = [], ["timeout", "timeout"]

    @register_sender("sms")
    def gateway(message):  # noqa: ANN001, ANN202
        if failures:
            raise TimeoutError(failures.pop())
        sent.append((message.recipient, message.body))

    text = TEST_WORKFLOW.replace(
        'channel = "email"\nto = "{owner_email}"',
        'channel = "sms"\nto = "{mobile}"',
    )
    path = tmp_path / "sms.toml"
    path.write_text(text, encoding="utf-8")
    try:
        kit.workflow.load(path)
        deal = kit.workflow.create("Hooli", mobile="+4917612345678")
        result = propose(kit, deal)
        no_phone = kit.workflow.create("Pied Piper")
        assert propose(kit, no_phone).messages == []  # an empty recipient sends nothing
    finally:
        unregister_sender("sms")
    assert sent == [
        ("+4917612345678", "Hooli: 12,500  by 2026-12-31, decided by Dr. <Evil> & Sons.\n")
    ]
    assert [(m["status"], m["attempts"]) for m in result.messages] == [("sent", 3)]


def test_nothing_is_queued_or_sent_when_a_trigger_fails(kit, smtp, tmp_path):
    text = TEST_WORKFLOW.replace(
        'requires = ["amount", "close_date", "decision_maker"]',
        'requires = ["amount", "close_date", "decision_maker"]\ntriggers = ["tests_boom"]',
    )
    path = tmp_path / "boom.toml"
    path.write_text(text, encoding="utf-8")
    kit.workflow.load(path)
    deal = kit.workflow.create("Umbrella")
    with pytest.raises(TriggerFailed):
        propose(kit, deal)
    assert smtp.messages == []
    assert kit.workflow.outbox().empty
    assert kit.opportunities()["step"].tolist() == ["New"]
