"""Meetings from a CalDAV server (Nextcloud, Radicale, Fastmail, iCloud...), incrementally.

Why: a team calendar on a CalDAV server is the live version of the .ics exports that
:mod:`oppkit.sources.ics` reads; syncing it directly keeps the timeline current without
anyone exporting files.

What: every event becomes exactly the :class:`ActivityRecord` the .ics source makes of it
(the same functions build it: source ``calendar``, the UID or ``UID/<occurrence>`` as id,
UTC times, recurrence expanded within the window by :mod:`oppkit.sources.recurrence`), so a
meeting seen in an export and on the server is one activity.

How, per calendar of the principal:

1. List what changed. With a sync token from the last run, a ``sync-collection`` REPORT
   (RFC 6578) names only the members added, changed or removed since then. Without one,
   or when the server refuses the token (expired, unknown), the same REPORT without a
   token lists every member with its ETag and hands out a fresh token; a server without
   sync-collection is listed with a depth-1 PROPFIND of the ETags instead. A full listing
   is compared with the ETags in the cursor: only new and changed members are fetched, and
   members the cursor knows but the listing lacks are gone.
2. Fetch the changed members with ``calendar-multiget``, :data:`BATCH` at a time, and turn
   each into records; an object that does not parse becomes :class:`Skipped`.
3. Yield :class:`Deleted` for the ids of removed members (and for ids an edited member no
   longer produces, e.g. a dropped occurrence), unless another member still yields them
   (the same meeting in two calendars).
4. Yield a :class:`Checkpoint` ``caldav:<calendar url>`` after each batch with
   ``{"sync_token": ..., "hrefs": {href: {"etag": ..., "ids": [...]}}}``. Batches before
   the last keep the previous token, so a run killed half way lists the same changes
   again next time and skips, by ETag, what it already stored.

An unreachable server (or one that fails half way) raises :class:`SourceError`; what was
checkpointed before stays committed and the next run carries on from there.

Example::

    records = read_caldav("https://dav.example.com/", runner.cursors(),
                          username="ava", password=env_setting("CALDAV_PASSWORD"))
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import caldav
from caldav.elements import dav
from caldav.lib import error as dav_error
from caldav.lib.url import URL

from oppkit.config import Settings, env_setting
from oppkit.errors import ConfigError, SourceError
from oppkit.sources.declaration import SourceOptions
from oppkit.sources.ics import SOURCE, ics_records
from oppkit.sources.records import ActivityRecord, Checkpoint, Deleted, Record, Skipped
from oppkit.sources.recurrence import Window, calendar_window

log = logging.getLogger(__name__)

OBJECT = "Event"  # the upstream object name for Deleted (hides the activity row)
CURSOR_PREFIX = "caldav:"
BATCH = 100  # members fetched per calendar-multiget and covered by one checkpoint
TIMEOUT = 60  # seconds per HTTP request

_NETWORK_ERRORS = (dav_error.DAVError, OSError)  # niquests/requests errors are OSErrors
_OCCURRENCE_KEY = "%Y%m%dT%H%M%SZ"  # how ics.occurrence_key spells an occurrence


@dataclass(frozen=True)
class CaldavAccount:
    """One CalDAV login: the server, who, which calendars (default all), a CA to trust."""

    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    calendars: tuple[str, ...] | None = None
    ca_file: str | None = None

    def describe(self) -> str:
        """Which account, for messages and lock names; never includes the password."""
        return f"{self.username or ''}@{self.url}"


def caldav_accounts(options: SourceOptions, settings: Settings) -> list[CaldavAccount]:
    """The account the ``--caldav-*`` options name; the password from OPPKIT_CALDAV_PASSWORD."""
    calendars = tuple(options.caldav_calendar) if options.caldav_calendar else None
    return [
        CaldavAccount(
            url=options.caldav_url,
            username=options.caldav_user,
            password=env_setting("CALDAV_PASSWORD"),
            calendars=calendars,
            ca_file=options.caldav_ca_file,
        )
    ]


def read_caldav_account(
    account: CaldavAccount, previous: Mapping[str, dict] | None = None
) -> Iterator[Record]:
    """:func:`read_caldav` for a :class:`CaldavAccount` (the shape every reader has)."""
    return read_caldav(
        account.url,
        previous,
        username=account.username,
        password=account.password,
        calendars=account.calendars,
        session_verify=account.ca_file,
    )


def read_caldav(
    url: str,
    previous: Mapping[str, dict] | None = None,
    *,
    username: str | None = None,
    password: str | None = None,
    calendars: Sequence[str] | None = None,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
    session_verify: str | bool | None = None,
    now: datetime | None = None,
) -> Iterator[Record]:
    """Meetings from a CalDAV server (the `caldav` client), incremental per calendar.

    ``previous`` are the runner's cursors; ``calendars`` limits the sync to calendars whose
    display name or URL is listed; ``session_verify`` is a CA bundle path or False for
    TLS verification (default: verify). The password is only handed to the HTTP client.
    """
    now = now or datetime.now(UTC)
    if window_start is None or window_end is None:
        default = calendar_window(now)
        window_start, window_end = window_start or default[0], window_end or default[1]
    window = (window_start, window_end)
    previous = previous or {}
    server = _Server(url, password)
    with server.talking("connect"):
        client = caldav.DAVClient(
            url,
            username=username,
            password=password,
            timeout=TIMEOUT,
            ssl_verify_cert=True if session_verify is None else session_verify,
        )
    with client:
        with server.talking("list the calendars"):
            found = client.get_principal().get_calendars()
        chosen = _select(found, calendars, server)
        holders = _holders(previous)
        for calendar in chosen:
            sync = _CalendarSync(calendar, previous, holders, window, now, server)
            yield from sync.run()


class _Server:
    """The server as it may appear in messages: no credentials, ever."""

    def __init__(self, url: str, password: str | None) -> None:
        parts = urlsplit(url)
        netloc = parts.netloc.rpartition("@")[2]
        self.url = urlunsplit((parts.scheme, netloc, parts.path, "", "")) or "(no URL)"
        self._secrets = [s for s in (password, parts.password) if s]

    @contextlib.contextmanager
    def talking(self, what: str) -> Iterator[None]:
        """Turn HTTP and DAV failures into one-line SourceErrors."""
        try:
            yield
        except _NETWORK_ERRORS as exc:
            raise SourceError(
                f"CalDAV server {self.url}: cannot {what}: {self.reason(exc)}"
            ) from None

    def reason(self, exc: BaseException) -> str:
        text = str(exc)
        errno = re.search(r"\[Errno -?\d+\] ([^'\"\)]+)", text)  # "Connection refused"
        if errno:
            text = errno.group(1)
        elif isinstance(exc, dav_error.NotFoundError):
            text = "not found (HTTP 404); is the URL right?"
        elif isinstance(exc, dav_error.AuthorizationError):
            text = f"access denied ({exc.reason}); are the user name and password right?"
        elif isinstance(exc, dav_error.DAVError):
            reason = exc.reason if exc.reason not in ("", "no reason") else text
            text = f"{type(exc).__name__}: {reason}"
        text = " ".join(text.split())[:300] or type(exc).__name__
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def _select(found: list, wanted: Sequence[str] | None, server: _Server) -> list:
    """The calendars named (display name or URL) in ``wanted``, in that order; else all."""
    if not wanted:
        return list(found)
    keys = []
    with server.talking("read the calendar names"):
        for calendar in found:
            url = _calendar_url(calendar)
            names = {calendar.get_display_name(), url, unquote(urlsplit(url).path)}
            keys.append({n.rstrip("/") for n in names if n})
    chosen: list = []
    missing = []
    for name in wanted:
        matches = [c for c, k in zip(found, keys, strict=True) if name.rstrip("/") in k]
        chosen.extend(c for c in matches if c not in chosen)
        if not matches:
            missing.append(name)
    if missing:
        have = ", ".join(sorted(k for ks in keys for k in ks if "/" not in k)) or "none"
        raise ConfigError(f"no calendar {', '.join(missing)} on {server.url} (it has: {have})")
    return chosen


def _calendar_url(calendar: Any) -> str:
    return str(calendar.url.canonical())


def _href(url: Any) -> str:
    """A member's path, unquoted, as the key to compare listings, fetches and cursors."""
    return unquote(URL.objectify(url).canonical().path)


