"""A wire-level fake of Exchange Web Services (EWS) for tests.

The real ``exchangelib`` client talks SOAP to it over HTTP or HTTPS on 127.0.0.1; nothing in
exchangelib is mocked. It serves GetFolder (distinguished folders), SyncFolderItems (paged, with
opaque self-contained sync states), GetItem (MIME content, mail and calendar properties),
FindItem (CalendarView with weekly recurrences expanded; IndexedPageItemView without
restrictions) and the errors a client must survive: ErrorServerBusy with BackOffMilliseconds,
ErrorInvalidSyncStateData, ErrorItemNotFound, a SOAP fault for what it does not implement, 401
(when ``credentials`` is given) and a server that dies half way.

Example::

    box = FakeMailbox()
    box.add_message("inbox", raw_rfc5322_bytes)
    with FakeEws({"ava@example.com": box}) as ews:
        config = Configuration(service_endpoint=ews.url, credentials=Credentials("u", "p"),
                               auth_type=NOAUTH, version=Version(build=Build(15, 1)))
        account = Account("ava@example.com", config=config, autodiscover=False,
                          access_type=DELEGATE)
        changes = list(account.inbox.sync_items(only_fields=["mime_content"]))

HTTPS (``tls=True``): a trustme CA signs the certificate and ``ca_path`` is its PEM. exchangelib
builds its requests sessions from ``BaseProtocol.HTTP_ADAPTER_CLS``; point it at
``ca_adapter(ews.ca_path)`` (``monkeypatch.setattr(BaseProtocol, "HTTP_ADAPTER_CLS", ...)``)
before the account's first request -- sessions, and so adapters, are made lazily and then kept
by exchangelib's Protocol cache. ``REQUESTS_CA_BUNDLE`` works too, as requests reads it for
every request whose session keeps ``verify=True``.

Sync states are zlib+base64 JSON holding the mailbox, the folder, an epoch and the (item,
version) pairs the client has been sent, as runs of consecutive items at one version (a few
bytes for a folder read once, as Exchange's ID sets are ranges, not one entry per item; a list
of every pair made a 20,000-item folder's state 61 KB and cost the fake 30 ms a request to
decode and encode), so a client resumes exactly from any state it kept;
:meth:`FakeEws.invalidate_sync_states` bumps the epoch and older states then fail with
ErrorInvalidSyncStateData.
"""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import json
import secrets
import ssl
import sys
import tempfile
import threading
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import getaddresses, parseaddr, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
import trustme
from lxml import etree

from tests.fakes.holds import Holds

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
MNS = "http://schemas.microsoft.com/exchange/services/2006/messages"
TNS = "http://schemas.microsoft.com/exchange/services/2006/types"
ENS = "http://schemas.microsoft.com/exchange/services/2006/errors"
NS = {"s": SOAP, "m": MNS, "t": TNS, "e": ENS}
PATH = "/EWS/Exchange.asmx"

# distinguished id -> (display name, FolderClass, parent, response tag)
FOLDERS = {
    "root": ("", None, None, "Folder"),
    "msgfolderroot": ("Top of Information Store", "IPF.Note", "root", "Folder"),
    "inbox": ("Inbox", "IPF.Note", "msgfolderroot", "Folder"),
    "sentitems": ("Sent Items", "IPF.Note", "msgfolderroot", "Folder"),
    "calendar": ("Calendar", "IPF.Appointment", "msgfolderroot", "CalendarFolder"),
}
MAIL_FOLDERS = ("inbox", "sentitems")
RESPONSES = {
    "accept": "Accept", "accepted": "Accept", "tentative": "Tentative",
    "decline": "Decline", "declined": "Decline", "organizer": "Organizer", "unknown": "Unknown",
    "none": "NoResponseReceived", "needs-action": "NoResponseReceived",
    "noresponsereceived": "NoResponseReceived",
}  # fmt: skip
MESSAGE_FIELDS = {"mime", "is_read", "subject"}
EVENT_FIELDS = {
    "uid", "subject", "start", "end", "organizer", "attendees", "optional_attendees",
    "location", "body", "recurrence_weekly_count", "is_cancelled",
}  # fmt: skip


