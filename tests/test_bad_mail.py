"""Bad mail input: every malformed message gives one clear line, the good ones around it
land, work and memory stay bounded, nothing hangs. On SQLite and PostgreSQL."""

from __future__ import annotations

import os
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

import oppkit
from oppkit.db.engine import connect_engine
from oppkit.db.schema import activities, activity_people, alerts, people
from oppkit.sources.mail import iter_mbox, parse_message
from oppkit.sync import sync_mail
from tests.support import (
    FROM_LINE_DATE,
    bad_mail,
    count,
    raw_mail,
    run_cli,
    with_attachment,
    write_mbox,
)

CORPUS = Path(__file__).parent / "data" / "email_corpus"
RECEIVED = "Received: from mx.acme-robotics.example by mx.northwind.example; Mon, 02 Mar 2026 11:00:00 +0000\n"
SMALL = {b.name: b for b in bad_mail(big=3 * 2**20, html=64 * 2**10)}


def _rows(url: str) -> dict[str, dict]:
    """Every activity by subject, with its participants as (email, name, role)."""
    engine = connect_engine(url)
    with engine.connect() as conn:
        rows = {r.id: dict(r._mapping) for r in conn.execute(select(activities))}
        for pid, email, name, role in conn.execute(
            select(activity_people.c.activity_id, people.c.email, people.c.name, activity_people.c.role)
            .join(people, people.c.id == activity_people.c.person_id)
        ):  # fmt: skip
            rows[pid].setdefault("people", set()).add((email, name, role))
    engine.dispose()
    return {r["subject"]: r for r in rows.values()}


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# --- what the probe found ---------------------------------------------------------


def test_a_date_in_year_9999_falls_back_to_received_and_never_blocks_the_mailbox(
    db_url: str, settings, tmp_path: Path
):
    far = raw_mail(2, date="Fri, 31 Dec 9999 23:59:59 -0100", head=RECEIVED)
    mbox = write_mbox(tmp_path / "m.mbox", [raw_mail(1), far, raw_mail(3)])
    summary = sync_mail(mbox, settings=settings)
    assert (summary.written, summary.skipped, summary.errors) == (3, 0, 0)
    assert _utc(_rows(db_url)["message 2"]["occurred_at"]) == datetime(2026, 3, 2, 11, tzinfo=UTC)
    write_mbox(mbox, [raw_mail(1), far, raw_mail(3), raw_mail(4)])  # the next run goes on
    assert sync_mail(mbox, settings=settings).written >= 1
    assert count(db_url) == 4
    # IMAP and Exchange share the parser: their date (INTERNALDATE) is the fallback
    internal = datetime(2026, 2, 1, 8, tzinfo=UTC)
    parsed = parse_message(
        raw_mail(5, date="Fri, 31 Dec 9999 23:59:59 -0100"), "INBOX UID 5", internal
    )
    assert parsed.occurred_at == internal


def test_a_year_written_0001_is_not_read_as_2001(db_url: str, settings, tmp_path: Path):
    old = raw_mail(2, date="Sat, 01 Jan 0001 00:00:00 +0100")
    sync_mail(write_mbox(tmp_path / "m.mbox", [raw_mail(1), old]), settings=settings)
    assert _utc(_rows(db_url)["message 2"]["occurred_at"]) == FROM_LINE_DATE  # not 2000-12-31


def test_an_html_body_of_a_million_open_divs_converts_in_bounded_time(
    sqlite_url: str, tmp_path: Path
):
    html = raw_mail(2, head="Content-Type: text/html; charset=utf-8\n", body="<div>x" * 170_000)
    mbox = write_mbox(tmp_path / "m.mbox", [raw_mail(1), html, raw_mail(3)])
    started = time.perf_counter()
    settings = oppkit.Settings(database_url=sqlite_url, internal_domains=("northwind.example",))
    assert sync_mail(mbox, settings=settings).written == 3
    assert time.perf_counter() - started < 10  # was over 400 s: quadratic in the nesting
    assert _rows(sqlite_url)["message 2"]["snippet"].startswith("x")


def test_a_body_of_30_kb_lines_gives_bounded_text_and_a_few_alerts(
    db_url: str, settings, tmp_path: Path
):
    sync_mail(SMALL["30 MB body of 30 KB lines"].write(tmp_path / "m.mbox"), settings=settings)
    assert count(db_url) == 3
    assert 1 <= count(db_url, alerts) <= 10  # was one alert per sentence: 38,960 for 3 MB
    assert len(_rows(db_url)["message 2"]["snippet"]) <= 400
    line = "Could you send the signed contract by Friday? " * 700 + "\n"
    parsed = parse_message(raw_mail(2, body=line * 20), "m.mbox @ byte 0")
    assert len(parsed.text) <= 2000  # the signal rules read a window, not the body


def test_an_empty_message_id_is_no_message_id(db_url: str, settings, tmp_path: Path):
    one = raw_mail(1, message_id="<>", head="In-Reply-To: <>\n")
    other = raw_mail(2, message_id="<>", head="In-Reply-To: <>\n", body="Something else.\n")
    blank = raw_mail(3, message_id="< >")
    sync_mail(write_mbox(tmp_path / "m.mbox", [one, other, blank]), settings=settings)
    rows = _rows(db_url)
    assert len(rows) == 3  # was merged into one row, source_id '<>'
    assert all(r["source_id"].startswith("sha256:") for r in rows.values())
    assert rows["message 1"]["thread_id"] != rows["message 2"]["thread_id"]


