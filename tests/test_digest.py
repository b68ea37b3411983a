"""Follower digests sent to a real SMTP server (aiosmtpd) from really synced data, on
SQLite and PostgreSQL: one email per follower, what is in it, escaping, once per period,
daily and weekly windows, privacy, SMTP failures."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import insert, select

import oppkit
from oppkit.cli import main
from oppkit.db.engine import connect_engine
from oppkit.db.schema import digest_log, opportunities, opportunity_people, people
from oppkit.digest import build_digests, period_for
from oppkit.sources.records import ActivityRecord, OpportunityChangeRecord, Participant
from oppkit.sync import SyncRunner, sync_mail, sync_salesforce_export
from tests.servers.net import free_port
from tests.servers.smtp import Inbox
from tests.support import make_email, write_mbox

REPO = Path(__file__).resolve().parents[1]
AVA, BEN = "ava.patel@northwind.example", "ben.okafor@northwind.example"
CAROL, DAN = "carol.diaz@northwind.example", "dan.ito@northwind.example"
JUERGEN, HANK = "juergen.mueller@acme-robotics.example", "hank@globex.example"
MAR3 = datetime(2026, 3, 3, 10, tzinfo=UTC)
MAR5 = datetime(2026, 3, 5, 10, tzinfo=UTC)
DAILY_NOW = "2026-03-04T07:00:00Z"  # the digest for 2026-03-03
WEEKLY_NOW = "2026-03-09T07:00:00Z"  # the digest for Monday 2 March to Monday 9 March
EVIL = "<script>alert(1)</script>"


@pytest.fixture
def smtp(smtp_server: Inbox, monkeypatch: pytest.MonkeyPatch) -> Inbox:
    monkeypatch.setenv("OPPKIT_SMTP_FROM", "oppkit <digest@northwind.example>")
    return smtp_server


@pytest.fixture
def deals(db_url: str, settings, export: Path, tmp_path: Path) -> str:  # noqa: F811
    """The Salesforce export, a week of mail, a stage move and a private call; followers."""
    sync_salesforce_export(export, settings=settings)
    mails = [
        make_email(sender=f"Jürgen Müller <{JUERGEN}>", to=[AVA], subject=f"Questionnaire {EVIL}",
                   body="Hi Ava,\n\nCould you send the security questionnaire?\n\nThanks",
                   when=MAR3, message_id="q1@acme"),
        make_email(sender=AVA, to=[JUERGEN], subject="Re: Questionnaire", body="Attached.",
                   when=MAR5, message_id="q2@nw", in_reply_to="q1@acme"),
        make_email(sender=BEN, to=[HANK], subject="Expansion pricing", body="Numbers attached.",
                   when=MAR3 + timedelta(hours=2), message_id="x1@nw"),
        make_email(sender=AVA, to=[JUERGEN], subject="Old news", body="From February.",
                   when=MAR3 - timedelta(days=5), message_id="old@nw"),
    ]  # fmt: skip
    sync_mail(write_mbox(tmp_path / "week.mbox", mails), settings=settings)
    moved = OpportunityChangeRecord(
        source="salesforce", source_id="008000000000009AAA", opportunity_ref="006000000000001AAA",
        field="stage", old_value="Proposal/Price Quote", new_value="Negotiation <Review>",
        changed_at=MAR3 + timedelta(hours=5), changed_by_ref="005000000000001AAA",
    )  # fmt: skip
    secret = ActivityRecord(
        source="salesforce", source_id="00T00000000000SAAA", kind="call",
        subject="secret terms", occurred_at=MAR3 + timedelta(hours=1),
        opportunity_ref="006000000000004AAA", owner_ref="005000000000002AAA",
        participants=[Participant(HANK, "Hank Globex", "who")],
    )  # fmt: skip
    SyncRunner(connect_engine(db_url), settings, agent="test").run([moved, secret])

    kit = oppkit.connect(db_url, user=BEN)
    kit.follow("Acme pilot", BEN)  # daily
    kit.follow("Globex secret", BEN)  # his own private deal
    kit.follow("Acme pilot", CAROL, frequency="weekly")
    kit.follow("Globex expansion", CAROL, frequency="weekly")
    kit.follow("Globex expansion", AVA, frequency="daily")
    kit.follow("Globex analytics", DAN)  # nothing happens there
    # a follower row on the private deal for Ava (say her membership was revoked since)
    engine = connect_engine(db_url)
    with engine.begin() as conn:
        opp = conn.scalar(select(opportunities.c.id).where(opportunities.c.name == "Globex secret"))
        ava = conn.scalar(select(people.c.id).where(people.c.email == AVA))
        conn.execute(
            insert(opportunity_people).values(
                opportunity_id=opp,
                person_id=ava,
                kind="follower",
                digest_frequency="daily",
                source="local",
                source_id="stale",
            )  # fmt: skip
        )
    return db_url


def digest(db_url: str, *args: str) -> int:
    return main(["digest", "--db", db_url, *args])


def parts(msg: EmailMessage) -> tuple[str, str]:
    assert msg.get_content_type() == "multipart/alternative"
    return (
        msg.get_body(("plain",)).get_content(),
        msg.get_body(("html",)).get_content(),
    )


def test_daily_digest_one_email_per_follower_with_what_moved(deals: str, smtp: Inbox, capsys):
    assert digest(deals, "--frequency", "daily", "--now", DAILY_NOW) == 0
    out = capsys.readouterr().out
    assert out.strip() == "digest daily 2026-03-03: sent 2, already sent 0, nothing new for 1"
    assert sorted(r[0] for r, _ in smtp.received) == [AVA, BEN]  # Dan: nothing, Carol: weekly

    (ben,) = smtp.to(BEN)
    n_alerts = len(oppkit.connect(deals, user=BEN).alerts(opportunity="Acme pilot"))
    updates = 3 + n_alerts  # the mail, the stage move, the secret call, the alerts
    assert ben["Subject"] == f"oppkit daily digest 2026-03-03: {updates} updates on 2 opportunities"
    assert ben["From"] == "oppkit <digest@northwind.example>"
    text, page = parts(ben)
    assert f"Questionnaire {EVIL}" in text  # new activity, plain text as written
    assert "Stage: Proposal/Price Quote → Negotiation <Review>" in text  # stage move
    alerts = oppkit.connect(deals, user=BEN).alerts(opportunity="Acme pilot")
    assert len(alerts) >= 1  # the question became an alert while syncing
    for alert_text in alerts["text"]:
        assert alert_text in text
    assert "New alerts:" in text
    assert "secret terms" in text  # Ben owns the private deal
    assert "Old news" not in text and "Re: Questionnaire" not in text  # other days
    # HTML: every string from mail/Salesforce escaped
    assert "<script" not in page.lower()
    assert "Questionnaire &lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Negotiation &lt;Review&gt;" in page

    (ava,) = smtp.to(AVA)
    text, _ = parts(ava)
    assert "Expansion pricing" in text
    assert "secret terms" not in text and "Globex secret" not in text  # not hers to see

    # a re-run of the same period sends nothing new
    assert digest(deals, "--frequency", "daily", "--now", "2026-03-04T18:00:00Z") == 0
    assert "sent 0, already sent 2" in capsys.readouterr().out
    assert len(smtp.received) == 2


def test_weekly_and_daily_windows_and_catching_up(deals: str, smtp: Inbox):
    assert digest(deals, "--frequency", "weekly", "--now", WEEKLY_NOW) == 0
    (carol,) = smtp.to(CAROL)
    assert "2026-W10" in carol["Subject"]
    text, _ = parts(carol)
    for subject in ("Questionnaire", "Re: Questionnaire", "Expansion pricing", "Negotiation"):
        assert subject in text
    assert "Old news" not in text  # before Monday 2 March
    assert len(smtp.received) == 1  # the weekly run mails weekly followers only

    # daily for 5 March: only what happened that day
    assert digest(deals, "--frequency", "daily", "--now", "2026-03-06T06:00:00Z") == 0
    (ben,) = smtp.to(BEN)
    text, _ = parts(ben)
    assert "Re: Questionnaire" in text and "Expansion pricing" not in text
    assert "Questionnaire <script>" not in text

    # Ben's digest of 3 March was sent; then the agent was down until 8 March: the next
    # digest covers everything since the last one, not just the 7th
    engine = connect_engine(deals)
    smtp.received.clear()
    with engine.begin() as conn:
        conn.execute(digest_log.delete())
    assert digest(deals, "--frequency", "daily", "--now", DAILY_NOW) == 0
    smtp.received.clear()
    assert digest(deals, "--frequency", "daily", "--now", "2026-03-08T06:00:00Z") == 0
    (ben,) = smtp.to(BEN)
    text, _ = parts(ben)
    assert "2026-03-04 00:00 – 2026-03-08 00:00 UTC" in text
    assert "Re: Questionnaire" in text and "Negotiation" not in text


def test_smtp_down_fails_with_one_line_and_the_digest_goes_out_later(
    deals: str, smtp: Inbox, monkeypatch: pytest.MonkeyPatch, capsys
):
    port = os.environ["OPPKIT_SMTP_PORT"]
    monkeypatch.setenv("OPPKIT_SMTP_PORT", str(free_port()))  # nobody listens there
    assert digest(deals, "--frequency", "daily", "--now", DAILY_NOW) == 1
    err = capsys.readouterr().err
    assert err.startswith("oppkit: error: SMTP server 127.0.0.1:") and err.count("\n") == 1
    assert "Traceback" not in err
    engine = connect_engine(deals)
    with engine.connect() as conn:
        rows = conn.execute(select(digest_log.c.status, digest_log.c.last_error)).all()
    assert [status for status, _ in rows] == ["pending"]  # recorded, not lost, not sent
    assert "SMTP server" in rows[0][1]

    monkeypatch.setenv("OPPKIT_SMTP_PORT", port)
    assert digest(deals, "--frequency", "daily", "--now", DAILY_NOW) == 0
    assert sorted(r[0] for r, _ in smtp.received) == [AVA, BEN]
    assert digest(deals, "--frequency", "daily", "--now", DAILY_NOW) == 0
    assert len(smtp.received) == 2
    with engine.connect() as conn:
        assert set(conn.scalars(select(digest_log.c.status))) == {"sent"}


def test_a_run_that_died_mid_send_is_taken_over_once_its_claim_is_stale(deals: str, smtp: Inbox):
    messages = {m.to: m for m in build_digests(connect_engine(deals), "daily", DAILY_NOW)}
    assert set(messages) == {AVA, BEN}
    engine = connect_engine(deals)
    period = period_for("daily", datetime(2026, 3, 4, 7, tzinfo=UTC))
    fresh = datetime.now(UTC)
    with engine.begin() as conn:
        for who, claimed in ((AVA, fresh), (BEN, fresh - timedelta(hours=1))):
            m = messages[who]
            conn.execute(
                insert(digest_log).values(
                    person_id=m.person_id,
                    frequency="daily",
                    period=period.key,
                    status="sending",
                    window_start=period.start,
                    window_end=period.end,
                    message_id=m.message_id,
                    attempts=1,
                    claimed_at=claimed,
                )  # fmt: skip
            )
    assert digest(deals, "--frequency", "daily", "--now", DAILY_NOW) == 0
    # Ava's is being sent by a live run right now: left alone; Ben's run died: sent now
    assert [r for r, _ in smtp.received] == [[BEN]]
    (ben,) = smtp.to(BEN)
    assert ben["Message-ID"] == messages[BEN].message_id  # stable across attempts


def test_dry_run_shows_and_sends_nothing(deals: str, smtp: Inbox, capsys):
    assert digest(deals, "--frequency", "daily", "--now", DAILY_NOW, "--dry-run") == 0
    out = capsys.readouterr().out
    assert f"to {BEN}: oppkit daily digest 2026-03-03" in out
    assert "would send 2" in out
    assert smtp.received == []
    with connect_engine(deals).connect() as conn:
        assert conn.execute(select(digest_log)).all() == []


def test_follow_rules_and_unfollow(deals: str, smtp: Inbox):
    kit = oppkit.connect(deals, user=AVA)
    with pytest.raises(PermissionError, match="private"):
        oppkit.connect(deals, user=BEN).follow("Globex secret", CAROL)
    with pytest.raises(oppkit.NotFoundError):
        kit.follow("Globex secret", AVA)  # Ava cannot even see it
    with pytest.raises(ValueError, match="daily or weekly"):
        kit.follow("Acme pilot", AVA, frequency="hourly")
    members = kit.people(opportunity="Acme pilot")
    followers = set(members[members["membership"] == "follower"]["email"])
    assert followers == {BEN, CAROL}

    oppkit.connect(deals, user=BEN).unfollow("Acme pilot", BEN)
    oppkit.connect(deals, user=BEN).unfollow("Globex secret", BEN)
    assert digest(deals, "--frequency", "daily", "--now", DAILY_NOW) == 0
    assert sorted(r[0] for r, _ in smtp.received) == [AVA]

    kit.follow("Acme pilot", BEN, frequency="weekly")  # again, weekly this time
    weekly = build_digests(kit, "weekly", WEEKLY_NOW)
    assert sorted(m.to for m in weekly) == [BEN, CAROL]


def test_bad_arguments_and_missing_smtp_settings_exit_2(
    deals: str, monkeypatch: pytest.MonkeyPatch, capsys
):
    with pytest.raises(SystemExit) as bad:
        main(["digest", "--frequency", "hourly", "--db", deals])
    assert bad.value.code == 2
    with pytest.raises(SystemExit) as bad_time:
        main(["digest", "--frequency", "daily", "--now", "yesterday", "--db", deals])
    assert bad_time.value.code == 2
    capsys.readouterr()
    monkeypatch.delenv("OPPKIT_SMTP_HOST", raising=False)
    assert digest(deals, "--frequency", "daily", "--now", DAILY_NOW) == 2
    assert capsys.readouterr().err.strip() == (
        "oppkit: error: sending digests needs OPPKIT_SMTP_HOST and OPPKIT_SMTP_FROM"
    )


def test_digest_agent_once(deals: str, smtp: Inbox):
    result = subprocess.run(
        [sys.executable, str(REPO / "agents" / "digest_agent.py"), "--frequency", "weekly",
         "--now", WEEKLY_NOW, "--once", "--db", deals],
        capture_output=True, text=True, timeout=120, env={**os.environ},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout.strip() == "digest weekly 2026-W10: sent 1, already sent 0, nothing new for 0"
    )
    assert [r for r, _ in smtp.received] == [[CAROL]]


def test_smtp_settings_from_oppkit_toml_and_the_password_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from oppkit.config import load_settings
    from oppkit.digest import SmtpSettings

    for name in ("HOST", "PORT", "FROM", "USER", "STARTTLS"):
        monkeypatch.delenv(f"OPPKIT_SMTP_{name}", raising=False)
    toml = tmp_path / "oppkit.toml"
    toml.write_text(
        '[smtp]\nhost = "mail.northwind.example"\nfrom = "digest@northwind.example"\n'
        'user = "digest"\nstarttls = true\npassword = "never read from here"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("OPPKIT_CONFIG", str(toml))
    monkeypatch.setenv("OPPKIT_SMTP_PASSWORD", "from-env")
    smtp = SmtpSettings.from_settings(load_settings())
    assert smtp == SmtpSettings(
        host="mail.northwind.example", port=587, sender="digest@northwind.example",
        user="digest", password="from-env", starttls=True,
    )  # fmt: skip
    monkeypatch.setenv("OPPKIT_SMTP_PORT", "2525")
    monkeypatch.delenv("OPPKIT_SMTP_PASSWORD")
    smtp = SmtpSettings.from_settings(load_settings())
    assert (smtp.port, smtp.password) == (2525, None)


def test_starttls_and_login_with_the_password_from_the_environment(
    deals: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import ssl

    import trustme
    from aiosmtpd.smtp import AuthResult

    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:  # noqa: ANN001
        logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"s3cret", handled=False)

    inbox = Inbox()
    controller = Controller(
        inbox, hostname="127.0.0.1", port=free_port(), tls_context=server_context,
        require_starttls=True, authenticator=authenticator, auth_required=True,
    )  # fmt: skip
    controller.start()
    try:
        monkeypatch.setenv("OPPKIT_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("OPPKIT_SMTP_PORT", str(controller.port))
        monkeypatch.setenv("OPPKIT_SMTP_FROM", "digest@northwind.example")
        monkeypatch.setenv("OPPKIT_SMTP_STARTTLS", "1")
        monkeypatch.setenv("OPPKIT_SMTP_CA_FILE", str(tmp_path / "ca.pem"))
        monkeypatch.setenv("OPPKIT_SMTP_PASSWORD", "wrong")
        assert digest(deals, "--frequency", "daily", "--now", DAILY_NOW) == 1  # refused login
        assert inbox.received == []
        monkeypatch.setenv("OPPKIT_SMTP_PASSWORD", "s3cret")
        assert digest(deals, "--frequency", "daily", "--now", DAILY_NOW) == 0
        assert sorted(r[0] for r, _ in inbox.received) == [AVA, BEN]
        assert logins[-1] == (b"digest@northwind.example", b"s3cret")
    finally:
        controller.stop()