class EwsError(Exception):
    """An EWS ResponseCode for one response message (ResponseClass="Error")."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(f"{code}: {text}")
        self.code, self.text = code, text


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _unb64(value: str) -> str:
    try:
        return base64.b64decode(value.encode(), validate=True).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise EwsError("ErrorInvalidIdMalformed", "Id is malformed.") from exc


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _dt(value: datetime) -> str:
    return _utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_dt(text: str) -> datetime:
    return _utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


# -- the mailbox ------------------------------------------------------------------------------


@dataclass
class _Item:
    serial: int
    folder: str
    kind: str  # "message" or "event"
    data: dict[str, Any]
    version: int = 1
    seq: int = 0  # mailbox-wide sequence number of the last change
    deleted: bool = False
    created: datetime = field(default_factory=lambda: datetime.now(UTC))


class FakeMailbox:
    """In-memory mailbox: folders inbox/sentitems/calendar (distinguished ids), items with
    ItemId+ChangeKey. Every change bumps a mailbox-wide sequence; deletions leave tombstones so
    SyncFolderItems can report them."""

    def __init__(self) -> None:
        self.token = secrets.token_hex(4)  # ids name their mailbox, so the server can find it
        self.epoch = 0  # sync states from an older epoch are invalid
        self._items: dict[int, _Item] = {}
        self._seq = 0
        self.lock = threading.RLock()

    # ids
    def item_id(self, serial: int, occurrence: int | None = None) -> str:
        tail = f":{occurrence}" if occurrence is not None else ""
        return "AAMkA" + _b64(f"{self.token}:{serial}{tail}")

    def change_key(self, item: _Item) -> str:
        return "CQAAA" + _b64(f"{item.serial}.{item.version}")

    def folder_id(self, name: str) -> str:
        return "AQMkA" + _b64(f"{self.token}:{name}")

    # public API
    def add_message(self, folder: str, mime: bytes, *, is_read: bool = False) -> str:
        if folder not in MAIL_FOLDERS:
            raise ValueError(f"messages live in {MAIL_FOLDERS}, not {folder!r}")
        return self._add(folder, "message", {"mime": bytes(mime), "is_read": is_read})

    def add_event(
        self, *, uid: str, subject: str, start: datetime, end: datetime,
        organizer: tuple[str, str], attendees: list[tuple[str, str, str]],
        location: str | None = None, body: str | None = None,
        recurrence_weekly_count: int | None = None,
        optional_attendees: list[tuple[str, str, str]] = (), is_cancelled: bool = False,
    ) -> str:  # fmt: skip
        """A meeting in the calendar; ``recurrence_weekly_count`` = N makes it a weekly series
        of N occurrences. Responses: Accept, Tentative, Decline, NoResponseReceived, Organizer,
        Unknown (or accepted/declined/needs-action)."""
        data = dict(uid=uid, subject=subject, start=_utc(start), end=_utc(end),
                    organizer=organizer, attendees=list(attendees), location=location, body=body,
                    recurrence_weekly_count=recurrence_weekly_count,
                    optional_attendees=list(optional_attendees), is_cancelled=is_cancelled)  # fmt: skip
        return self._add("calendar", "event", data)

    def update(self, item_id: str, **fields: Any) -> None:
        """Change fields (messages: mime, is_read, subject; events: any add_event field); bumps
        the ChangeKey, so the item is an Update in the next SyncFolderItems."""
        with self.lock:
            item = self._get(item_id)
            allowed = MESSAGE_FIELDS if item.kind == "message" else EVENT_FIELDS
            if unknown := set(fields) - allowed:
                raise ValueError(f"cannot update {sorted(unknown)} of a {item.kind}")
            for key in ("start", "end"):
                if key in fields:
                    fields[key] = _utc(fields[key])
            item.data.update(fields)
            item.version += 1
            item.seq = self._next_seq()

    def delete(self, item_id: str) -> None:
        """Remove the item; a Delete in the next SyncFolderItems of clients that had it."""
        with self.lock:
            item = self._get(item_id)
            item.deleted, item.seq = True, self._next_seq()

    # internals
    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _add(self, folder: str, kind: str, data: dict) -> str:
        with self.lock:
            serial = len(self._items) + 1
            self._items[serial] = _Item(serial, folder, kind, data, seq=self._next_seq())
            return self.item_id(serial)

    def _get(self, item_id: str) -> _Item:
        token, serial, _ = _split_item_id(item_id)
        item = self._items.get(serial) if token == self.token else None
        if item is None or item.deleted:
            raise KeyError(item_id)
        return item

    def items(self, folder: str, *, deleted: bool = False) -> list[_Item]:
        return [
            i for i in self._items.values() if i.folder == folder and (deleted or not i.deleted)
        ]


def _split_item_id(item_id: str) -> tuple[str, int, int | None]:
    if not item_id.startswith("AAMkA"):
        raise EwsError("ErrorInvalidIdMalformed", "Id is malformed.")
    parts = _unb64(item_id[5:]).split(":")
    try:
        return parts[0], int(parts[1]), int(parts[2]) if len(parts) > 2 else None
    except (IndexError, ValueError) as exc:
        raise EwsError("ErrorInvalidIdMalformed", "Id is malformed.") from exc


# -- what an item looks like on the wire ------------------------------------------------------


def _el(parent: etree._Element | None, tag: str, text: Any = None, **attrs: Any) -> etree._Element:
    prefix, name = tag.split(":")
    qname = f"{{{NS[prefix]}}}{name}"
    attrib = {k: str(v) for k, v in attrs.items()}
    if parent is None:
        elem = etree.Element(qname, attrib, nsmap={"s": SOAP, "m": MNS, "t": TNS})
    else:
        elem = etree.SubElement(parent, qname, attrib)
    if text is not None:
        elem.text = str(text).lower() if isinstance(text, bool) else str(text)
    return elem


def _mailbox(parent: etree._Element, tag: str | None, name: str | None, address: str) -> None:
    box = _el(_el(parent, tag) if tag else parent, "t:Mailbox")
    if name:
        _el(box, "t:Name", name)
    _el(box, "t:EmailAddress", address)
    _el(box, "t:RoutingType", "SMTP")
    _el(box, "t:MailboxType", "OneOff")


def _message_props(mime: bytes) -> dict[str, Any]:
    """The properties Exchange derives from a message's MIME."""
    msg = email.message_from_bytes(mime, policy=email.policy.default)
    try:
        sent = _utc(parsedate_to_datetime(msg["Date"])) if msg["Date"] else None
    except (TypeError, ValueError):
        sent = None
    body = msg.get_body(("plain", "html"))
    refs = (msg["References"] or "").split() or (msg["In-Reply-To"] or "").split()
    thread = refs[0] if refs else msg["Message-ID"] or ""
    return {
        "subject": str(msg["Subject"] or ""),
        "from": parseaddr(str(msg["From"] or "")),
        "to": getaddresses([str(v) for v in msg.get_all("To", [])]),
        "cc": getaddresses([str(v) for v in msg.get_all("Cc", [])]),
        "sent": sent,
        "message_id": msg["Message-ID"],
        "in_reply_to": msg["In-Reply-To"],
        "references": msg["References"],
        "text": body.get_content() if body is not None else "",
        "has_attachments": any(True for _ in msg.iter_attachments()),
        "conversation": "AAQkA" + base64.b64encode(hashlib.sha1(thread.encode()).digest()).decode(),
    }