def test_nul_bytes_are_stripped_from_every_field_on_every_backend(
    db_url: str, settings, tmp_path: Path
):
    nul = with_attachment(
        2, "Body\0 text", b"%PDF", name="a\0.pdf", sender="Nul\0 Name <nul@acme-robotics.example>",
        subject="NUL\0 subject",
    )  # fmt: skip
    summary = sync_mail(write_mbox(tmp_path / "m.mbox", [raw_mail(1), nul]), settings=settings)
    assert (summary.written, summary.errors) == (2, 0)  # PostgreSQL lost the row
    row = _rows(db_url)["NUL subject"]
    assert row["snippet"] == "Body text"
    assert row["attachments"][0]["name"] == "a.pdf"
    assert ("nul@acme-robotics.example", "Nul Name", "from") in row["people"]


def test_cr_and_lf_in_header_values_fold_to_spaces(db_url: str, settings, tmp_path: Path):
    sync_mail(SMALL["header injection"].write(tmp_path / "m.mbox"), settings=settings)
    rows = _rows(db_url)
    assert set(rows) >= {"Hello Bcc: evil@attacker.example", "Hi Bcc: evil@attacker.example"}
    everyone = {p for r in rows.values() for p in r["people"]}
    assert not any("attacker" in email for email, _, _ in everyone)  # no Bcc was made up
    assert ("eve@acme-robotics.example", "Eve Evil", "from") in everyone
    for text in [*rows, *(name for _, name, _ in everyone if name)]:
        assert "\r" not in text and "\n" not in text


def test_an_mbox_keeps_a_bounded_start_of_each_message_and_finds_the_next(tmp_path: Path):
    huge = raw_mail(2, body=b"x" * 300_000 + b"\n" + b"y\n" * 100_000)  # a 300 KB line
    mbox = write_mbox(tmp_path / "m.mbox", [raw_mail(1), huge, raw_mail(3)])
    found = list(iter_mbox(mbox, limit=100_000))
    assert [raw.split(b"\n", 3)[2] for *_, raw in found] == [
        b"Subject: message %d" % i for i in (1, 2, 3)
    ]
    assert len(found[1][3]) == 100_000
    assert found[2][0] == found[1][1] and found[2][1] == mbox.stat().st_size
    binary = tmp_path / "b.mbox"
    binary.write_bytes(b"\x00" * 1_000_000)  # no line break at all
    [(offset, end, from_line, raw)] = iter_mbox(binary, limit=100_000)
    assert (offset, end, from_line, len(raw)) == (0, 1_000_000, b"", 100_000)


# --- the CPython email test corpus -------------------------------------------------

CORPUS_LANDS = 42  # of 48 files: msg_19 has no headers; 5 repeat another's Message-ID


def test_cpython_email_corpus_lands_once_and_never_raises(db_url: str, settings, tmp_path: Path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    for i, file in enumerate(sorted(CORPUS.glob("msg_*.txt"))):
        copy = shutil.copyfile(file, folder / f"{file.stem}.eml")
        os.utime(copy, (1_700_000_000 + i, 1_700_000_000 + i))  # the file's time, last fallback
    first = sync_mail(folder, settings=settings)
    assert (first.read, first.skipped, first.errors) == (47, 1, 0), first.line()
    assert first.reasons == {"not an email (no message headers)": 1}
    assert count(db_url) == CORPUS_LANDS
    assert sync_mail(folder, settings=settings).read == 0
    for file in folder.iterdir():  # touched: read again, and nothing is added
        os.utime(file, (1_800_000_000, 1_800_000_000))
    again = sync_mail(folder, settings=settings)
    assert (again.read, again.errors) == (47, 0)
    assert count(db_url) == CORPUS_LANDS


# --- every malformed input ---------------------------------------------------------


@pytest.mark.parametrize("name", list(SMALL))
def test_malformed_input_lands_the_good_messages_around_it(
    name: str, db_url: str, settings, tmp_path: Path
):
    bad = SMALL[name]
    summary = sync_mail(bad.write(tmp_path / "bad.mbox"), settings=settings)
    assert summary.errors == 0
    assert count(db_url) == bad.lands, summary.line()
    assert summary.written + summary.skipped >= bad.lands


def test_the_command_gives_one_line_per_bad_message_and_no_traceback(
    sqlite_url: str, tmp_path: Path
):
    mbox = write_mbox(tmp_path / "m.mbox", [
        raw_mail(1), b"\x00\x01 not an email", raw_mail(3, date="Fri, 31 Dec 9999 23:59:59 -0100"),
        raw_mail(4, head="Content-Type: text/plain; charset=undefined\n"),
    ])  # fmt: skip
    result = run_cli("--db", sqlite_url, "sync", "mail", "--mbox", str(mbox))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    at = write_mbox(tmp_path / "first.mbox", [raw_mail(1)]).stat().st_size
    assert result.stderr.splitlines() == [
        f"WARNING oppkit.sync.runner: skipped m.mbox @ byte {at}: not an email (no message headers)"
    ]
    assert "read 3, written 3, skipped 1, errors 0" in result.stdout
