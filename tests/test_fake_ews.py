"""The fake EWS endpoint, driven by the real exchangelib client over HTTP(S)."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime

import pytest
from exchangelib import (
    DELEGATE,
    Account,
    Build,
    Configuration,
    Credentials,
    FailFast,
    FaultTolerance,
    Version,
)
from exchangelib.errors import (
    ErrorInvalidSyncStateData,
    ErrorItemNotFound,
    ErrorNonExistentMailbox,
    ErrorSchemaValidation,
    ErrorServerBusy,
    ErrorTimeoutExpired,
    RateLimitError,
    TransportError,
    UnauthorizedError,
)
from exchangelib.properties import ItemId
from exchangelib.protocol import BaseProtocol
from exchangelib.services import SyncFolderItems
from exchangelib.transport import BASIC, NOAUTH

from tests.fakes.ews import FakeEws, FakeMailbox, ca_adapter

AVA = "ava@example.com"
_users = itertools.count()


def mime(n: int, body: str = "hello") -> bytes:
    return (
        f"From: Bob Buyer <bob@client.example>\r\nTo: Ava <{AVA}>\r\n"
        f"Subject: Offer {n}\r\nDate: Mon, 1 Jan 2024 10:{n:02d}:00 +0000\r\n"
        f"Message-ID: <m{n}@client.example>\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Transfer-Encoding: 8bit\r\n\r\n{body} {n} \u2013 gr\u00fc\u00dfe\r\n"
    ).encode()


def account(ews: FakeEws, address: str = AVA, *, policy=None, auth=NOAUTH, password="p") -> Account:
    # exchangelib caches one Protocol (with the first Configuration's retry policy and its
    # HTTP sessions) per (endpoint, credentials): a fresh user name gives each test its own.
    config = Configuration(
        service_endpoint=ews.url,
        credentials=Credentials(f"user{next(_users)}" if auth == NOAUTH else "svc", password),
        auth_type=auth,
        version=Version(build=Build(15, 1)),
        retry_policy=policy or FailFast(),
    )
    return Account(address, config=config, autodiscover=False, access_type=DELEGATE)


def sync(folder, fields=("mime_content", "subject")) -> list[tuple[str, object]]:
    return list(folder.sync_items(only_fields=list(fields)))


def test_incremental_mail_sync_pages_creates_then_only_changes() -> None:
    box = FakeMailbox()
    ids = [box.add_message("inbox", mime(n)) for n in range(5)]
    box.add_message("sentitems", mime(99))
    with FakeEws({AVA: box}, page_size=2) as ews:
        acc = account(ews)
        first = sync(acc.inbox)
        assert [kind for kind, _ in first] == ["create"] * 5
        assert [item.id for _, item in first] == ids
        assert [item.mime_content for _, item in first] == [mime(n) for n in range(5)]
        assert ews.requests.count("SyncFolderItems") == 3  # 2 + 2 + 1 changes
        state = acc.inbox.item_sync_state

        new = box.add_message("inbox", mime(5), is_read=True)
        box.update(ids[1], is_read=True)
        box.delete(ids[2])
        second = sync(acc.inbox, fields=("is_read", "subject"))
        assert [(kind, getattr(item, "subject", None)) for kind, item in second] == [
            ("create", "Offer 5"),  # in the order the changes happened
            ("update", "Offer 1"),
            ("delete", None),
        ]
        assert second[0][1].id == new
        assert second[1][1].is_read is True
        assert second[1][1].changekey != first[1][1].changekey
        assert second[2][1] == ItemId(ids[2], second[2][1].changekey)
        assert sync(acc.inbox) == []  # nothing new

        acc.inbox.item_sync_state = state  # an old state still works: the same three changes
        assert [kind for kind, _ in sync(acc.inbox)] == ["create", "update", "delete"]
        acc.inbox.item_sync_state = None  # a full resync sees what is there now
        assert sorted(item.subject for _, item in sync(acc.inbox)) == [
            "Offer 0", "Offer 1", "Offer 3", "Offer 4", "Offer 5",
        ]  # fmt: skip
        assert [item.subject for _, item in sync(acc.sent)] == ["Offer 99"]


def test_sync_service_pages_resume_exactly_from_a_stored_state() -> None:
    box = FakeMailbox()
    ids = [box.add_message("inbox", mime(n)) for n in range(7)]
    with FakeEws({AVA: box}) as ews:
        acc = account(ews)

        def page(state):
            svc = SyncFolderItems(account=acc)
            changes = list(svc.call(folder=acc.inbox, shape="IdOnly", additional_fields=None,
                                    sync_state=state, ignore=None, max_changes_returned=3,
                                    sync_scope=None))  # fmt: skip
            return [i.id for _, i in changes], svc.sync_state, svc.includes_last_item_in_range

        got1, state1, last1 = page(None)
        got2, state2, last2 = page(state1)
        assert (got1, got2, last1, last2) == (ids[:3], ids[3:6], False, False)
        assert page(state1) == (got2, state2, False)  # the client crashed: resume, no gaps
        got3, state3, last3 = page(state2)
        assert (got3, last3) == (ids[6:], True)
        assert page(state3) == ([], state3, True)  # caught up: the same state comes back


def test_fetch_returns_the_exact_mime_bytes_and_item_not_found() -> None:
    box = FakeMailbox()
    ids = [box.add_message("inbox", mime(n, body="b\u00e4r")) for n in range(3)]
    box.delete(ids[2])
    with FakeEws({AVA: box}) as ews:
        acc = account(ews)
        ref = [ItemId(i) for i in ids]
        got = list(acc.fetch(ref, only_fields=["mime_content", "conversation_id", "message_id"]))
        assert [g.mime_content for g in got[:2]] == [mime(0, "b\u00e4r"), mime(1, "b\u00e4r")]
        assert got[0].message_id == "<m0@client.example>"
        assert got[0].conversation_id.id != got[1].conversation_id.id
        assert isinstance(got[2], ErrorItemNotFound)
        full = next(iter(acc.fetch(ref[:1])))  # every property exchangelib knows
        assert full.author.email_address == "bob@client.example"
        assert [r.email_address for r in full.to_recipients] == [AVA]
        assert full.datetime_received == datetime(2024, 1, 1, 10, 0, tzinfo=UTC)
        assert full.is_read is False


def test_calendar_view_expands_weekly_recurrence_with_attendees() -> None:
    box = FakeMailbox()
    box.add_event(
        uid="weekly-1", subject="Pipeline review", location="Room 4", body="Agenda",
        start=datetime(2024, 1, 1, 9, tzinfo=UTC), end=datetime(2024, 1, 1, 10, tzinfo=UTC),
        organizer=("Ava", AVA), recurrence_weekly_count=6,
        attendees=[("Bob Buyer", "bob@client.example", "Accept"),
                   ("Cy", "cy@client.example", "Tentative")],
        optional_attendees=[("Di", "di@client.example", "NoResponseReceived")],
    )  # fmt: skip
    demo = box.add_event(
        uid="single-1", subject="Demo", start=datetime(2024, 1, 10, 15, tzinfo=UTC),
        end=datetime(2024, 1, 10, 16, tzinfo=UTC), organizer=("Bob Buyer", "bob@client.example"),
        attendees=[("Ava", AVA, "Decline")],
    )  # fmt: skip
    box.update(demo, is_cancelled=True)
    with FakeEws({AVA: box}) as ews:
        acc = account(ews)
        view = list(acc.calendar.view(start=datetime(2024, 1, 5, tzinfo=UTC),
                                      end=datetime(2024, 1, 30, tzinfo=UTC)))  # fmt: skip
        assert [(i.subject, i.start.day, i.type) for i in view] == [
            ("Pipeline review", 8, "Occurrence"),
            ("Demo", 10, "Single"),
            ("Pipeline review", 15, "Occurrence"),
            ("Pipeline review", 22, "Occurrence"),
            ("Pipeline review", 29, "Occurrence"),
        ]
        first = view[0]
        assert len({i.id for i in view}) == 5
        assert (first.uid, first.location, first.body, first.is_cancelled) == (
            "weekly-1", "Room 4", "Agenda", False,
        )  # fmt: skip
        assert first.end - first.start == datetime(2024, 1, 1, 10) - datetime(2024, 1, 1, 9)
        assert first.organizer.email_address == AVA
        assert [(a.mailbox.email_address, a.response_type) for a in first.required_attendees] == [
            ("bob@client.example", "Accept"),
            ("cy@client.example", "Tentative"),
        ]
        assert first.optional_attendees[0].response_type == "NoResponseReceived"
        assert view[1].is_cancelled is True and view[1].uid == "single-1"
        assert "FindItem" in ews.requests
        masters = sync(acc.calendar, fields=("uid", "type", "recurrence"))
        assert [(kind, i.uid, i.type) for kind, i in masters] == [
            ("create", "weekly-1", "RecurringMaster"),
            ("create", "single-1", "Single"),
        ]
        assert masters[0][1].recurrence.boundary.number == 6
        assert len(sync(acc.calendar)) == 0  # state kept on the folder


def test_server_busy_once_is_retried_by_fault_tolerance() -> None:
    box = FakeMailbox()
    box.add_message("inbox", mime(0))
    with FakeEws({AVA: box}) as ews:
        acc = account(ews, policy=FaultTolerance(max_wait=10))
        inbox = acc.inbox
        ews.server_busy_next(1, back_off_ms=300)
        began = time.monotonic()
        assert [kind for kind, _ in sync(inbox)] == ["create"]
        assert time.monotonic() - began >= 0.25  # it waited the back-off the server asked for
        assert ews.requests[-2:] == ["SyncFolderItems", "SyncFolderItems"]


def test_server_busy_fails_fast_or_past_max_wait() -> None:
    with FakeEws({AVA: FakeMailbox()}) as ews:
        ews.server_busy_next(1, back_off_ms=1500)
        with pytest.raises(ErrorServerBusy) as caught:
            account(ews).inbox  # noqa: B018
        assert caught.value.back_off == 1.5  # seconds, from BackOffMilliseconds
        ews.server_busy_next(1, back_off_ms=5000)
        with pytest.raises(RateLimitError):
            account(ews, policy=FaultTolerance(max_wait=1)).inbox  # noqa: B018


def test_invalidated_sync_state_raises_and_full_resync_works() -> None:
    box = FakeMailbox()
    box.add_message("inbox", mime(0))
    with FakeEws({AVA: box}) as ews:
        acc = account(ews)
        assert len(sync(acc.inbox)) == 1
        ews.invalidate_sync_states()
        box.add_message("inbox", mime(1))
        with pytest.raises(ErrorInvalidSyncStateData):
            sync(acc.inbox)
        acc.inbox.item_sync_state = None
        assert [item.subject for _, item in sync(acc.inbox)] == ["Offer 0", "Offer 1"]
        assert sync(acc.inbox) == []  # the new state is valid


def test_server_dying_half_way_raises_a_connection_error() -> None:
    box = FakeMailbox()
    for n in range(4):
        box.add_message("inbox", mime(n))
    with FakeEws({AVA: box}, page_size=2) as ews:
        acc = account(ews, policy=FaultTolerance(max_wait=5))
        inbox = acc.inbox
        ews.die_after(1)
        seen = []
        with pytest.raises(ErrorTimeoutExpired, match="Remote end closed connection"):
            for _, item in inbox.sync_items(only_fields=["subject"]):
                seen.append(item.subject)
        assert seen == ["Offer 0", "Offer 1"]  # the first page arrived, the second never did
        assert isinstance(ErrorTimeoutExpired("x"), TransportError)
        ews.revive()
        assert len(sync(inbox)) == 4  # the folder kept no state: start over


def test_https_with_the_test_ca(monkeypatch: pytest.MonkeyPatch) -> None:
    box = FakeMailbox()
    box.add_message("inbox", mime(0))
    with FakeEws({AVA: box}, tls=True) as ews:
        assert ews.url.startswith("https://127.0.0.1:")
        with pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED"):
            account(ews).inbox  # noqa: B018
        monkeypatch.setattr(BaseProtocol, "HTTP_ADAPTER_CLS", ca_adapter(ews.ca_path))
        assert [item.mime_content for _, item in sync(account(ews).inbox)] == [mime(0)]


def test_two_mailboxes_and_folder_listing() -> None:
    ava, bob = FakeMailbox(), FakeMailbox()
    ava.add_message("inbox", mime(1))
    bob_ids = [bob.add_message("inbox", mime(n)) for n in (2, 3, 4)]
    with FakeEws({AVA: ava, "bob@example.com": bob}) as ews:
        assert [i.subject for _, i in sync(account(ews).inbox)] == ["Offer 1"]
        bob_acc = account(ews, "bob@example.com")
        assert bob_acc.inbox.total_count == 3 and bob_acc.inbox.unread_count == 3
        assert [i.id for i in bob_acc.inbox.all().only("subject")] == bob_ids[::-1]  # newest first
        assert bob_acc.calendar.name == "Calendar"
        with pytest.raises(ErrorNonExistentMailbox):
            account(ews, "nobody@example.com").inbox  # noqa: B018


def test_unknown_operation_is_a_soap_fault_and_basic_auth_is_checked() -> None:
    with FakeEws({AVA: FakeMailbox()}, credentials=("svc", "secret")) as ews:
        with pytest.raises(UnauthorizedError):
            account(ews, auth=BASIC, password="wrong").inbox  # noqa: B018
        acc = account(ews, auth=BASIC, password="secret")
        assert acc.inbox.total_count == 0
        with pytest.raises(ErrorSchemaValidation, match="does not implement ResolveNames"):
            acc.protocol.resolve_names(["bob"])
        assert ews.requests[-1] == "ResolveNames"