def _message_fields(item: _Item) -> dict[str, Any]:
    """FieldURI -> value, or a callable(parent) writing the property, for a message."""
    p = _message_props(item.data["mime"])
    p["subject"] = item.data.get("subject", p["subject"])
    received = p["sent"] or item.created

    def people(tag: str, pairs: list) -> Any:
        def write(parent):
            holder = _el(parent, tag)
            for name, address in pairs:
                _mailbox(holder, None, name, address)

        return write if pairs else None

    def sender(tag: str) -> Any:
        name, address = p["from"]
        return (lambda parent: _mailbox(parent, tag, name, address)) if address else None

    mime = base64.b64encode(item.data["mime"]).decode()
    return {
        "item:MimeContent": lambda parent: _el(parent, "t:MimeContent", mime, CharacterSet="UTF-8"),
        "item:ItemClass": "IPM.Note",
        "item:Subject": p["subject"],
        "item:Body": lambda parent: _el(parent, "t:Body", p["text"], BodyType="Text"),
        "item:TextBody": lambda parent: _el(parent, "t:TextBody", p["text"], BodyType="Text"),
        "item:DateTimeReceived": _dt(received),
        "item:DateTimeSent": _dt(received),
        "item:DateTimeCreated": _dt(item.created),
        "item:LastModifiedTime": _dt(item.created),
        "item:Size": len(item.data["mime"]),
        "item:HasAttachments": p["has_attachments"],
        "item:InReplyTo": p["in_reply_to"],
        "item:IsDraft": False,
        "item:ConversationId": lambda parent: _el(parent, "t:ConversationId", Id=p["conversation"]),
        "message:ConversationTopic": p["subject"],
        "message:InternetMessageId": p["message_id"],
        "message:References": p["references"],
        "message:IsRead": bool(item.data["is_read"]),
        "message:From": sender("t:From"),
        "message:Sender": sender("t:Sender"),
        "message:ToRecipients": people("t:ToRecipients", p["to"]),
        "message:CcRecipients": people("t:CcRecipients", p["cc"]),
    }


