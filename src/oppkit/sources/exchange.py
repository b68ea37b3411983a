"""Exchange mailboxes and calendars through EWS (exchangelib), incremental by sync state.

Why: many sales teams live in Exchange. Mail folders (Inbox and Sent Items by default) are
read with SyncFolderItems: each page of changes is fetched as MIME, parsed by the same
:func:`oppkit.sources.mail.parse_message` as every other mail source (in worker
processes), and followed by a
checkpoint holding the EWS sync state, so a run resumes page by page. ``ErrorInvalidSyncStateData`` means the server forgot the
state: the folder is read again from the start (rows are upserted, never doubled).
Calendars are read as a view over a window, so recurring meetings arrive expanded, with
organizer, attendees and their responses. EWS throttling (``ErrorServerBusy``) is
honoured by exchangelib's fault-tolerant retry policy, which waits the back-off the
server asks for; a 401 is a refused login, not throttling: it fails at once, in one line.

Example::

    settings = ExchangeSettings(endpoint="https://mail.example.com/EWS/Exchange.asmx",
                                mailboxes=("ava@example.com",), username="svc", password=...)
    for record in read_exchange_mail(settings, previous={}):
        ...
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from exchangelib import (
    DELEGATE,
    IMPERSONATION,
    Account,
    Build,
    Configuration,
    Credentials,
    EWSDateTime,
    FaultTolerance,
    OAuth2Credentials,
    Version,
)
from exchangelib import UTC as EWS_UTC
from exchangelib.errors import (
    ErrorInvalidSyncStateData,
    ErrorNonExistentMailbox,
    TransportError,
    UnauthorizedError,
)
from exchangelib.items import Message
from exchangelib.properties import DistinguishedFolderId, FieldPath, ItemId, Mailbox
from exchangelib.services import GetItem, SyncFolderItems

from ..config import Settings, env_setting
from ..errors import ConfigError, SourceError
from ..redact import remember
from .declaration import SourceOptions
from .mail import parsed
from .page_ahead import one_ahead
from .parse_ahead import Parse
from .records import ActivityRecord, Checkpoint, Participant, Record, Skipped
from .text import make_snippet

log = logging.getLogger(__name__)
PAGE = 100
AUTH_TYPES = {
    "basic": "basic",
    "ntlm": "NTLM",
    "noauth": "no authentication",
    "oauth2": "OAuth 2.0",
}


@dataclass(frozen=True)
class ExchangeSettings:
    endpoint: str
    mailboxes: tuple[str, ...]
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    auth: str = "ntlm"  # basic, ntlm, noauth, oauth2 (client credentials)
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    tenant_id: str | None = None
    impersonation: bool = False  # a service account reading others' mailboxes
    folders: tuple[str, ...] = ("inbox", "sent")
    version: tuple[int, int] | None = (15, 1)  # skips the version probe; None = probe
    max_wait: float = 300.0  # longest throttling back-off to sit out
    ca_file: str | None = None

    def describe(self) -> str:
        """Which mailboxes, for messages and sync_runs; never includes a secret."""
        return f"{','.join(self.mailboxes)}@{self.endpoint}"


def exchange_servers(options: SourceOptions, settings: Settings) -> list[ExchangeSettings]:
    """The endpoint and mailboxes the ``--ews-*`` options name; secrets from OPPKIT_EWS_*."""
    if not options.ews_mailbox:
        raise ConfigError("--ews-url needs at least one --ews-mailbox")
    return [
        ExchangeSettings(
            endpoint=options.ews_url,
            mailboxes=tuple(options.ews_mailbox),
            username=options.ews_user,
            password=env_setting("EWS_PASSWORD"),
            auth=options.ews_auth,
            client_id=env_setting("EWS_CLIENT_ID"),
            client_secret=env_setting("EWS_CLIENT_SECRET"),
            tenant_id=env_setting("EWS_TENANT_ID"),
            impersonation=options.ews_impersonation,
            folders=tuple(options.ews_folder or ("inbox", "sent")),
            ca_file=options.ews_ca_file,
        )
    ]


class _CaAdapter(requests.adapters.HTTPAdapter):
    """exchangelib's HTTP adapter, trusting a given CA for the endpoints registered here."""

    ca_files: dict[str, str] = {}  # endpoint -> CA file

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        for endpoint, ca_file in self.ca_files.items():
            if (request.url or "").startswith(endpoint):
                kwargs["verify"] = ca_file
        return super().send(request, *args, **kwargs)


