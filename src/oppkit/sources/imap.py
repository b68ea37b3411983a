"""Emails from an IMAP server, incremental by UIDVALIDITY + UID per folder.

Why: most mailboxes speak IMAP. A folder's messages carry UIDs that only grow while
its UIDVALIDITY stays the same, so the cursor is (UIDVALIDITY, last UID): a run fetches
only new messages in batches, with a checkpoint after each batch. A changed UIDVALIDITY
(the server rebuilt the folder) re-scans it; rows are upserted by Message-ID, so that
never duplicates. Messages are parsed by :func:`oppkit.sources.mail.parse_message`, the
same code as mbox exports (in worker processes: :func:`oppkit.sources.mail.parsed`).

Example::

    server = ImapSettings(host="imap.example.com", username="ava", password=os.environ[...])
    for record in read_imap(server, previous={}):
        ...
"""

from __future__ import annotations

import imaplib
import re
import ssl
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..config import Settings, env_setting
from ..errors import ConfigError, SourceError
from .declaration import SourceOptions
from .mail import parsed
from .parse_ahead import Parse
from .records import ActivityRecord, Checkpoint, Record, Skipped

BATCH = 200
_UID = re.compile(rb"UID (\d+)")


@dataclass(frozen=True)
class ImapSettings:
    host: str
    username: str
    password: str = field(repr=False)
    port: int | None = None
    security: str = "tls"  # tls (IMAPS), starttls, none
    folders: tuple[str, ...] = ("INBOX", "Sent")
    ca_file: str | None = None
    exclude_senders: tuple[str, ...] = ()
    exclude_domains: tuple[str, ...] = ()
    timeout: float = 60.0

    def describe(self) -> str:
        return f"{self.username}@{self.host}"


def imap_servers(options: SourceOptions, settings: Settings) -> list[ImapSettings]:
    """The mailbox the ``--imap-*`` options name; the password from OPPKIT_IMAP_PASSWORD."""
    password = env_setting("IMAP_PASSWORD")
    if not options.imap_user or password is None:
        raise ConfigError("IMAP needs --imap-user (or OPPKIT_IMAP_USER) and OPPKIT_IMAP_PASSWORD")
    return [
        ImapSettings(
            host=options.imap_host,
            port=options.imap_port,
            username=options.imap_user,
            password=password,
            security=options.imap_security,
            folders=tuple(options.imap_folder or ("INBOX", "Sent")),
            ca_file=options.imap_ca_file,
            exclude_senders=tuple(options.exclude_sender),
            exclude_domains=tuple(options.exclude_domain),
        )
    ]


def _connect(server: ImapSettings) -> imaplib.IMAP4:
    context = ssl.create_default_context(cafile=server.ca_file)
    try:
        if server.security == "tls":
            conn = imaplib.IMAP4_SSL(server.host, server.port or 993, ssl_context=context,
                                     timeout=server.timeout)  # fmt: skip
        else:
            conn = imaplib.IMAP4(server.host, server.port or 143, timeout=server.timeout)
            if server.security == "starttls":
                conn.starttls(ssl_context=context)
        conn.login(server.username, server.password)
        return conn
    except imaplib.IMAP4.error as exc:
        raise SourceError(f"IMAP login to {server.describe()} failed: {_text(exc)}") from exc
    except (OSError, ssl.SSLError) as exc:
        raise SourceError(f"cannot reach IMAP server {server.host}: {exc.strerror or exc}") from exc


def _text(exc: BaseException) -> str:
    value = exc.args[0] if exc.args else exc
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _select(conn: imaplib.IMAP4, folder: str) -> int | None:
    """Select read-only; the folder's UIDVALIDITY, or None when it does not exist."""
    typ, _ = conn.select(_quote(folder), readonly=True)
    if typ != "OK":
        return None
    _, data = conn.response("UIDVALIDITY")
    return int(data[0]) if data and data[0] else None


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _new_uids(conn: imaplib.IMAP4, after: int) -> list[int]:
    typ, data = conn.uid("SEARCH", f"UID {after + 1}:*")
    if typ != "OK":
        raise SourceError(f"IMAP search failed: {data}")
    uids = [int(u) for u in (data[0] or b"").split()]
    return sorted(u for u in uids if u > after)  # "n:*" also returns the last UID if < n


