"""Mail exports -> database -> timeline, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select

import oppkit
from oppkit.db.engine import connect_engine
from oppkit.db.schema import activities, activity_people, people
from oppkit.sync import sync_mail
from tests.support import FROM_LINE_DATE, make_email, write_mbox

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def conversation() -> list:
    first = make_email(
        sender="=?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <Juergen.Mueller@ACME-Robotics.example>",
        to=["Ava Patel <ava.patel@northwind.example>"],
        cc=["ops@acme-robotics.example", "friend@gmail.com"],
        subject="Pilot scope",
        body="Hi Ava,\n\nCould you send the security questionnaire?\n\nThanks,\nJürgen\n",
        when=T0,
        message_id="m1@acme-robotics.example",
    )
    reply = make_email(
        sender="Ava Patel <ava.patel@northwind.example>",
        to=["juergen.mueller@acme-robotics.example"],
        subject="Re: Pilot scope",
        body=(
            "Sure, I'll send it by Friday.\n\n"
            "On Mon, 2 Mar 2026, Jürgen Müller wrote:\n> Could you send the security questionnaire?\n"
        ),
        when=T0 + timedelta(hours=2),
        message_id="m2@northwind.example",
        in_reply_to="m1@acme-robotics.example",
    )
    internal = make_email(
        sender="ava.patel@northwind.example",
        to=["ben.okafor@northwind.example"],
        subject="Acme pilot",
        body="",
        html="<html><body><p>Heads up: <b>Acme</b> wants the questionnaire.</p>"
        "<blockquote>old thread</blockquote></body></html>",
        when=T0 + timedelta(hours=3),
        message_id="m3@northwind.example",
    )
    return [first, reply, internal]


def test_mbox_lands_as_a_timeline_with_people_and_accounts(db_url: str, settings, tmp_path: Path):
    mbox = write_mbox(tmp_path / "ava.mbox", conversation())
    summary = sync_mail(mbox, settings=settings)
    assert (summary.read, summary.written, summary.skipped, summary.errors) == (3, 3, 0, 0)

    kit = oppkit.connect(db_url)
    tl = kit.timeline()
    assert list(tl["subject"]) == ["Acme pilot", "Re: Pilot scope", "Pilot scope"]  # newest first
    assert str(tl["occurred_at"].dt.tz) == "UTC"
    assert tl["occurred_at"].iloc[-1] == T0
    assert list(tl["direction"]) == ["internal", "outbound", "inbound"]
    by_subject = tl.set_index("subject")
    assert by_subject.loc["Re: Pilot scope", "snippet"] == "Sure, I'll send it by Friday."
    assert by_subject.loc["Acme pilot", "snippet"] == "Heads up: Acme wants the questionnaire."
    assert by_subject.loc["Pilot scope", "account"] == "Acme Robotics"
    assert by_subject.loc["Re: Pilot scope", "thread_id"] == "m1@acme-robotics.example"

    ppl = kit.people().set_index("email")
    assert ppl.loc["juergen.mueller@acme-robotics.example", "name"] == "Jürgen Müller"
    assert ppl.loc["ava.patel@northwind.example", "is_internal"]
    assert not ppl.loc["juergen.mueller@acme-robotics.example", "is_internal"]
    assert pd.isna(ppl.loc["friend@gmail.com", "account"])  # free-mail: no account
    assert pd.isna(ppl.loc["ava.patel@northwind.example", "account"])  # our own domain
    accounts = kit.accounts()
    assert list(accounts["domain"]) == ["acme-robotics.example"]  # no gmail, no own domain

    mine = kit.timeline(person="JUERGEN.MUELLER@acme-robotics.example")
    assert set(mine["subject"]) == {"Pilot scope", "Re: Pilot scope"}
    assert len(kit.timeline(account="acme-robotics.example")) == 2
    assert len(kit.timeline(account="Acme Robotics")) == 2


def test_rerun_and_second_mailbox_never_duplicate(db_url: str, settings, tmp_path: Path):
    messages = conversation()
    write_mbox(tmp_path / "ava.mbox", messages)
    sync_mail(tmp_path / "ava.mbox", settings=settings)
    again = sync_mail(tmp_path / "ava.mbox", settings=settings)
    assert again.read == 0  # unchanged file: nothing to read

    # Ben's mailbox holds the internal mail too, with a bcc Ava's copy could not show
    ben_copy = messages[2]
    ben_copy["Bcc"] = "carol.diaz@northwind.example"
    write_mbox(tmp_path / "ben.mbox", [ben_copy, ben_copy])
    summary = sync_mail(tmp_path / "ben.mbox", settings=settings)
    assert summary.read == 2

    engine = connect_engine(db_url)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(activities)) == 3
        roles = conn.execute(
            select(people.c.email, activity_people.c.role)
            .join(activity_people, activity_people.c.person_id == people.c.id)
            .join(activities, activities.c.id == activity_people.c.activity_id)
            .where(activities.c.source_id == "m3@northwind.example")
        ).all()
    assert set(roles) == {
        ("ava.patel@northwind.example", "from"),
        ("ben.okafor@northwind.example", "to"),
        ("carol.diaz@northwind.example", "bcc"),
    }


def test_message_without_message_id_gets_a_stable_id(db_url: str, settings, tmp_path: Path):
    msg = make_email(
        sender="x@globex.example", to=["ava.patel@northwind.example"], subject="No id",
        body="hello", when=T0, message_id=None,
    )  # fmt: skip
    write_mbox(tmp_path / "a.mbox", [msg])
    write_mbox(tmp_path / "b.mbox", [msg])
    sync_mail(tmp_path / "a.mbox", settings=settings)
    sync_mail(tmp_path / "b.mbox", settings=settings)
    tl = oppkit.connect(db_url).timeline()
    assert len(tl) == 1
    assert tl["source_id"].iloc[0].startswith("sha256:")


def test_bad_messages_are_counted_and_the_rest_ingested(db_url: str, settings, tmp_path: Path):
    good = conversation()[0]
    unknown_charset = (
        b"From: x@globex.example\nTo: ava.patel@northwind.example\nSubject: charset\n"
        b"Date: Mon, 02 Mar 2026 10:00:00 +0000\nMessage-ID: <cs@globex.example>\n"
        b"Content-Type: text/plain; charset=x-no-such-charset\n\nBody with \xe9 inside\n"
    )
    no_date_no_sender = b"Subject: nothing useful\n\njust text\n"  # an email: it has headers
    garbage = b"\x00\x01\x02 not an email at all"
    write_mbox(tmp_path / "m.mbox", [good, unknown_charset, no_date_no_sender, garbage])
    summary = sync_mail(tmp_path / "m.mbox", settings=settings)
    assert summary.written == 3
    assert summary.skipped == 1
    assert summary.errors == 0
    assert "skipped 1" in summary.line()
    tl = oppkit.connect(db_url).timeline().set_index("subject")
    assert tl.loc["charset", "snippet"] == "Body with é inside"  # UTF-8 failed: cp1252
    assert tl.loc["nothing useful", "occurred_at"] == FROM_LINE_DATE  # the mbox's own date


def test_bounces_and_auto_replies_are_flagged(db_url: str, settings, tmp_path: Path):
    auto = make_email(
        sender="juergen.mueller@acme-robotics.example", to=["ava.patel@northwind.example"],
        subject="Automatic reply: Pilot scope", body="I am out of office.", when=T0,
        message_id="auto@acme-robotics.example",
    )  # fmt: skip
    auto["Auto-Submitted"] = "auto-replied"
    write_mbox(tmp_path / "m.mbox", [auto, conversation()[0]])
    sync_mail(tmp_path / "m.mbox", settings=settings)
    tl = oppkit.connect(db_url).timeline().set_index("source_id")
    assert tl.loc["auto@acme-robotics.example", "is_auto"]
    assert tl.loc["auto@acme-robotics.example", "status"] == "auto-reply"
    assert not tl.loc["m1@acme-robotics.example", "is_auto"]


def test_folder_of_eml_files(db_url: str, settings, tmp_path: Path):
    folder = tmp_path / "eml"
    folder.mkdir()
    for i, msg in enumerate(conversation()):
        (folder / f"{i}.eml").write_bytes(msg.as_bytes())
    assert sync_mail(folder, settings=settings).written == 3
    assert sync_mail(folder, settings=settings).read == 0
    assert len(oppkit.connect(db_url).timeline()) == 3


@pytest.mark.parametrize("n", [1200])
def test_appended_mbox_resumes_from_its_checkpoint(sqlite_url: str, tmp_path: Path, n: int):
    settings = oppkit.Settings(database_url=sqlite_url, internal_domains=("northwind.example",))
    msgs = [
        make_email(sender=f"c{i}@globex.example", to=["ava.patel@northwind.example"],
                   subject=f"msg {i}", body=f"body {i}", when=T0 + timedelta(minutes=i),
                   message_id=f"{i}@globex.example")
        for i in range(n)
    ]  # fmt: skip
    path = write_mbox(tmp_path / "grow.mbox", msgs[:1000])
    assert sync_mail(path, settings=settings).read == 1000
    write_mbox(tmp_path / "grow.mbox", msgs)  # the mailbox grew
    assert sync_mail(path, settings=settings).read == 200
    assert len(oppkit.connect(sqlite_url).timeline()) == n


def test_header_encodings_all_decode(db_url: str, settings, tmp_path: Path):
    raw_utf8 = "From: Jürgen <j1@acme.example>\nTo: ava.patel@northwind.example\nSubject: Grüße aus Köln\nDate: Mon, 02 Mar 2026 10:00:00 +0000\nMessage-ID: <u8@x>\n\nHallo\n".encode()
    raw_cp1252 = "From: Zoë <j2@acme.example>\nTo: ava.patel@northwind.example\nSubject: Café\nDate: Mon, 02 Mar 2026 11:00:00 +0000\nMessage-ID: <cp@x>\n\nHallo\n".encode(
        "cp1252"
    )
    rfc2047 = (
        b"From: =?iso-8859-1?q?J=FCrgen?= <j3@acme.example>\n"
        b'To: "=?utf-8?q?M=C3=BCller=2C_Zo=C3=AB?=" <j4@acme.example>\n'
        b"Subject: =?utf-8?b?R3LDvMOfZQ==?= und mehr\nDate: Mon, 02 Mar 2026 12:00:00 +0000\n"
        b"Message-ID: <enc@x>\n\nHallo\n"
    )
    sync_mail(write_mbox(tmp_path / "m.mbox", [raw_utf8, raw_cp1252, rfc2047]), settings=settings)
    kit = oppkit.connect(db_url)
    assert set(kit.timeline()["subject"]) == {"Grüße aus Köln", "Café", "Grüße und mehr"}
    names = kit.people().set_index("email")["name"]
    assert names["j1@acme.example"] == "Jürgen"
    assert names["j2@acme.example"] == "Zoë"
    assert names["j3@acme.example"] == "Jürgen"
    assert names["j4@acme.example"] == "Müller, Zoë"