class _LoginAware(FaultTolerance):
    """exchangelib's fault tolerance, except that a 401 is a refused login, not throttling.

    exchangelib's FaultTolerance reads every 401 as "back off" (some servers answer 401
    when they throttle), so a wrong password waited out ``max_wait`` before failing; oppkit
    fails at once with one line instead. Throttling answers (ErrorServerBusy, 503) still
    back off as the server asks.
    """

    def raise_response_errors(self, response: requests.Response) -> None:
        if response.status_code == 401:
            raise UnauthorizedError(f"Invalid credentials for {response.url}")
        return super().raise_response_errors(response)


def _login_refused(settings: ExchangeSettings, exc: UnauthorizedError) -> SourceError:
    who = settings.client_id if settings.auth == "oauth2" else settings.username
    secret = "OPPKIT_EWS_CLIENT_SECRET" if settings.auth == "oauth2" else "OPPKIT_EWS_PASSWORD"
    reason = "wrong user or password" if "Invalid credentials" in str(exc) else str(exc)
    return SourceError(
        f"Exchange refused the login of {who or '(no user)'} at {settings.endpoint} ({reason}); "
        f"check --ews-user, --ews-auth {settings.auth} and {secret}"
    )


def _account(settings: ExchangeSettings, mailbox: str) -> Account:
    remember(settings.password, settings.client_secret)
    if settings.auth == "oauth2":
        credentials: Any = OAuth2Credentials(
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            tenant_id=settings.tenant_id,
        )
    else:
        credentials = Credentials(settings.username or "", settings.password or "")
    if settings.ca_file:
        from exchangelib.protocol import BaseProtocol

        _CaAdapter.ca_files[settings.endpoint] = settings.ca_file
        BaseProtocol.HTTP_ADAPTER_CLS = _CaAdapter  # other endpoints behave as before
    config = Configuration(
        service_endpoint=settings.endpoint,
        credentials=credentials,
        auth_type=AUTH_TYPES.get(settings.auth, settings.auth),
        version=Version(build=Build(*settings.version)) if settings.version else None,
        retry_policy=_LoginAware(max_wait=settings.max_wait),
    )
    return Account(
        primary_smtp_address=mailbox, config=config, autodiscover=False,
        access_type=IMPERSONATION if settings.impersonation else DELEGATE,
    )  # fmt: skip


class _WholeBody:
    """A response whose body exchangelib reads in 64 KB pieces instead of single bytes."""

    def __init__(self, response: Any) -> None:
        self._response = response

    def iter_content(self) -> Iterator[bytes]:
        return self._response.iter_content(chunk_size=2**16)


class _ChunkedRead:
    """Mixin for exchangelib services: the SOAP answer is read 64 KB at a time.

    exchangelib 5.x gives lxml ``response.iter_content()``, whose default chunk is one
    byte: a GetItem answer of 100 messages' MIME (about 1 MB) took 0.3-0.5 s of Python
    looping over single bytes before lxml parsed it in 2 ms; the same in 64 KB pieces
    (requests already holds the whole body of these non-streaming answers).
    """

    @classmethod
    def _get_soap_parts(cls, response: Any) -> Any:
        return super()._get_soap_parts(_WholeBody(response))  # type: ignore[misc]


@dataclass(frozen=True, slots=True)
class _Fetched:
    """The properties of a message the mail source reads (GetItem)."""

    id: str
    mime_content: bytes | None
    conversation_id: Any  # exchangelib's ConversationId, or None
    datetime_received: datetime | None


_ITEM_ID = ItemId.response_tag()
_FETCHED_FIELDS = {
    name: Message.get_field_by_fieldname(name)
    for name in ("mime_content", "conversation_id", "datetime_received")
}
FETCHED = frozenset(FieldPath(field=field) for field in _FETCHED_FIELDS.values())


class _SyncFolderItems(_ChunkedRead, SyncFolderItems):
    """SyncFolderItems giving the ItemId of a created or updated item, not a whole item.

    exchangelib builds a full Message (its ~70 fields each looked up in the XML) per
    change, about 0.4 ms; the ids are all the mail source needs of them.
    """

    def _elem_to_obj(self, elem: Any) -> tuple[str, Any]:
        kind = self.change_types_map[elem.tag]
        if kind not in (self.CREATE, self.UPDATE):
            return super()._elem_to_obj(elem)
        return kind, ItemId.from_xml(elem=elem[0].find(_ITEM_ID), account=self.account)


