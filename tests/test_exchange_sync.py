"""Exchange mailboxes and calendars: oppkit's EWS source through the real exchangelib
client against the wire-level fake EWS endpoint (tests/fakes/ews.py)."""

from __future__ import annotations

import base64
import itertools
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
import requests
from exchangelib.errors import ErrorItemNotFound
from exchangelib.properties import ItemId

import oppkit
from oppkit.errors import SourceError
from oppkit.sources.exchange import ExchangeSettings, _account, _fetched, _jobs_of
from oppkit.sources.records import Skipped
from oppkit.sync import sync_exchange
from tests.fakes.ews import FakeEws, FakeMailbox
from tests.support import make_email, raw_mail

AVA, BEN = "ava.patel@northwind.example", "ben.okafor@northwind.example"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
_users = itertools.count()


def mime(i: int, sender: str = "buyer@acme-robotics.example", to: str = AVA, **kw) -> bytes:  # noqa: ANN003
    return make_email(sender=sender, to=[to], subject=f"ews {i}", body=f"Body {i}", when=T0 + timedelta(minutes=i),
                      message_id=f"ews-{i}@acme-robotics.example", **kw).as_bytes()  # fmt: skip


def settings_for(ews: FakeEws, *mailboxes: str, **kw) -> ExchangeSettings:  # noqa: ANN003
    # exchangelib caches a protocol per (endpoint, credentials): a fresh user per test
    base = {"endpoint": ews.url, "mailboxes": mailboxes, "username": f"svc{next(_users)}", "password": "p",
            "auth": "noauth", "max_wait": 5, "ca_file": ews.ca_path}  # fmt: skip
    return ExchangeSettings(**(base | kw))


def test_mailboxes_sync_incrementally_and_once_per_message(db_url, settings):
    ava, ben = FakeMailbox(), FakeMailbox()
    for i in range(5):
        ava.add_message("inbox", mime(i))
    ava.add_message("sentitems", mime(9, sender=AVA, to="buyer@acme-robotics.example", cc=[BEN]))
    ben.add_message("inbox", mime(9, sender=AVA, to="buyer@acme-robotics.example", cc=[BEN]))
    with FakeEws({AVA: ava, BEN: ben}, tls=True, page_size=2) as ews:
        server = settings_for(ews, AVA, BEN)
        first = sync_exchange(server, settings=settings)
        assert (first.read, first.errors) == (7, 0)
        assert sync_exchange(server, settings=settings).read == 0
        ava.add_message("inbox", mime(5))
        assert sync_exchange(server, settings=settings).read == 1
    tl = oppkit.connect(db_url).timeline()
    assert len(tl) == 7  # the cc'd copy in Ben's inbox is the same activity
    assert tl.set_index("subject").loc["ews 9", "direction"] == "outbound"


def test_a_message_without_a_date_takes_the_time_exchange_received_it(db_url, settings):
    box = FakeMailbox()
    box.add_message("inbox", raw_mail(1, date=None))
    with FakeEws({AVA: box}, tls=True) as ews:
        summary = sync_exchange(settings_for(ews, AVA, folders=("inbox",)), settings=settings)
    assert (summary.written, summary.skipped) == (1, 0)
    [when] = oppkit.connect(db_url).timeline()["occurred_at"]
    assert abs(when - datetime.now(UTC)) < timedelta(minutes=5)  # the fake received it now


def test_throttling_is_honoured_and_a_forgotten_state_resyncs(db_url, settings):
    box = FakeMailbox()
    for i in range(4):
        box.add_message("inbox", mime(i))
    with FakeEws({AVA: box}, tls=True) as ews:
        server = settings_for(ews, AVA, folders=("inbox",))
        ews.server_busy_next(times=1, back_off_ms=50)
        assert sync_exchange(server, settings=settings).read == 4
        ews.invalidate_sync_states()
        box.add_message("inbox", mime(4))
        again = sync_exchange(server, settings=settings)
        assert again.read == 5  # read again from the start
    assert len(oppkit.connect(db_url).timeline()) == 5


def test_server_dies_half_way_and_the_rerun_completes(sqlite_url):
    settings = oppkit.Settings(database_url=sqlite_url, internal_domains=("northwind.example",))
    box = FakeMailbox()
    for i in range(30):
        box.add_message("inbox", mime(i))
    with FakeEws({AVA: box}, tls=True, page_size=5) as ews:
        server = settings_for(ews, AVA, folders=("inbox",))
        ews.die_after(6)
        with pytest.raises(SourceError, match="cannot reach Exchange"):
            sync_exchange(server, settings=settings)
        done = len(oppkit.connect(sqlite_url).timeline())
        assert 0 < done < 30
        ews.revive()
        assert sync_exchange(server, settings=settings).read == 30 - done
    assert len(oppkit.connect(sqlite_url).timeline()) == 30


