"""Plain helpers the tests share (fixtures live in conftest.py): mail to sync (good and
malformed), a small Salesforce export, counting rows, running the command, running an
agent and stopping it, a JupyterLab on a notebook for the browser tests."""

from __future__ import annotations

import base64
import contextlib
import csv
import functools
import os
import queue
import random
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

from sqlalchemy import create_engine, func, select

from oppkit.db.schema import activities, sync_state

REPO = Path(__file__).resolve().parents[1]
TODAY = datetime.now(UTC).date()
INTERNAL = ("northwind.example",)  # the company's own domains in every test
AVA = "ava.patel@northwind.example"  # an account executive at the company


def make_email(
    *,
    sender: str,
    to: list[str],
    subject: str,
    body: str,
    when,  # noqa: ANN001
    message_id: str | None,
    cc: list[str] | None = None,
    in_reply_to: str | None = None,
    html: str | None = None,
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(when)
    if message_id:
        msg["Message-ID"] = f"<{message_id}>"
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
        msg["References"] = f"<{in_reply_to}>"
    if html and not body:
        msg.set_content(html, subtype="html")
    else:
        msg.set_content(body)
        if html:
            msg.add_alternative(html, subtype="html")
    return msg


FROM_LINE_DATE = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)  # of every message write_mbox writes


def write_mbox(path: Path, messages: list[EmailMessage | bytes]) -> Path:
    """Write messages as an mboxrd file (From_ lines, >From escaping)."""
    with path.open("wb") as fh:
        for msg in messages:
            raw = msg if isinstance(msg, bytes) else msg.as_bytes()
            fh.write(f"From sender@example.com {FROM_LINE_DATE:%a %b %e %H:%M:%S %Y}\n".encode())
            for line in raw.replace(b"\r\n", b"\n").split(b"\n"):
                if line.lstrip(b">").startswith(b"From "):
                    line = b">" + line
                fh.write(line + b"\n")
            fh.write(b"\n")
    return path


def write_csv(path: Path, header: str, rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, quoting=csv.QUOTE_ALL)
        writer.writerow(header.split(","))
        writer.writerows(rows)


def write_salesforce_export(d: Path) -> Path:
    """A small Salesforce Data Export in folder ``d``: two accounts, four deals (one
    private), contacts, roles, history, tasks and an event."""
    d.mkdir(parents=True, exist_ok=True)
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


def small_org(now: datetime):  # noqa: ANN201
    """A fake Salesforce org (tests/fakes/salesforce.py) at ``now``: Ava Patel, Acme
    Robotics and Ava's "Acme pilot" (Needs Analysis, 100,000, closing 2027-03-31);
    ``org.ids`` holds their Ids (ava, acme, pilot)."""
    from tests.fakes.salesforce import FakeOrg

    org = FakeOrg(now=now)
    ava = org.add("User", FirstName="Ava", LastName="Patel", Email=AVA, Username="ava")
    acme = org.add("Account", Name="Acme Robotics", Website="acme-robotics.example", OwnerId=ava)
    pilot = org.add(
        "Opportunity", Name="Acme pilot", AccountId=acme, OwnerId=ava,
        StageName="Needs Analysis", Amount=100000, CloseDate=date(2027, 3, 31),
    )  # fmt: skip
    org.ids = {"ava": ava, "acme": acme, "pilot": pilot}  # type: ignore[attr-defined]
    return org


def sync_fake_salesforce(db_url: str, settings, fake):  # noqa: ANN001, ANN201
    """Sync the wire-level fake org (conftest's ``fake``) with the real Salesforce client;
    the run's summary (its agent pushes pending changes first, as in production)."""
    from oppkit.sources.salesforce_client import SalesforceSettings
    from oppkit.sync import sync_salesforce

    login = SalesforceSettings(instance_url=fake.url, session_id=fake.session_id,
                               ca_bundle=fake.ca_path)  # fmt: skip
    return sync_salesforce(db_url, settings, salesforce=login)