def _event_fields(item: _Item, occurrence: int | None) -> dict[str, Any]:
    """FieldURI -> value (or writer) for a calendar item: the series master (``occurrence`` is
    None, CalendarItemType RecurringMaster or Single) or its ``occurrence``-th occurrence (1-based)."""
    d = item.data
    count = d["recurrence_weekly_count"]
    shift = timedelta(weeks=(occurrence or 1) - 1)
    start, end = d["start"] + shift, d["end"] + shift
    kind = "Occurrence" if occurrence else ("RecurringMaster" if count else "Single")

    def attendees(tag: str, rows: list) -> Any:
        def write(parent):
            holder = _el(parent, tag)
            for name, address, response in rows:
                attendee = _el(holder, "t:Attendee")
                _mailbox(attendee, None, name, address)
                _el(attendee, "t:ResponseType", RESPONSES.get(response.lower(), response))

        return write if rows else None

    def recurrence(parent):
        rec = _el(parent, "t:Recurrence")
        weekly = _el(rec, "t:WeeklyRecurrence")
        _el(weekly, "t:Interval", 1)
        _el(weekly, "t:DaysOfWeek", d["start"].strftime("%A"))
        _el(weekly, "t:FirstDayOfWeek", "Monday")
        numbered = _el(rec, "t:NumberedRecurrence")
        _el(numbered, "t:StartDate", d["start"].strftime("%Y-%m-%dZ"))
        _el(numbered, "t:NumberOfOccurrences", count)

    def body(parent):
        _el(parent, "t:Body", d["body"], BodyType="Text")

    name, address = d["organizer"]
    return {
        "item:ItemClass": "IPM.Appointment",
        "item:Subject": d["subject"],
        "item:Body": body if d["body"] is not None else None,
        "item:DateTimeCreated": _dt(item.created),
        "item:LastModifiedTime": _dt(item.created),
        "calendar:UID": d["uid"],
        "calendar:RecurrenceId": _dt(start) if occurrence else None,
        "calendar:OriginalStart": _dt(start) if occurrence else None,
        "calendar:Start": _dt(start),
        "calendar:End": _dt(end),
        "calendar:IsAllDayEvent": False,
        "calendar:LegacyFreeBusyStatus": "Free" if d["is_cancelled"] else "Busy",
        "calendar:Location": d["location"],
        "calendar:IsMeeting": bool(d["attendees"] or d["optional_attendees"]),
        "calendar:IsCancelled": bool(d["is_cancelled"]),
        "calendar:IsRecurring": bool(count),
        "calendar:CalendarItemType": kind,
        "calendar:Organizer": lambda parent: _mailbox(parent, "t:Organizer", name, address),
        "calendar:RequiredAttendees": attendees("t:RequiredAttendees", d["attendees"]),
        "calendar:OptionalAttendees": attendees("t:OptionalAttendees", d["optional_attendees"]),
        "calendar:Recurrence": recurrence if count and not occurrence else None,
    }


DEFAULT_SHAPE = {"item:Subject", "item:DateTimeReceived", "item:HasAttachments", "item:Size",
                 "message:From", "message:IsRead", "calendar:Start", "calendar:End",
                 "calendar:Location", "calendar:Organizer"}  # fmt: skip


def _write_item(
    parent, box: FakeMailbox, item: _Item, fields: set[str] | None, occurrence: int | None = None
) -> None:
    """Write <t:Message>/<t:CalendarItem> with ItemId and the requested FieldURIs (None = all)."""
    elem = _el(parent, "t:Message" if item.kind == "message" else "t:CalendarItem")
    _el(elem, "t:ItemId", Id=box.item_id(item.serial, occurrence), ChangeKey=box.change_key(item))
    if fields is None or "item:ParentFolderId" in fields:
        _el(elem, "t:ParentFolderId", Id=box.folder_id(item.folder), ChangeKey="AQAAAA==")
    if fields is not None and not fields - {"item:ParentFolderId"}:
        return  # IdOnly: nothing of the message is read (no MIME parsed)
    values = _message_fields(item) if item.kind == "message" else _event_fields(item, occurrence)
    for uri, value in values.items():
        if value is None or (fields is not None and uri not in fields):
            continue  # Exchange leaves out properties an item does not have
        if callable(value):
            value(elem)
        else:
            _el(elem, f"t:{uri.split(':')[1]}", value)