class _GetItem(_ChunkedRead, GetItem):
    """GetItem reading the properties it asked for (exchangelib's parsing of each), not a
    whole Message: exchangelib's model looks up every field it knows, about 0.5 ms a
    message."""

    def _elem_to_obj(self, elem: Any) -> _Fetched:
        values = {
            n: f.from_xml(elem=elem, account=self.account) for n, f in _FETCHED_FIELDS.items()
        }
        return _Fetched(id=elem.find(_ITEM_ID).get("Id"), **values)


# Exchange's well-known folders, read by distinguished id: no GetFolder round trips.
DISTINGUISHED = {"inbox": "inbox", "sent": "sentitems", "sentitems": "sentitems"}


def _folder(account: Account, name: str):  # noqa: ANN202
    """What SyncFolderItems reads: Inbox and Sent Items by their distinguished ids (in
    the request itself, as exchangelib would name them after looking them up), any other
    folder found by name under the Top of Information Store."""
    if name.lower() in DISTINGUISHED:
        return DistinguishedFolderId(
            id=DISTINGUISHED[name.lower()],
            mailbox=Mailbox(email_address=account.primary_smtp_address),
        )
    return account.root / "Top of Information Store" / name


def _mail_page(account: Account, folder: Any, state: str | None) -> tuple[list, str | None, bool]:
    """One SyncFolderItems page: (changes, new state, done)."""
    svc = _SyncFolderItems(account=account)
    changes = list(
        svc.call(
            folder=folder,
            shape="IdOnly",  # the rest comes with the MIME (GetItem)
            additional_fields=None,
            sync_state=state,
            ignore=None,
            max_changes_returned=PAGE,
            sync_scope=None,
        )  # fmt: skip
    )
    done = svc.includes_last_item_in_range or svc.sync_state == state
    return changes, svc.sync_state, done


def _fetched(account: Account, changes: Sequence) -> list:
    """The created or updated messages of a page, with their MIME (GetItem)."""
    # A message deleted from one mailbox is still a touch point that happened (and may
    # sit in other mailboxes), so deletions do not remove the activity.
    ids = [item for kind, item in changes if kind in ("create", "update")]
    if not ids:
        return []
    # GetItem as account.fetch() sends it, without the root folder lookup fetch() makes
    # to check the field names.
    return list(
        _GetItem(account=account).call(items=ids, additional_fields=FETCHED, shape="IdOnly")
    )


def _jobs_of(items: Sequence, where: str) -> Iterator[Parse | Record]:
    for item in items:
        if isinstance(item, Exception):
            yield Skipped(f"could not fetch item ({type(item).__name__})", where)
            continue
        arrived = item.datetime_received and _utc(item.datetime_received)  # date's fallback
        thread = item.conversation_id.id if item.conversation_id is not None else None
        yield Parse((item.mime_content or b"", f"{where} {item.id[:12]}", thread, arrived))


def _folder_pages(
    account: Account, folder: Any, state: str | None, obj: str
) -> Iterator[tuple[list, str | None]]:
    """(fetched messages, sync state after them) per SyncFolderItems page."""
    while True:
        try:
            changes, new_state, done = _mail_page(account, folder, state)
        except ErrorInvalidSyncStateData:
            log.warning("%s: the server forgot our sync state; reading it again", obj)
            state = None
            continue
        yield _fetched(account, changes), new_state
        state = new_state
        if done:
            return


def read_exchange_mail(
    settings: ExchangeSettings, previous: Mapping[str, dict] | None = None
) -> Iterator[Record]:
    """Email activities from the mailboxes' folders, page by page with checkpoints.

    The next page is fetched while this one is parsed (:func:`one_ahead`), and the
    messages are parsed in worker processes (:func:`oppkit.sources.mail.parsed`).
    """
    previous = previous or {}
    for mailbox in settings.mailboxes:
        try:
            yield from parsed(_mailbox_jobs(settings, mailbox, previous), PARSE_ITEM)
        except UnauthorizedError as exc:
            raise _login_refused(settings, exc) from exc
        except ErrorNonExistentMailbox as exc:
            raise SourceError(f"Exchange refused {mailbox}: {type(exc).__name__}: {exc}") from exc
        except (TransportError, requests.ConnectionError, ConnectionError) as exc:
            raise SourceError(
                f"cannot reach Exchange at {settings.endpoint} ({type(exc).__name__}); "
                "what was synced so far is kept, the next run resumes"
            ) from exc


