"""IMAP mailboxes against a real dovecot: incremental by UIDVALIDITY + UID, TLS and
STARTTLS, several folders, faults. On SQLite and PostgreSQL."""

from __future__ import annotations

import imaplib
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

import oppkit
from oppkit.errors import SourceError
from oppkit.sources.imap import ImapSettings
from oppkit.sync import sync_imap
from tests.servers.dovecot import Dovecot
from tests.support import make_email, raw_mail

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def message(
    i: int,
    sender: str = "buyer@acme-robotics.example",
    to: str = "ava.patel@northwind.example",
    **kw,
) -> bytes:  # noqa: ANN003
    return make_email(sender=sender, to=[to], subject=f"message {i}", body=f"Body {i}\n",
                      when=T0 + timedelta(minutes=i), message_id=f"imap-{i}@acme-robotics.example", **kw).as_bytes()  # fmt: skip


@pytest.fixture(scope="module")
def dovecot():
    with Dovecot() as server:
        yield server


@pytest.fixture
def user(request) -> str:
    """A fresh mailbox per test (dovecot creates it on first login)."""
    return f"u{abs(hash(request.node.nodeid)) % 10**8}"


def server_for(dovecot: Dovecot, user: str, **kw) -> ImapSettings:  # noqa: ANN003
    base = {"host": dovecot.host, "port": dovecot.tls_port, "username": user, "password": dovecot.password,
            "security": "tls", "ca_file": dovecot.ca_path}  # fmt: skip
    return ImapSettings(**(base | kw))


def test_folders_sync_incrementally(db_url, settings, dovecot, user):
    dovecot.append(user, "INBOX", [message(i) for i in range(5)])
    dovecot.append(
        user,
        "Sent",
        [message(10, sender="ava.patel@northwind.example", to="buyer@acme-robotics.example")],
    )
    first = sync_imap(server_for(dovecot, user), settings=settings)
    assert (first.read, first.written) == (6, 6)
    assert sync_imap(server_for(dovecot, user), settings=settings).read == 0
    dovecot.append(user, "INBOX", [message(5), message(6)])
    assert sync_imap(server_for(dovecot, user), settings=settings).read == 2
    tl = oppkit.connect(db_url).timeline()
    assert len(tl) == 8
    assert tl.set_index("subject").loc["message 10", "direction"] == "outbound"
    assert tl.set_index("subject").loc["message 0", "direction"] == "inbound"


def test_starttls_and_the_same_message_in_two_mailboxes(db_url, settings, dovecot, user):
    shared = message(1, cc=["ben.okafor@northwind.example"])
    dovecot.append(user, "INBOX", [shared])
    dovecot.append(user + "b", "INBOX", [shared])
    sync_imap(server_for(dovecot, user, port=dovecot.port, security="starttls"), settings=settings)
    sync_imap(
        server_for(dovecot, user + "b", port=dovecot.port, security="starttls"), settings=settings
    )
    assert len(oppkit.connect(db_url).timeline()) == 1


def test_changed_uidvalidity_rescans_without_duplicates(db_url, settings, dovecot, user):
    dovecot.append(user, "Deals", [message(i) for i in range(3)])
    sync_imap(server_for(dovecot, user, folders=("Deals",)), settings=settings)
    conn = dovecot.client(user)
    conn.delete("Deals")  # the folder is rebuilt: a new UIDVALIDITY, UIDs start again
    conn.logout()
    dovecot.append(user, "Deals", [message(i) for i in range(4)])
    again = sync_imap(server_for(dovecot, user, folders=("Deals",)), settings=settings)
    assert again.read == 4  # everything re-read under the new UIDVALIDITY
    assert len(oppkit.connect(db_url).timeline()) == 4


def test_malformed_message_is_skipped_and_the_rest_synced(db_url, settings, dovecot, user):
    dovecot.append(user, "INBOX", [message(1), b"this is not an email at all", message(2)])
    summary = sync_imap(server_for(dovecot, user, folders=("INBOX",)), settings=settings)
    assert (summary.written, summary.skipped) == (2, 1)


def test_a_message_without_a_usable_date_takes_its_internaldate(db_url, settings, dovecot, user):
    arrived = datetime(2026, 2, 1, 8, 30, tzinfo=UTC)
    conn = dovecot.client(user)
    for raw in (raw_mail(1, date=None), raw_mail(2, date="Fri, 31 Dec 9999 23:59:59 -0100")):
        conn.append("INBOX", None, imaplib.Time2Internaldate(arrived), raw.replace(b"\n", b"\r\n"))
    conn.logout()
    summary = sync_imap(server_for(dovecot, user, folders=("INBOX",)), settings=settings)
    assert (summary.written, summary.skipped, summary.errors) == (2, 0, 0)
    tl = oppkit.connect(db_url).timeline()
    assert set(tl["occurred_at"]) == {arrived}


def test_exclusions_keep_private_mail_out(db_url, settings, dovecot, user):
    dovecot.append(user, "INBOX", [message(1), message(2, sender="doctor@private-clinic.example"),
                                   message(3, sender="friend@gmail.com")])  # fmt: skip
    sync_imap(server_for(dovecot, user, folders=("INBOX",), exclude_domains=("private-clinic.example",),
                         exclude_senders=("friend@gmail.com",)), settings=settings)  # fmt: skip
    assert list(oppkit.connect(db_url).timeline()["subject"]) == ["message 1"]


def test_wrong_password_and_unreachable_server_are_clear(settings, dovecot, user):
    with pytest.raises(SourceError, match="IMAP login to .* failed"):
        sync_imap(server_for(dovecot, user, password="nope"), settings=settings)
    with pytest.raises(SourceError, match="cannot reach IMAP server"):
        sync_imap(server_for(dovecot, user, port=1), settings=settings)


def test_server_dies_half_way_and_the_rerun_completes(sqlite_url, tmp_path):
    settings = oppkit.Settings(database_url=sqlite_url, internal_domains=("northwind.example",))
    with Dovecot() as server:
        server.append("dies", "INBOX", [message(i) for i in range(1200)])
        proc = subprocess.Popen(
            [sys.executable, "-m", "oppkit.cli", "--db", sqlite_url, "sync", "mail", "--imap-host", "127.0.0.1",
             "--imap-port", str(server.tls_port), "--imap-user", "dies", "--imap-ca-file", server.ca_path,
             "--imap-folder", "INBOX"],
            env={**os.environ, "OPPKIT_IMAP_PASSWORD": server.password},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        from tests.support import count, wait_for_checkpoint

        wait_for_checkpoint(sqlite_url, proc)
        server.stop()  # the server goes away mid-sync
        _out, err = proc.communicate(timeout=120)
        if proc.returncode != 0:
            assert proc.returncode == 1 and "Traceback" not in err
        done = count(sqlite_url)
        server.start()
        summary = sync_imap(ImapSettings(host="127.0.0.1", port=server.tls_port, username="dies",
                                         password=server.password, ca_file=server.ca_path,
                                         folders=("INBOX",)), settings=settings)  # fmt: skip
        assert summary.read == 1200 - done
    assert count(sqlite_url) == 1200