def _shape(shape_elem: etree._Element | None) -> set[str] | None:
    """The FieldURIs an ItemShape asks for; None = AllProperties."""
    if shape_elem is None:
        return set()
    base = shape_elem.findtext(f"{{{TNS}}}BaseShape")
    if base == "AllProperties":
        return None
    fields = set(DEFAULT_SHAPE) if base == "Default" else set()
    fields.update(e.get("FieldURI") for e in shape_elem.iter(f"{{{TNS}}}FieldURI"))
    if shape_elem.findtext(f"{{{TNS}}}IncludeMimeContent") == "true":
        fields.add("item:MimeContent")
    return fields


# -- sync states ------------------------------------------------------------------------------


def _encode_state(box: FakeMailbox, folder: str, known: dict[int, int]) -> str:
    runs: list[list[int]] = []  # [first serial, last serial, version], as Exchange's ID sets
    for serial, version in sorted(known.items()):
        if runs and runs[-1][1] == serial - 1 and runs[-1][2] == version:
            runs[-1][1] = serial
        else:
            runs.append([serial, serial, version])
    state = {"m": box.token, "f": folder, "e": box.epoch, "r": runs}
    raw = json.dumps(state, separators=(",", ":")).encode()
    return base64.b64encode(zlib.compress(raw, 9)).decode()


def _decode_state(box: FakeMailbox, folder: str, text: str | None) -> dict[int, int]:
    if not text:
        return {}
    try:
        state = json.loads(zlib.decompress(base64.b64decode(text, validate=True)))
        valid = state["m"] == box.token and state["f"] == folder and state["e"] == box.epoch
        runs = [(int(first), int(last), int(version)) for first, last, version in state["r"]]
        valid = valid and all(0 < first <= last <= len(box._items) for first, last, _ in runs)
        known = {s: v for first, last, v in runs for s in range(first, last + 1)} if valid else {}
    except (ValueError, KeyError, TypeError, zlib.error):
        valid = False
    if not valid:
        raise EwsError(
            "ErrorInvalidSyncStateData",
            "Synchronization state data is corrupt or otherwise invalid.",
        )
    return known


# -- the server -------------------------------------------------------------------------------


def ca_adapter(ca_path: str) -> type[requests.adapters.HTTPAdapter]:
    """An HTTPAdapter class that verifies TLS against ``ca_path``: the value for
    ``exchangelib.protocol.BaseProtocol.HTTP_ADAPTER_CLS``."""

    class CaAdapter(requests.adapters.HTTPAdapter):
        def send(self, request, **kwargs):  # noqa: ANN001, ANN202
            kwargs["verify"] = ca_path
            return super().send(request, **kwargs)

    return CaAdapter


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as exchangelib expects
    timeout = 30
    disable_nagle_algorithm = True

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        self.server.fake._serve(self)

    def do_GET(self) -> None:
        self.reply(405, b"", "text/plain")

    def reply(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeEws, context: ssl.SSLContext | None) -> None:
        self.fake, self.context = fake, context
        super().__init__(("127.0.0.1", 0), _Handler)

    def finish_request(self, request, client_address) -> None:
        if self.context is None:
            return super().finish_request(request, client_address)
        try:  # the TLS handshake happens here, in the connection's own thread
            tls = self.context.wrap_socket(request, server_side=True)
        except OSError:
            return None
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            tls.close()

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # resets and TLS errors are expected
            super().handle_error(request, client_address)


