"""Clean stops: SIGINT and SIGTERM end an agent at any moment within 2 s, with one line,
exit 130 / 143, no traceback, and nothing lost or doubled on the next run.

Each test waits for the moment it needs (a committed checkpoint, a finished run shown on
stdout), never for a fixed time."""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support import Agent, assert_clean, big_mbox, count, wait_for_checkpoint


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_repeating_agent_stops_while_it_waits_for_the_next_run(
    sqlite_url: str, tmp_path: Path, signum: int
):
    mbox = big_mbox(tmp_path / "m.mbox", 3)
    agent = Agent("mail_agent.py", "--mbox", str(mbox), "--every", "1s", "--db", sqlite_url)
    agent.wait_for_line("mail:", n=2)  # two runs done: it repeats
    runs = [line for line in agent.seen if line.startswith("mail:")]
    assert runs[0].startswith("mail: read 3, written 3")
    assert runs[1].startswith("mail: read 0, written 0")  # nothing new: nothing re-read
    assert_clean(*agent.stop(signum), signum)
    assert count(sqlite_url) == 3


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_agent_stopped_while_it_writes_keeps_what_it_committed(
    db_url: str, tmp_path: Path, signum: int
):
    n = 12_000  # seconds of work: the signal arrives mid-sync, after a checkpoint
    mbox = big_mbox(tmp_path / "big.mbox", n)
    agent = Agent("mail_agent.py", "--mbox", str(mbox), "--db", db_url)
    wait_for_checkpoint(db_url, agent.proc)
    assert_clean(*agent.stop(signum), signum)
    kept = count(db_url)
    assert 0 < kept < n
    again = Agent("mail_agent.py", "--mbox", str(mbox), "--db", db_url)
    assert again.proc.wait(timeout=300) == 0
    assert count(db_url) == n  # resumed: nothing lost, nothing doubled


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_agent_stopped_while_it_starts_exits_at_once(sqlite_url: str, tmp_path: Path, signum):
    """The signal lands while Python imports oppkit (or just after): one line, no trace."""
    mbox = big_mbox(tmp_path / "m.mbox", 3)
    agent = Agent("mail_agent.py", "--mbox", str(mbox), "--db", sqlite_url)
    deadline = time.monotonic() + 30
    maps = Path(f"/proc/{agent.proc.pid}/maps")
    while "numpy" not in _text(maps):  # importing oppkit (pandas): after agents/_stops
        assert time.monotonic() < deadline and agent.proc.poll() is None, "never imported"
        time.sleep(0.01)  # polling interval of the wait, not a guess at timing
    assert_clean(*agent.stop(signum), signum)


def test_a_calendar_and_an_export_agent_stop_cleanly_mid_sync(db_url: str, tmp_path: Path):
    ics = tmp_path / "big.ics"
    start = datetime(2026, 3, 2, 9, tzinfo=UTC)
    events = "".join(
        f"BEGIN:VEVENT\r\nUID:ev{i}@test\r\nDTSTART:{(start + timedelta(hours=i)):%Y%m%dT%H%M%SZ}\r\n"
        f"DTEND:{(start + timedelta(hours=i, minutes=30)):%Y%m%dT%H%M%SZ}\r\n"
        f"SUMMARY:meeting {i}\r\nORGANIZER:mailto:ava.patel@northwind.example\r\n"
        f"ATTENDEE:mailto:c{i % 40}@cust{i % 9}.example\r\nEND:VEVENT\r\n"
        for i in range(15_000)
    )
    ics.write_text(f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\n{events}"
                   "END:VCALENDAR\r\n", encoding="utf-8")  # fmt: skip
    agent = Agent("calendar_agent.py", "--ics", str(ics), "--db", db_url)
    wait_for_checkpoint(db_url, agent.proc)
    assert_clean(*agent.stop(signal.SIGTERM), signal.SIGTERM)
    again = Agent("calendar_agent.py", "--ics", str(ics), "--db", db_url)
    assert again.proc.wait(timeout=300) == 0
    assert count(db_url) == 15_000


def _text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_imap_agent_stopped_mid_fetch_resumes_without_loss(
    pg_url: str, tmp_path: Path, signum: int, monkeypatch
):
    """A real dovecot: the signal lands while the agent fetches and writes a mailbox."""
    from tests.servers.dovecot import Dovecot
    from tests.support import customer_emails

    n = 12_000  # the first commit (5,000 rows) comes well before the end, on any machine
    messages = list(customer_emails(n))
    monkeypatch.setenv("OPPKIT_IMAP_PASSWORD", "secret")
    with Dovecot() as server:
        server.deliver("stopper", messages)
        args = ["--imap-host", server.host, "--imap-port", str(server.tls_port),
                "--imap-user", "stopper", "--imap-ca-file", server.ca_path, "--imap-folder", "INBOX",
                "--db", pg_url]  # fmt: skip
        agent = Agent("mail_agent.py", *args)
        wait_for_checkpoint(pg_url, agent.proc)
        assert_clean(*agent.stop(signum), signum)  # still running when the signal came
        assert 0 < count(pg_url) < n  # stopped mid-sync
        again = Agent("mail_agent.py", *args)
        assert again.proc.wait(timeout=300) == 0, again.proc.stderr.read()
    assert count(pg_url) == n