PARSE_ITEM = "oppkit.sources.mail:parse_in_thread"


def _mailbox_jobs(
    settings: ExchangeSettings, mailbox: str, previous: Mapping[str, dict]
) -> Iterator[Parse | Record]:
    account = _account(settings, mailbox)
    for name in settings.folders:
        obj = f"ews:{mailbox}:{name}"
        state = (previous.get(obj) or {}).get("sync_state")
        pages = _folder_pages(account, _folder(account, name), state, obj)
        for items, new_state in one_ahead(pages):
            yield from _jobs_of(items, f"{mailbox} {name}")
            yield Checkpoint(obj, {"sync_state": new_state})


def _email(mailbox: Any) -> tuple[str | None, str | None]:
    if mailbox is None:
        return None, None
    return getattr(mailbox, "email_address", None), getattr(mailbox, "name", None)


def _utc(value: datetime) -> datetime:
    """A plain aware UTC datetime from exchangelib's EWSDateTime (which refuses stdlib UTC)."""
    return datetime.fromtimestamp(value.timestamp(), UTC)


def _ews(value: datetime) -> EWSDateTime:
    return EWSDateTime.fromtimestamp(value.timestamp(), tz=EWS_UTC)


def _meeting(item: Any, now: datetime) -> ActivityRecord | Skipped:
    start, end = getattr(item, "start", None), getattr(item, "end", None)
    if not isinstance(start, datetime):
        return Skipped("meeting without a start time", f"calendar {item.subject!r}")
    start = _utc(start)
    uid = (
        item.uid or hashlib.sha256(f"{start.isoformat()}|{item.subject}".encode()).hexdigest()[:32]
    )
    recurring = getattr(item, "type", None) in ("Occurrence", "Exception")
    source_id = f"{uid}/{start:%Y%m%dT%H%M%SZ}" if recurring else uid
    participants = []
    email, name = _email(item.organizer)
    if email:
        participants.append(Participant(email=email, name=name, role="organizer"))
    for attendee in (item.required_attendees or []) + (item.optional_attendees or []):
        email, name = _email(attendee.mailbox)
        if email:
            response = (attendee.response_type or "").lower() or None
            participants.append(
                Participant(email=email, name=name, role="attendee", response=response)
            )
    duration = (_utc(end) - start).total_seconds() / 60 if isinstance(end, datetime) else None
    body = str(item.body) if item.body else None
    return ActivityRecord(
        source="calendar", source_id=source_id, kind="meeting", occurred_at=start,
        subject=item.subject, snippet=make_snippet(body), participants=participants,
        thread_id=uid, duration_minutes=duration, location=item.location,
        is_planned=start > now, status="cancelled" if item.is_cancelled else "confirmed",
    )  # fmt: skip


def read_exchange_calendar(
    settings: ExchangeSettings,
    previous: Mapping[str, dict] | None = None,
    *,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
) -> Iterator[Record]:
    """Meetings (recurrences expanded) in a window, per mailbox calendar."""
    now = datetime.now(UTC)
    start = window_start or now - timedelta(days=365)
    end = window_end or now + timedelta(days=180)
    for mailbox in settings.mailboxes:
        try:
            account = _account(settings, mailbox)
            view = account.calendar.view(start=_ews(start), end=_ews(end))
            count = 0
            for item in view:
                yield _meeting(item, now)
                count += 1
            yield Checkpoint(f"ews-calendar:{mailbox}", {"window": [start.isoformat(), end.isoformat()],
                                                         "items": count})  # fmt: skip
        except UnauthorizedError as exc:
            raise _login_refused(settings, exc) from exc
        except ErrorNonExistentMailbox as exc:
            raise SourceError(f"Exchange refused {mailbox}: {type(exc).__name__}: {exc}") from exc
        except (TransportError, requests.ConnectionError, ConnectionError) as exc:
            raise SourceError(
                f"cannot reach Exchange at {settings.endpoint} ({type(exc).__name__})"
            ) from exc


__all__ = ["ExchangeSettings", "exchange_servers", "read_exchange_calendar", "read_exchange_mail"]