def count(url: str, table=activities) -> int:  # noqa: ANN001
    """Rows in ``table`` (default: the timeline) of the database at ``url``."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        n = conn.scalar(select(func.count()).select_from(table))
    engine.dispose()
    return n


def wait_for_checkpoint(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Wait (with a deadline) until a sync in ``proc`` has committed its first checkpoint."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and proc.poll() is None:
            try:
                with engine.connect() as conn:
                    if conn.scalar(select(func.count()).select_from(sync_state)):
                        return
            except Exception:  # the schema may not exist yet
                pass
            time.sleep(0.05)
    finally:
        engine.dispose()
    raise AssertionError("the sync never committed a checkpoint")


def big_mbox(path: Path, n: int) -> Path:
    """An mbox of ``n`` customer emails (50 senders at 7 customers), a minute apart."""
    return write_mbox(path, list(customer_emails(n)))


@functools.lru_cache(maxsize=2)
def customer_emails(n: int) -> tuple[bytes, ...]:
    """``n`` customer emails as bytes (the same every call: built once per process, as
    12,000 of them take the email package about 20 s)."""
    t0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    return tuple(
        make_email(sender=f"c{i % 50}@cust{i % 7}.example", to=["ava.patel@northwind.example"],
                   subject=f"message {i}", body=f"body {i}\n" * 20, when=t0 + timedelta(minutes=i),
                   message_id=f"{i}@cust.example").as_bytes()
        for i in range(n)
    )  # fmt: skip


def stop_process(proc: subprocess.Popen, signum: int, timeout: float = 30) -> tuple[int, float]:
    """Send ``signum`` and wait (with a deadline) for the exit: (exit code, seconds it took)."""
    sent = time.monotonic()
    proc.send_signal(signum)
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"the process did not exit within {timeout} s of the signal") from None
    return code, time.monotonic() - sent


EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}  # a stopped command's exit code
STOP_WITHIN = 2.0  # seconds from the signal to the exit


class Agent:
    """An agent script in a subprocess, its output read line by line as it comes.

    ``env`` is added to the environment (the test's own, so OPPKIT_* of conftest).
    """

    def __init__(self, script: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "agents" / script), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            self.lines.put(line.rstrip("\n"))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_for_line(self, prefix: str, n: int = 1, timeout: float = 120) -> None:
        """Wait (with a deadline) until ``n`` lines starting with ``prefix`` were printed."""
        deadline = time.monotonic() + timeout
        while sum(line.startswith(prefix) for line in self.seen) < n:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None and self.lines.empty():
                raise AssertionError(f"no {n} lines {prefix!r}: {self.seen}")
            try:
                self.seen.append(self.lines.get(timeout=min(left, 0.5)))
            except queue.Empty:
                continue

    def stop(self, signum: int) -> tuple[int, float, str]:
        """Send ``signum``; (exit code, seconds to exit, stderr)."""
        code, took = stop_process(self.proc, signum)
        return code, took, self.proc.stderr.read()  # type: ignore[union-attr]

    def finish(self, timeout: float = 300) -> tuple[int, str]:
        """Wait (with a deadline) for the agent to end by itself: (exit code, stderr);
        ``seen`` then holds every line it printed."""
        code = self.proc.wait(timeout=timeout)
        err = self.proc.stderr.read()  # type: ignore[union-attr]
        self._reader.join(timeout=10)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return code, err


def assert_clean(code: int, took: float, err: str, signum: int) -> None:
    """A clean stop: 130 / 143, within STOP_WITHIN seconds, one line, no traceback."""
    assert code == EXIT[signum], err
    assert took < STOP_WITHIN, f"took {took:.2f}s to stop"
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("oppkit: "), err


def engine_at(url: str, revision: str):  # noqa: ANN201
    """An engine on ``url`` with the schema migrated up to ``revision`` only (not the head)."""
    from alembic import command

    from oppkit.db.engine import alembic_config, create_oppkit_engine, write_transaction

    engine = create_oppkit_engine(url)
    with write_transaction(engine) as conn:
        config = alembic_config(engine)
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
    return engine


def run_cli(*args: str, env: dict | None = None, **kw) -> subprocess.CompletedProcess:  # noqa: ANN003
    """``oppkit ARGS`` in a subprocess, as a user runs it (output captured as text)."""
    return subprocess.run(
        [sys.executable, "-m", "oppkit.cli", *args],
        capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=300, **kw,
    )  # fmt: skip


# --- malformed mail ---------------------------------------------------------------

RAW_DATE = "Mon, 02 Mar 2026 10:00:00 +0000"


def raw_mail(
    n: int,
    *,
    head: str | bytes = b"",
    body: str | bytes = "Hello Ava,\n\nthanks for the call today.\n",
    sender: str | None = "Buyer <buyer@acme-robotics.example>",
    date: str | None = RAW_DATE,
    subject: str | None = None,
    message_id: str | None = "",
) -> bytes:
    """One message as bytes, built by hand so that it may break every rule.

    ``head`` is added to the header lines as it is; None leaves From or Date out;
    ``message_id`` is the header's whole value ('' gives ``<raw-N@acme-robotics.example>``).
    """
    lines = [f"From: {sender}"] if sender is not None else []
    lines.append("To: Ava Patel <ava.patel@northwind.example>")
    lines.append(f"Subject: {f'message {n}' if subject is None else subject}")
    if date is not None:
        lines.append(f"Date: {date}")
    if message_id is not None:
        lines.append(f"Message-ID: {message_id or f'<raw-{n}@acme-robotics.example>'}")
    head = head.encode() if isinstance(head, str) else head
    body = body.encode() if isinstance(body, str) else body
    return "\n".join(lines).encode() + b"\n" + head + b"\n" + body


def with_attachment(n: int, text: str, data: bytes, name: str = "scan.pdf", **kw) -> bytes:  # noqa: ANN003
    """A multipart/mixed message: a text part and one base64 attachment."""
    head = 'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b1"\n'
    body = (
        (
            f"--b1\nContent-Type: text/plain; charset=utf-8\n\n{text}\n--b1\n"
            f"Content-Type: application/pdf\nContent-Transfer-Encoding: base64\n"
            f'Content-Disposition: attachment; filename="{name}"\n\n'
        ).encode()
        + base64.encodebytes(data)
        + b"--b1--\n"
    )
    return raw_mail(n, head=head, body=body, **kw)


def nested_multipart(n: int, depth: int) -> bytes:
    """A message whose text sits ``depth`` multiparts deep."""
    inner = b"".join(
        b'Content-Type: multipart/mixed; boundary="d%d"\n\n--d%d\n' % (i, i)
        for i in range(1, depth)
    )
    closed = b"".join(b"\n--d%d--\n" % i for i in reversed(range(depth)))
    text = b"Content-Type: text/plain\n\nThe text at the bottom.\n"
    head = b'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="d0"\n'
    return raw_mail(n, head=head, body=b"--d0\n" + inner + text + closed)


@dataclass(frozen=True)
class BadMail:
    """One malformed mail input: an mbox whose bad messages sit between good ones."""

    name: str
    messages: Callable[[], list[bytes]]  # built when written, not before
    lands: int  # activities in a fresh database after one sync
    cut: int = 0  # bytes cut off the end of the mbox: a truncated file
    bare: bool = False  # the one message is the whole file, without a From_ line

    def write(self, path: Path) -> Path:
        messages = self.messages()
        if self.bare:
            path.write_bytes(b"".join(messages))
        else:
            write_mbox(path, messages)
        if self.cut:
            os.truncate(path, path.stat().st_size - self.cut)
        return path


def _html_body(n: int, size: int) -> bytes:
    return raw_mail(n, head="Content-Type: text/html; charset=utf-8\n", body="<div>x" * (size // 6))


def _long_lines(n: int, size: int) -> bytes:
    line = ("Could you send the signed contract by Friday? " * 700)[:30_000] + "\n"
    return raw_mail(n, body=line * max(1, size // len(line)))


def bad_mail(big: int = 30 * 2**20, html: int = 2**20) -> list[BadMail]:
    """The malformed mail inputs of the "bad input" issue, each between good messages.

    ``big`` is the size of the 30 MB message and of the 30 MB body of 30 KB lines;
    ``html`` that of the ``<div>x`` body.
    """
    good = raw_mail  # message n, as it should be
    received = "Received: from mx.acme-robotics.example by mx.northwind.example; Mon, 02 Mar 2026 11:00:00 +0000\n"
    plain = "Content-Type: text/plain; charset={}\n"
    cafe = b"Caf\xe9 at 10?\n"  # latin-1
    return [
        BadMail("truncated mbox", lambda: [good(1), good(2), good(3, body="Could you send the deck?\n" * 200)], 3, cut=1000),
        BadMail("binary message in an mbox", lambda: [good(1), random.Random(7).randbytes(1 << 16), good(3)], 2),
        BadMail("binary file, no mbox at all", lambda: [random.Random(8).randbytes(1 << 20)], 0, bare=True),
        BadMail("one 30 MB message", lambda: [good(1), with_attachment(2, "The scan.", random.Random(9).randbytes(big * 3 // 4)), good(3)], 3),
        BadMail("no From header", lambda: [good(1), good(2, sender=None), good(3)], 3),
        BadMail("no Date header (Received)", lambda: [good(1), good(2, date=None, head=received), good(3)], 3),
        BadMail("no From, Date or Received", lambda: [good(1), good(2, sender=None, date=None), good(3)], 3),
        BadMail("unknown charset", lambda: [good(1), good(2, head=plain.format("x-no-such-charset"), body=cafe), good(3)], 3),
        BadMail("lying charsets", lambda: [
            good(1),
            good(2, head=plain.format("utf-8"), body=cafe),
            good(3, head=plain.format("undefined"), body=cafe),
            good(4, head=plain.format("utf-7"), body=b"Lone +2AA- surrogate\n"),
            good(5, head=plain.format("unicode_escape"), body=b"Lone \\udc80 surrogate\n"),
            good(6),
        ], 6),
        BadMail("NUL bytes", lambda: [good(1), with_attachment(2, "Body\0 text", b"%PDF", name="a\0.pdf", sender="Nul\0 Name <nul@acme-robotics.example>", subject="NUL\0 subject"), good(3)], 3),
        BadMail("header injection", lambda: [
            good(1),
            good(2, subject="Hello\rBcc: evil@attacker.example"),
            good(3, subject="=?utf-8?q?Hi=0D=0ABcc:_evil@attacker.example?=", sender="=?utf-8?q?Eve=0D=0AEvil?= <eve@acme-robotics.example>"),
            good(4),
        ], 4),
        BadMail("date in year 1", lambda: [good(1), good(2, date="Sat, 01 Jan 0001 00:00:00 +0100"), good(3)], 3),
        BadMail("date in year 9999", lambda: [good(1), good(2, date="Fri, 31 Dec 9999 23:59:59 -0100", head=received), good(3)], 3),
        BadMail("multipart nested 200 deep", lambda: [good(1), nested_multipart(2, 200), good(3)], 3),
        BadMail("multipart nested 5,000 deep", lambda: [good(1), nested_multipart(2, 5000), good(3)], 3),
        BadMail("1 MB html of <div>x", lambda: [good(1), _html_body(2, html), good(3)], 3),
        BadMail("30 MB body of 30 KB lines", lambda: [good(1), _long_lines(2, big), good(3)], 3),
        BadMail("empty Message-ID", lambda: [good(1), good(2, message_id="<>"), good(3, message_id="<>", body="Another text.\n"), good(4)], 4),
    ]  # fmt: skip


CHROMIUM_PATH = Path("/usr/bin/chromium")  # Debian's, driven by Playwright (never downloaded)
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage",
]  # fmt: skip


def wait_until_serving(
    url: str, proc: subprocess.Popen, log_path: Path, what: str, timeout: float = 180
) -> None:
    """Wait (with a deadline) until ``url`` answers at all (any HTTP status: a 403 for a
    missing token is a server that is up); fail with ``log_path`` if ``proc`` died."""
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, log_path.read_text()
        try:
            with urllib.request.urlopen(url, timeout=3):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            assert time.monotonic() < deadline, f"{what} did not start in {timeout:.0f} s"
            time.sleep(0.3)


@contextlib.contextmanager
def lab_server(folder: Path, env_extra: dict[str, str]) -> Iterator[tuple[str, str]]:
    """A JupyterLab serving ``folder`` (own config, runtime, data and settings dirs beside
    it, a free port; every cell rendered: no windowing; no news pop-up), its kernels with
    ``env_extra``; yields (base url, token) and stops it afterwards."""
    from tests.servers.net import free_port

    home = folder.parent / f"{folder.name}-jupyter"
    for plugin, name, value in (
        ("notebook-extension", "tracker", '{"windowingMode": "none"}'),
        ("apputils-extension", "notification", '{"fetchNews": "false"}'),
    ):
        where = home / "settings" / "@jupyterlab" / plugin
        where.mkdir(parents=True, exist_ok=True)
        (where / f"{name}.jupyterlab-settings").write_text(value)
    port, token = free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        **env_extra,
        "JUPYTER_CONFIG_DIR": str(home / "cfg"),
        "JUPYTER_RUNTIME_DIR": str(home / "rt"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
    }
    log_path = home / "lab.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
             "--ServerApp.ip=127.0.0.1", f"--ServerApp.token={token}", "--allow-root",
             f"--ServerApp.root_dir={folder}", "--LabApp.news_url=",
             "--ServerApp.open_browser=False"],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=folder,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until_serving(f"{base}/api/status?token={token}", proc, log_path, "JupyterLab")
            yield base, token
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


@contextlib.contextmanager
def jupyter_lab(folder: Path, cells: list[str], database_url: str) -> Iterator[tuple[str, str]]:
    """:func:`lab_server` on ``folder`` holding one notebook ``apps.ipynb`` of ``cells``
    (code), its kernel on ``database_url``; yields (base url, token)."""
    import nbformat

    folder.mkdir(parents=True, exist_ok=True)
    book = nbformat.v4.new_notebook()
    book.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
    }
    book.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    nbformat.write(book, folder / "apps.ipynb")
    with lab_server(folder, {"OPPKIT_DATABASE_URL": database_url}) as served:
        yield served