def _holders(previous: Mapping[str, dict]) -> Counter[str]:
    """How many members (of every calendar synced before) yielded each activity id."""
    counts: Counter[str] = Counter()
    for name, cursor in previous.items():
        if name.startswith(CURSOR_PREFIX):
            for entry in ((cursor or {}).get("hrefs") or {}).values():
                counts.update(entry.get("ids") or [])
    return counts


class _CalendarSync:
    """One calendar: list the changes, fetch them, yield records, deletions, checkpoints."""

    def __init__(
        self,
        calendar: Any,
        previous: Mapping[str, dict],
        holders: Counter[str],
        window: Window,
        now: datetime,
        server: _Server,
    ) -> None:
        self.calendar = calendar
        self.url = _calendar_url(calendar)
        self.key = f"{CURSOR_PREFIX}{self.url}"
        state = previous.get(self.key) or {}
        self.token: str | None = state.get("sync_token")
        self.known: dict[str, dict[str, Any]] = dict(state.get("hrefs") or {})
        self.last_cursor = {"sync_token": self.token, "hrefs": dict(self.known)}
        self.holders = holders
        self.window = window
        self.now = now
        self.server = server
        self.orphans: set[str] = set()  # ids whose last holder went away in this batch

    def run(self) -> Iterator[Record]:
        with self.server.talking(f"list the changes of calendar {self.url}"):
            new_token, changed, removed = self._changes()
        batches = [changed[i : i + BATCH] for i in range(0, len(changed), BATCH)] or [[]]
        for number, batch in enumerate(batches, start=1):
            with self.server.talking(f"fetch events of calendar {self.url}"):
                fetched = self._fetch(batch)
            for url, etag in batch:
                yield from self._update(_href(url), fetched.get(_href(url)), etag)
            last = number == len(batches)
            if last:
                for href in removed:
                    self._forget(href)
            yield from self._deletions()
            checkpoint = self._checkpoint(new_token if last else self.token)
            if checkpoint is not None:
                yield checkpoint

    # -- listing ------------------------------------------------------------------------

    def _changes(self) -> tuple[str | None, list[tuple[Any, str | None]], list[str]]:
        """(new sync token, members to fetch as (url, etag), hrefs removed)."""
        listing: dict[str, tuple[Any, str | None]] | None = None
        removed: set[str] = set()
        complete = False
        if self.token:
            try:
                token, listing, removed, _ = self._sync_report(self.token)
            except dav_error.DAVError as exc:
                if self.calendar._is_genuine_authorization_error(exc):
                    raise
                reason = self.server.reason(exc)
                log.info("%s refused the sync token (%s): listing it again", self.url, reason)
        if listing is None:
            try:
                token, listing, removed, truncated = self._sync_report(None)
                complete = not truncated
            except dav_error.DAVError as exc:
                if self.calendar._is_genuine_authorization_error(exc):
                    raise
                reason = self.server.reason(exc)
                log.info("%s: no sync-collection (%s), comparing ETags", self.url, reason)
                token, listing, complete = None, self._etag_listing(), True
        if complete:
            removed = set(self.known) - set(listing)
        changed = [
            (url, etag)
            for href, (url, etag) in listing.items()
            if etag is None or (self.known.get(href) or {}).get("etag") != etag
        ]
        return token, changed, sorted(removed & set(self.known))

    def _sync_report(self, token: str | None) -> tuple[Any, dict, set[str], bool]:
        """One sync-collection REPORT: (token, {href: (url, etag)}, removed, truncated)."""
        result = self.calendar.get_objects_by_sync_token(
            sync_token=token, load_objects=False, disable_fallback=True
        )
        gone = {_href(url) for url in result.deleted_urls}
        listing: dict[str, tuple[Any, str | None]] = {}
        for obj in result:
            href = _href(obj.url)
            if href not in gone:
                listing[href] = (obj.url, obj.props.get(dav.GetEtag.tag))
        return result.sync_token, listing, gone, bool(result.truncated)

    def _etag_listing(self) -> dict[str, tuple[Any, str | None]]:
        """Every member with its ETag, from a depth-1 PROPFIND (servers without RFC 6578)."""
        response = self.calendar.get_properties([dav.GetEtag()], depth=1, parse_response_xml=False)
        own = _href(self.calendar.url).rstrip("/")
        listing: dict[str, tuple[Any, str | None]] = {}
        for path, props in response.expand_simple_props([dav.GetEtag()]).items():
            url = self.calendar.url.join(path)
            href = _href(url)
            if href.rstrip("/") != own and not href.endswith("/"):
                listing[href] = (url, props.get(dav.GetEtag.tag))
        return listing

    # -- fetching and records -----------------------------------------------------------

    def _fetch(self, batch: list[tuple[Any, str | None]]) -> dict[str, Any]:
        """The members' loaded objects by href; a member gone meanwhile is missing."""
        if not batch:
            return {}
        objects = self.calendar.multiget([url for url, _ in batch], raise_notfound=False)
        return {_href(obj.url): obj for obj in objects if obj.data is not None}

    def _update(self, href: str, obj: Any, listed_etag: str | None) -> Iterator[Record]:
        if obj is None:  # removed between the listing and the fetch
            self._forget(href)
            return
        records = _object_records(obj.data, href, self.window, self.now)
        yield from records
        ids = list(dict.fromkeys(r.source_id for r in records if isinstance(r, ActivityRecord)))
        old = (self.known.get(href) or {}).get("ids") or []
        # Occurrences of an edited series that fell out of the window are history, not
        # gone; and an edit we cannot read must not take the meeting off the timeline.
        unreadable = any(isinstance(r, Skipped) for r in records)
        kept = ids + [i for i in old if i not in ids and (unreadable or _outside(i, self.window))]
        self._hold(kept)
        self._drop(old)
        etag = obj.props.get(dav.GetEtag.tag) or listed_etag
        self.known[href] = {"etag": etag, "ids": kept}

    def _forget(self, href: str) -> None:
        entry = self.known.pop(href, None)
        if entry:
            self._drop(entry.get("ids") or [])

    def _hold(self, ids: list[str]) -> None:
        self.holders.update(ids)

    def _drop(self, ids: list[str]) -> None:
        for source_id in ids:
            self.holders[source_id] -= 1
            if self.holders[source_id] <= 0:
                self.orphans.add(source_id)

    def _deletions(self) -> Iterator[Deleted]:
        """Deleted for the ids nothing holds any more (after the batch's records)."""
        for source_id in sorted(self.orphans):
            if self.holders[source_id] <= 0:
                del self.holders[source_id]
                yield Deleted(source=SOURCE, object=OBJECT, source_id=source_id)
        self.orphans.clear()

    def _checkpoint(self, token: str | None) -> Checkpoint | None:
        cursor = {"sync_token": token, "hrefs": dict(self.known)}
        if cursor == self.last_cursor:
            return None
        self.last_cursor = cursor
        return Checkpoint(object=self.key, cursor=cursor)


def _object_records(data: str, href: str, window: Window, now: datetime) -> list[Record]:
    """The activities (and Skipped, Notice) of one calendar object, as the .ics source
    makes them; the member's href names it where the .ics source names the file."""
    return list(ics_records(data, href, window, now, what="object"))


def _outside(source_id: str, window: Window) -> bool:
    """Is this the id of an occurrence (``UID/<start>``) that starts outside the window?"""
    _, slash, key = source_id.rpartition("/")
    if not slash:
        return False
    try:
        start = datetime.strptime(key, _OCCURRENCE_KEY).replace(tzinfo=UTC)
    except ValueError:
        return False
    return not window[0] <= start < window[1]