class FakeEws:
    """Threaded HTTP(S) server on 127.0.0.1 speaking EWS for one or more mailboxes (by primary
    SMTP address, picked by exchangelib's X-AnchorMailbox header); a context manager.

    ``credentials=("user", "password")`` makes it demand HTTP Basic auth (answering 401);
    by default it takes anything, as exchangelib's NOAUTH sends no Authorization header."""

    def __init__(
        self,
        mailboxes: dict[str, FakeMailbox],
        *,
        tls: bool = False,
        page_size: int = 100,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self.mailboxes = {k.lower(): v for k, v in mailboxes.items()}
        self.page_size = page_size
        self.requests: list[str] = []  # operation of every request received, answered or not
        self._credentials = credentials
        self._busy: list[int] = []  # back-off (ms) for each of the next requests
        self._answers_left: int | None = None  # None = healthy; 0 = dead
        self._lock = threading.Lock()
        self.holds = Holds()  # requests to hold until the test releases them (by operation)
        self._dir = tempfile.TemporaryDirectory(prefix="fake-ews-")
        self.ca_path: str | None = None
        context = None
        if tls:
            ca = trustme.CA()
            self.ca_path = str(Path(self._dir.name) / "ca.pem")
            ca.cert_pem.write_to_path(self.ca_path)
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        self._server = _Server(self, context)
        self.port = self._server.server_address[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}{PATH}"
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def __enter__(self) -> FakeEws:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.holds.release_all()
        self._server.shutdown()
        self._server.server_close()
        self._dir.cleanup()

    # -- test controls --

    def server_busy_next(self, times: int = 1, back_off_ms: int = 100) -> None:
        """The next ``times`` requests get an ErrorServerBusy SOAP fault (HTTP 500) whose
        MessageXml carries BackOffMilliseconds = ``back_off_ms``."""
        with self._lock:
            self._busy.extend([back_off_ms] * times)

    def invalidate_sync_states(self) -> None:
        """Every sync state issued so far is refused with ErrorInvalidSyncStateData."""
        for box in self.mailboxes.values():
            with box.lock:
                box.epoch += 1

    def die_after(self, n_requests: int) -> None:
        """Answer ``n_requests`` more requests, then close every connection without answering."""
        with self._lock:
            self._answers_left = n_requests

    def revive(self) -> None:
        """Answer requests again after :meth:`die_after`."""
        with self._lock:
            self._answers_left = None

    # -- dispatch --

    def _serve(self, h: _Handler) -> None:
        body = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        try:
            root = etree.fromstring(body)
            op_elem = root.find(f"{{{SOAP}}}Body")[0]
            operation = etree.QName(op_elem).localname
        except (etree.XMLSyntaxError, TypeError, IndexError):
            root = op_elem = None
            operation = "?"
        with self._lock:
            self.requests.append(operation)
            dead = self._answers_left == 0
            if self._answers_left:
                self._answers_left -= 1
            busy = None if dead or not self._busy else self._busy.pop(0)
        self.holds.check(operation)
        if dead:
            h.close_connection = True  # the server died: hang up without a word
            return
        if h.path.split("?")[0].lower() != PATH.lower():
            return h.reply(404, b"Not Found", "text/plain")
        if self._credentials and not self._authorized(h.headers.get("Authorization", "")):
            return h.reply(401, b"", "text/plain", WWW_Authenticate='Basic realm="fake-ews"')
        if busy is not None:
            return self._fault(h, "ErrorServerBusy", "The server cannot service this request "
                               "right now. Try again later.", back_off_ms=busy)  # fmt: skip
        handler = getattr(self, f"_op_{operation}", None)
        if root is None or handler is None:
            return self._fault(
                h, "ErrorSchemaValidation", f"The fake EWS does not implement {operation}."
            )
        response = _el(None, f"m:{operation}Response")
        messages = _el(response, "m:ResponseMessages")
        box = self.mailboxes.get((h.headers.get("X-AnchorMailbox") or "").lower())
        for fill in handler(op_elem, box):
            message = _el(messages, f"m:{operation}ResponseMessage")
            try:
                fill(message)
            except EwsError as exc:
                for child in list(message):
                    message.remove(child)
                message.set("ResponseClass", "Error")
                _el(message, "m:MessageText", exc.text)
                _el(message, "m:ResponseCode", exc.code)
                _el(message, "m:DescriptiveLinkKey", 0)
                if operation == "SyncFolderItems":  # exchangelib reads these before the code
                    _el(message, "m:SyncState")
                    _el(message, "m:IncludesLastItemInRange", True)
            else:
                message.set("ResponseClass", "Success")
                message.insert(0, _el(None, "m:ResponseCode", "NoError"))
        self._send(h, 200, response)

    def _authorized(self, header: str) -> bool:
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return (user, password) == self._credentials

    def _send(self, h: _Handler, status: int, content: etree._Element) -> None:
        envelope = _el(None, "s:Envelope")
        header = _el(envelope, "s:Header")
        _el(header, "t:ServerVersionInfo", MajorVersion=15, MinorVersion=1, MajorBuildNumber=2507,
            MinorBuildNumber=6, Version="Exchange2016")  # fmt: skip
        _el(envelope, "s:Body").append(content)
        data = etree.tostring(envelope, xml_declaration=True, encoding="utf-8")
        h.reply(status, data, "text/xml; charset=utf-8")

    def _fault(self, h: _Handler, code: str, text: str, back_off_ms: int | None = None) -> None:
        fault = _el(None, "s:Fault")
        etree.SubElement(fault, "faultcode", nsmap={"a": TNS}).text = f"a:{code}"
        etree.SubElement(fault, "faultstring").text = text
        detail = etree.SubElement(fault, "detail")
        _el(detail, "e:ResponseCode", code)
        _el(detail, "e:Message", text)
        if back_off_ms is not None:
            xml = _el(detail, "t:MessageXml")
            _el(xml, "t:Value", back_off_ms, Name="BackOffMilliseconds")
        self._send(h, 500, fault)

    # -- helpers for handlers --

    def _folder(self, elem: etree._Element, box: FakeMailbox | None) -> tuple[FakeMailbox, str]:
        """(mailbox, folder name) of a t:DistinguishedFolderId or t:FolderId."""
        if etree.QName(elem).localname == "DistinguishedFolderId":
            address = elem.findtext(f"{{{TNS}}}Mailbox/{{{TNS}}}EmailAddress")
            if address:
                box = self.mailboxes.get(address.lower())
            if box is None:
                raise EwsError("ErrorNonExistentMailbox", f"No mailbox with address {address}.")
            name = elem.get("Id")
        else:
            token, _, name = _unb64(elem.get("Id", "")[5:]).partition(":")
            box = next((b for b in self.mailboxes.values() if b.token == token), None)
            if box is None:
                raise EwsError("ErrorFolderNotFound", "The specified folder could not be found.")
        if name not in FOLDERS:
            raise EwsError("ErrorFolderNotFound", "The specified folder could not be found.")
        return box, name

    def _item(self, item_id: str) -> tuple[FakeMailbox, _Item, int | None]:
        token, serial, occurrence = _split_item_id(item_id)
        box = next((b for b in self.mailboxes.values() if b.token == token), None)
        item = box._items.get(serial) if box else None
        count = item and item.data.get("recurrence_weekly_count")
        if item is None or item.deleted or (occurrence and not 1 <= occurrence <= (count or 0)):
            raise EwsError("ErrorItemNotFound", "The specified object was not found in the store.")
        return box, item, occurrence

    # -- operations: each yields one fill(response_message) per response message --

    def _op_GetFolder(self, op, anchor):
        def fill(message, ref):
            box, name = self._folder(ref, anchor)
            display, folder_class, parent, tag = FOLDERS[name]
            with box.lock:
                items = box.items(name) if name in MAIL_FOLDERS + ("calendar",) else []
                unread = sum(1 for i in items if i.kind == "message" and not i.data["is_read"])
            folder = _el(_el(message, "m:Folders"), f"t:{tag}")
            _el(folder, "t:FolderId", Id=box.folder_id(name), ChangeKey="AQAAAA==")
            if parent:
                _el(folder, "t:ParentFolderId", Id=box.folder_id(parent), ChangeKey="AQAAAA==")
            if folder_class:
                _el(folder, "t:FolderClass", folder_class)
            _el(folder, "t:DisplayName", display)
            _el(folder, "t:TotalCount", len(items))
            children = sum(1 for f in FOLDERS.values() if f[2] == name)
            _el(folder, "t:ChildFolderCount", children)
            if tag == "Folder":
                _el(folder, "t:UnreadCount", unread)
            _el(folder, "t:DistinguishedFolderId", name)

        for ref in op.find(f"{{{MNS}}}FolderIds"):
            yield lambda message, ref=ref: fill(message, ref)

    def _op_SyncFolderItems(self, op, anchor):
        def fill(message):
            box, name = self._folder(op.find(f"{{{MNS}}}SyncFolderId")[0], anchor)
            fields = _shape(op.find(f"{{{MNS}}}ItemShape"))
            limit = min(int(op.findtext(f"{{{MNS}}}MaxChangesReturned") or 512), self.page_size)
            with box.lock:
                known = _decode_state(box, name, op.findtext(f"{{{MNS}}}SyncState"))
                pending = []  # (seq, serial, kind, item)
                items = box.items(name, deleted=True)
                for item in items:
                    if item.deleted and item.serial in known:
                        pending.append((item.seq, item.serial, "Delete", item))
                    elif not item.deleted and item.serial not in known:
                        pending.append((item.seq, item.serial, "Create", item))
                    elif not item.deleted and known[item.serial] != item.version:
                        pending.append((item.seq, item.serial, "Update", item))
                for serial in set(known) - {i.serial for i in items}:
                    pending.append((0, serial, "Delete", None))  # gone without a trace
                pending.sort(key=lambda row: row[:2])
                page = pending[:limit]
                for _, serial, kind, item in page:
                    if kind == "Delete":
                        known.pop(serial, None)
                    else:
                        known[serial] = item.version
                _el(message, "m:SyncState", _encode_state(box, name, known))
                _el(message, "m:IncludesLastItemInRange", len(pending) <= limit)
                changes = _el(message, "m:Changes")
                for _, serial, kind, item in page:
                    change = _el(changes, f"t:{kind}")
                    if kind == "Delete":
                        ck = box.change_key(item) if item else "CQAAAA=="
                        _el(change, "t:ItemId", Id=box.item_id(serial), ChangeKey=ck)
                    else:
                        _write_item(change, box, item, fields)

        yield fill

    def _op_GetItem(self, op, anchor):
        fields = _shape(op.find(f"{{{MNS}}}ItemShape"))

        def fill(message, ref):
            box, item, occurrence = self._item(ref.get("Id", ""))
            with box.lock:
                _write_item(_el(message, "m:Items"), box, item, fields, occurrence)

        for ref in op.find(f"{{{MNS}}}ItemIds"):
            yield lambda message, ref=ref: fill(message, ref)

    def _op_FindItem(self, op, anchor):
        fields = _shape(op.find(f"{{{MNS}}}ItemShape"))
        view = op.find(f"{{{MNS}}}CalendarView")
        paged = op.find(f"{{{MNS}}}IndexedPageItemView")

        def fill(message, ref):
            if (
                op.find(f"{{{MNS}}}Restriction") is not None
                or op.find(f"{{{MNS}}}QueryString") is not None
            ):
                raise EwsError("ErrorInvalidOperation", "The fake EWS cannot filter FindItem.")
            box, name = self._folder(ref, anchor)
            with box.lock:
                if view is not None:
                    rows = self._occurrences(box, name, view)
                    limit = int(view.get("MaxEntriesReturned") or len(rows) or 1)
                    offset = 0
                else:
                    rows = [(i, None) for i in box.items(name)]
                    rows.sort(key=lambda r: (r[0].created, r[0].serial), reverse=True)  # newest 1st
                    limit = (
                        int(paged.get("MaxEntriesReturned") or 100) if paged is not None else 100
                    )
                    offset = int(paged.get("Offset") or 0) if paged is not None else 0
                page = rows[offset : offset + limit]
                last = offset + len(page) >= len(rows)
                folder = _el(message, "m:RootFolder", TotalItemsInView=len(rows),
                             IncludesLastItemInRange=str(last).lower())  # fmt: skip
                if view is None and not last:
                    folder.set("IndexedPagingOffset", str(offset + len(page)))
                holder = _el(folder, "t:Items")
                for item, occurrence in page:
                    _write_item(holder, box, item, fields, occurrence)

        for ref in op.find(f"{{{MNS}}}ParentFolderIds"):
            yield lambda message, ref=ref: fill(message, ref)

    @staticmethod
    def _occurrences(box: FakeMailbox, name: str, view) -> list[tuple[_Item, int | None]]:
        """Single items and occurrences of series overlapping the view, by start."""
        start, end = _parse_dt(view.get("StartDate")), _parse_dt(view.get("EndDate"))
        rows = []
        for item in (i for i in box.items(name) if i.kind == "event"):
            count = item.data["recurrence_weekly_count"]
            for n in range(1, (count or 1) + 1):
                shift = timedelta(weeks=n - 1)
                if item.data["start"] + shift < end and item.data["end"] + shift > start:
                    rows.append(
                        (item.data["start"] + shift, item.serial, item, n if count else None)
                    )
        rows.sort(key=lambda r: r[:2])
        return [(item, occurrence) for _, _, item, occurrence in rows]