def _internaldate(response: bytes) -> datetime | None:
    """The server's INTERNALDATE (when the message arrived) in a FETCH response line."""
    moment = imaplib.Internaldate2tuple(response)
    return None if moment is None else datetime.fromtimestamp(time.mktime(moment), UTC)


def _fetch(
    conn: imaplib.IMAP4, uids: Sequence[int]
) -> Iterator[tuple[int, bytes, datetime | None]]:
    """(UID, raw message, INTERNALDATE) of each message."""
    typ, data = conn.uid("FETCH", ",".join(map(str, uids)), "(UID INTERNALDATE BODY.PEEK[])")
    if typ != "OK":
        raise SourceError(f"IMAP fetch failed: {data}")
    for item, after in zip(data, [*data[1:], b""], strict=True):
        if isinstance(item, tuple) and (match := _UID.search(item[0])):
            # the server may name INTERNALDATE before the message or after it
            closing = after if isinstance(after, bytes) else b""
            yield int(match.group(1)), item[1], _internaldate(item[0] + closing)


def _excluded(record: ActivityRecord, server: ImapSettings) -> bool:
    """A rep's private mail stays out: excluded senders or domains on any side."""
    if not (server.exclude_senders or server.exclude_domains):
        return False
    senders = {s.lower() for s in server.exclude_senders}
    domains = {d.lower().lstrip("@") for d in server.exclude_domains}
    for p in record.participants:
        email = p.email.lower()
        if p.role == "from" and email in senders:
            return True
        if email.rsplit("@", 1)[-1] in domains:
            return True
    return False


def read_folder(
    conn: imaplib.IMAP4, server: ImapSettings, folder: str, cursor: Mapping | None
) -> Iterator[Parse | Record]:
    """New messages of one folder as parse jobs, a checkpoint after every batch."""
    validity = _select(conn, folder)
    if validity is None:
        yield Skipped("no such folder", f"{server.describe()} {folder}")
        return
    cursor = cursor or {}
    last = int(cursor.get("last_uid", 0)) if cursor.get("uidvalidity") == validity else 0
    obj = f"imap:{server.describe()}:{folder}"
    uids = _new_uids(conn, last)
    for start in range(0, len(uids), BATCH):
        batch = uids[start : start + BATCH]
        for uid, raw, arrived in _fetch(conn, batch):
            yield Parse((raw, f"{folder} UID {uid}", arrived))
        yield Checkpoint(obj, {"uidvalidity": validity, "last_uid": batch[-1]})


def _jobs(
    conn: imaplib.IMAP4, server: ImapSettings, previous: Mapping[str, dict]
) -> Iterator[Parse | Record]:
    for folder in server.folders:
        obj = f"imap:{server.describe()}:{folder}"
        yield from read_folder(conn, server, folder, previous.get(obj))


def read_imap(server: ImapSettings, previous: Mapping[str, dict] | None = None) -> Iterator[Record]:
    """Email activities from the configured folders of one IMAP mailbox."""
    previous = previous or {}
    conn = _connect(server)
    try:
        # parsed in worker processes while the next messages are fetched (in order)
        for record in parsed(_jobs(conn, server, previous)):
            if isinstance(record, ActivityRecord) and _excluded(record, server):
                continue
            yield record
    except (TimeoutError, imaplib.IMAP4.abort, OSError) as exc:
        raise SourceError(
            f"IMAP server {server.host} dropped the connection ({_text(exc)}); "
            "what was fetched so far is kept, the next run resumes"
        ) from exc
    finally:
        try:
            conn.logout()
        except (imaplib.IMAP4.error, OSError):
            pass