def test_calendar_expands_recurrences_with_attendees_and_responses(db_url, settings):
    box = FakeMailbox()
    now = datetime.now(UTC).replace(microsecond=0, second=0) + timedelta(hours=1)
    box.add_event(uid="weekly-sync", subject="Acme weekly sync", start=now - timedelta(days=14),
                  end=now - timedelta(days=14) + timedelta(hours=1), organizer=("Ava Patel", AVA),
                  attendees=[("Bob Buyer", "buyer@acme-robotics.example", "Accept"),
                             ("Ben Okafor", BEN, "Tentative")], recurrence_weekly_count=4)  # fmt: skip
    with FakeEws({AVA: box}, tls=True) as ews:
        summary = sync_exchange(settings_for(ews, AVA), settings=settings, calendar=True)
    assert summary.errors == 0 and summary.read == 4
    kit = oppkit.connect(db_url)
    meetings = kit.timeline(kind="meeting")
    assert len(meetings) == 4 and meetings["source_id"].is_unique
    assert set(meetings["thread_id"]) == {"weekly-sync"}
    assert meetings["is_planned"].sum() == 2  # two occurrences are still ahead
    bob = kit.timeline(person="buyer@acme-robotics.example")
    assert len(bob) == 4
    assert meetings.iloc[0]["account"] == "Acme Robotics"


def ews_cli(db_url: str, ews: FakeEws, password: str, *args: str) -> subprocess.CompletedProcess:
    """``oppkit sync mail`` from Ava's Exchange mailbox with basic auth as svc."""
    return subprocess.run(
        [sys.executable, "-m", "oppkit.cli", "--db", db_url, *args, "sync", "mail",
         "--ews-url", ews.url, "--ews-mailbox", AVA, "--ews-user", "svc", "--ews-auth", "basic",
         "--ews-folder", "inbox"],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "OPPKIT_EWS_PASSWORD": password},
    )  # fmt: skip


def test_debug_logs_never_show_the_exchange_password(db_url):
    password = "Sup3r-s3cret!"
    box = FakeMailbox()
    box.add_message("inbox", mime(1))
    with FakeEws({AVA: box}, credentials=("svc", password)) as ews:
        result = ews_cli(db_url, ews, password, "--debug")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "mail: read 1" in result.stdout
    assert "Authorization" in result.stderr  # exchangelib logged the request headers...
    basic = base64.b64encode(f"svc:{password}".encode()).decode()
    for secret in (password, basic, basic.rstrip("=")[:-2]):
        assert secret not in result.stderr  # ...without the credentials


def test_a_wrong_exchange_password_fails_at_once_with_one_line(db_url):
    with FakeEws({AVA: FakeMailbox()}, credentials=("svc", "right-password")) as ews:
        result = ews_cli(db_url, ews, "wrong-password")
        asked = len(ews.requests)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("oppkit: error: Exchange refused the login")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert asked == 1  # no retry, no back-off
    assert "wrong-password" not in result.stderr


def test_a_resync_asks_only_for_the_changes_and_their_mime(db_url, settings):
    box = FakeMailbox()
    for i in range(3):
        box.add_message("inbox", mime(i))
    with FakeEws({AVA: box}, tls=True) as ews:
        server = settings_for(ews, AVA)  # Inbox and Sent Items
        assert sync_exchange(server, settings=settings).read == 3
        box.add_message("inbox", mime(3))
        ews.requests.clear()
        assert sync_exchange(server, settings=settings).read == 1
        # well-known folders by distinguished id: no GetFolder; one page per folder
        assert ews.requests == ["SyncFolderItems", "GetItem", "SyncFolderItems"]
    assert len(oppkit.connect(db_url).timeline()) == 4


def test_answers_are_read_in_pieces_not_byte_by_byte(db_url, settings, monkeypatch):
    sizes = []
    iter_content = requests.Response.iter_content

    def spy(self, chunk_size=1, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        sizes.append(chunk_size)
        return iter_content(self, chunk_size, *args, **kwargs)

    monkeypatch.setattr(requests.Response, "iter_content", spy)
    box = FakeMailbox()
    box.add_message("inbox", mime(1))
    with FakeEws({AVA: box}, tls=True) as ews:
        assert (
            sync_exchange(settings_for(ews, AVA, folders=("inbox",)), settings=settings).read == 1
        )
    assert sizes.count(2**16) == 2 and min(sizes) > 1  # SyncFolderItems, GetItem; requests 10 KB


def test_fetched_messages_are_what_exchangelib_fetches():
    box = FakeMailbox()
    ids = [box.add_message("inbox", mime(i)) for i in range(3)]
    ids.append(box.add_message("inbox", raw_mail(1, date=None)))
    box.delete(ids[1])
    with FakeEws({AVA: box}, tls=True) as ews:
        account = _account(settings_for(ews, AVA), AVA)
        fields = ["mime_content", "conversation_id", "datetime_received"]
        want = list(account.fetch([ItemId(i) for i in ids], only_fields=fields))
        got = _fetched(account, [("create", ItemId(i)) for i in ids])
        assert [type(g) for g in got[1:2]] == [type(w) for w in want[1:2]] == [ErrorItemNotFound]
        for g, w in zip(got[:1] + got[2:], want[:1] + want[2:], strict=True):
            assert (g.id, g.mime_content, g.conversation_id, g.datetime_received) == (
                w.id, w.mime_content, w.conversation_id, w.datetime_received
            )  # fmt: skip
        jobs = list(_jobs_of(got, "ava inbox"))
        assert isinstance(jobs[1], Skipped) and jobs[0].args[0] == mime(0)


def test_an_unknown_mailbox_fails_in_one_line(db_url, settings):
    with FakeEws({AVA: FakeMailbox()}, tls=True) as ews:
        with pytest.raises(SourceError, match=f"Exchange refused {BEN}: ErrorNonExistentMailbox"):
            sync_exchange(settings_for(ews, BEN), settings=settings)
