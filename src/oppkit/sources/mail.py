"""Emails from local exports: an mbox file, or a folder of .eml (and .mbox) files.

Why streaming: a mailbox export can be many gigabytes. The mbox is read one message at
a time (memory does not grow with its size) and the byte offset after each batch is the
checkpoint, so a killed run resumes where it stopped and a re-run over an unchanged
file does nothing. Parsing a message is :func:`parse_message`, shared with the live
IMAP and Exchange sources.

Example::

    for record in read_mail(Path("rep.mbox")):
        ...
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from email import policy
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from pathlib import Path

from .records import ActivityRecord, Attachment, Checkpoint, Participant, Record, Skipped
from .text import latest_text, truncate

log = logging.getLogger(__name__)
# compat32 parses 10x faster than policy.default; headers are decoded explicitly below.
_parser = BytesParser(policy=policy.compat32)
_ANGLE_ID = re.compile(r"<([^<>\s]+)>")
_FROM_LINE = re.compile(rb"^From \S*\s+(.*)$")
_ESCAPED_FROM = re.compile(rb"^>(>*From )")
HEAD_BYTES = 65536
CHECKPOINT_EVERY = 500
ADDRESS_ROLES = (("from", "from"), ("to", "to"), ("cc", "cc"), ("bcc", "bcc"))
AUTO_SENDERS = ("mailer-daemon@", "postmaster@")
AUTO_SUBJECTS = (
    "automatic reply",
    "auto-reply",
    "autoreply",
    "out of office",
    "undeliverable",
    "delivery status notification",
    "mail delivery failed",
    "returned mail",
)


# --- reading messages -------------------------------------------------------------


def iter_mbox(path: Path, start: int = 0) -> Iterator[tuple[int, int, bytes, bytes]]:
    """Yield (offset, end, from_line, raw message) from an mbox, starting at byte ``start``.

    Un-escapes ``>From`` lines (mboxrd). ``end`` is the byte offset after the message.
    """
    with path.open("rb") as fh:
        fh.seek(start)
        offset = start
        position = start
        lines: list[bytes] = []
        from_line = b""
        previous_blank = True
        for line in fh:
            if line.startswith(b"From ") and previous_blank:
                if lines or from_line:
                    yield offset, position, from_line, b"".join(lines)
                offset, from_line, lines = position, line, []
            else:
                lines.append(_ESCAPED_FROM.sub(rb"\1", line) if line.startswith(b">") else line)
            previous_blank = line in (b"\n", b"\r\n")
            position += len(line)
        if lines or from_line:
            yield offset, position, from_line, b"".join(lines)


def _from_line_date(from_line: bytes) -> datetime | None:
    match = _FROM_LINE.match(from_line.strip())
    if not match:
        return None
    try:
        return datetime.strptime(
            match.group(1).decode("ascii", "replace").strip(), "%a %b %d %H:%M:%S %Y"
        ).replace(tzinfo=UTC)
    except ValueError:
        return None


# --- parsing one message ----------------------------------------------------------


def _unescape(value: str) -> str:
    """Raw 8-bit header bytes (kept as surrogates by the parser) read as UTF-8 or cp1252."""
    if not any("\udc80" <= ch <= "\udcff" for ch in value):
        return value
    data = value.encode("ascii", "surrogateescape")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _decoded(value: str | None) -> str | None:
    """A raw header value with RFC 2047 encoded words decoded; never raises."""
    if value is None:
        return None
    value = _unescape(value)
    if "=?" in value:
        try:
            value = str(make_header(decode_header(value)))
        except (HeaderParseError, LookupError, UnicodeError, ValueError):
            pass
    return " ".join(value.split()) or None


def _raw(msg: Message, name: str) -> list[str]:
    """Every raw value of a header (no Header objects, whatever the bytes were)."""
    name = name.lower()
    return [str(v) for k, v in msg.raw_items() if k.lower() == name]


def _header(msg: Message, name: str) -> str | None:
    values = _raw(msg, name)
    return _decoded(values[0]) if values else None


def _addresses(msg: Message, name: str) -> list[tuple[str | None, str]]:
    raw = [_unescape(v) for v in _raw(msg, name)]
    return [(_decoded(n) if n else None, a) for n, a in getaddresses(raw) if a and "@" in a]


def _message_id(value: str | None) -> str | None:
    if not value:
        return None
    match = _ANGLE_ID.search(value)
    return match.group(1) if match else (value.split()[0] if value.strip() else None)


def _thread_id(msg: Message, own_id: str) -> str:
    ids = _ANGLE_ID.findall(str(msg.get("References") or ""))
    if ids:
        return ids[0]
    return _message_id(str(msg.get("In-Reply-To") or "")) or own_id


def _text_of(part: Message) -> tuple[str, bool]:
    """Decoded text of a leaf part, and whether its charset had to be guessed."""
    payload = part.get_payload(decode=True) or b""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset), False
    except (LookupError, UnicodeDecodeError):
        return payload.decode("utf-8", errors="replace"), True


def _leaves(msg: Message) -> Iterator[Message]:
    """Leaf parts, not descending into attached messages (message/rfc822)."""
    if msg.is_multipart():
        for part in msg.get_payload():
            if part.get_content_maintype() == "message":
                yield part
            else:
                yield from _leaves(part)
    else:
        yield msg


def _body_and_attachments(msg: Message) -> tuple[str | None, str | None, list[Attachment], bool]:
    """(plain text, html, attachments, repaired): the first inline text/plain and
    text/html parts are the body; everything else is an attachment (metadata only)."""
    text = html = None
    attachments: list[Attachment] = []
    repaired = False
    for part in _leaves(msg):
        ctype = part.get_content_type()
        disposition = str(part.get("Content-Disposition") or "").lower()
        inline = not disposition.startswith("attachment")
        if inline and ctype == "text/plain" and text is None:
            text, bad = _text_of(part)
        elif inline and ctype == "text/html" and html is None:
            html, bad = _text_of(part)
        elif part is not msg and ctype not in ("message/delivery-status",):
            payload = part.get_payload(decode=True)
            size = len(payload) if isinstance(payload, bytes) else len(str(part.get_payload()))
            attachments.append(Attachment(_decoded(part.get_filename()), ctype, size))
            continue
        else:
            continue
        repaired = repaired or bad
    return text, html, attachments, repaired


def is_automatic(msg: Message, sender: str | None, subject: str | None) -> bool:
    """A bounce or an auto-reply: never counted as a customer's reply."""
    auto = str(msg.get("Auto-Submitted") or "no").strip().lower()
    if auto != "no" or msg.get("X-Autoreply") or msg.get("X-Autorespond"):
        return True
    if msg.get_content_type() == "multipart/report":
        return True
    if sender and sender.lower().startswith(AUTO_SENDERS):
        return True
    return bool(subject) and subject.lower().startswith(AUTO_SUBJECTS)


def _stable_id(msg: Message, raw: bytes) -> str:
    """An id for a message without Message-ID: the same message gives the same id."""
    digest = hashlib.sha256()
    for name in ("From", "To", "Cc", "Date", "Subject"):
        digest.update((_header(msg, name) or "").encode("utf-8", "replace") + b"\0")
    body_start = raw.find(b"\n\n")
    digest.update(raw[body_start:] if body_start >= 0 else raw)
    return "sha256:" + digest.hexdigest()[:40]


def parse_message(
    raw: bytes, where: str, fallback_date: datetime | None = None
) -> ActivityRecord | Skipped:
    """One raw RFC 5322 message -> an email activity (or a Skipped with the reason)."""
    try:
        msg: Message = _parser.parsebytes(raw)
    except Exception as exc:
        return Skipped(f"unparseable message ({type(exc).__name__})", where)
    if not msg.keys():
        return Skipped("not an email (no headers)", where)
    date_header = str(msg.get("Date") or "").strip()
    occurred_at = None
    if date_header:
        try:
            occurred_at = parsedate_to_datetime(date_header)
        except (TypeError, ValueError, IndexError):
            occurred_at = None
    occurred_at = occurred_at or fallback_date
    if occurred_at is None:
        return Skipped("no usable Date header", where)
    if occurred_at.tzinfo is None:
        occurred_at = occurred_at.replace(tzinfo=UTC)
    occurred_at = occurred_at.astimezone(UTC)

    participants = [
        Participant(email=address, name=name, role=role)
        for header, role in ADDRESS_ROLES
        for name, address in _addresses(msg, header)
    ]
    if not participants:
        return Skipped("no sender or recipients", where)
    subject = _header(msg, "Subject")
    source_id = _message_id(_header(msg, "Message-ID")) or _stable_id(msg, raw)
    text, html, attachments, repaired = _body_and_attachments(msg)
    latest = latest_text(text, html)
    if repaired:
        log.info("%s: body charset unknown, decoded as UTF-8 with replacements", where)
    sender = next((p.email for p in participants if p.role == "from"), None)
    auto = is_automatic(msg, sender, subject)
    return ActivityRecord(
        source="mail",
        source_id=source_id,
        kind="email",
        occurred_at=occurred_at,
        subject=subject,
        snippet=truncate(latest),
        text=latest,
        participants=participants,
        thread_id=_thread_id(msg, source_id),
        status=("bounce" if msg.get_content_type() == "multipart/report" else "auto-reply")
        if auto
        else None,
        is_auto=auto,
        attachments=attachments,
    )


# --- files and checkpoints --------------------------------------------------------


def _fingerprint(path: Path, upto: int) -> str:
    """Hash of the first and last 64 KiB before ``upto``: detects a rewritten file."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        digest.update(fh.read(min(HEAD_BYTES, upto)))
        fh.seek(max(0, upto - HEAD_BYTES))
        digest.update(fh.read(min(HEAD_BYTES, upto)))
    return digest.hexdigest()


def _resume_offset(path: Path, cursor: Mapping | None) -> int | None:
    """Where to start reading; None when the file is unchanged since the cursor."""
    if not cursor:
        return 0
    size = path.stat().st_size
    offset = int(cursor.get("offset", 0))
    if offset > size or cursor.get("fingerprint") != _fingerprint(path, offset):
        return 0  # rewritten or truncated: read again (upserts keep it duplicate-free)
    return None if offset == size else offset


def read_mbox(
    path: Path, previous: Mapping[str, dict] | None = None, checkpoint_every: int = CHECKPOINT_EVERY
) -> Iterator[Record]:
    """Email activities from one mbox, resuming from the committed byte offset."""
    obj = f"mbox:{path.resolve()}"
    start = _resume_offset(path, (previous or {}).get(obj))
    if start is None:
        return
    count, end = 0, start
    for offset, end, from_line, raw in iter_mbox(path, start):
        yield parse_message(raw, f"{path.name} @ byte {offset}", _from_line_date(from_line))
        count += 1
        if count % checkpoint_every == 0:
            yield Checkpoint(obj, {"offset": end, "fingerprint": _fingerprint(path, end)})
    yield Checkpoint(obj, {"offset": end, "fingerprint": _fingerprint(path, end)})


def read_eml(path: Path, previous: Mapping[str, dict] | None = None) -> Iterator[Record]:
    """One .eml file, skipped when unchanged since the last run."""
    obj = f"eml:{path.resolve()}"
    stat = path.stat()
    cursor = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if (previous or {}).get(obj) == cursor:
        return
    yield parse_message(path.read_bytes(), path.name)
    yield Checkpoint(obj, cursor)


def read_mail(path: Path, previous: Mapping[str, dict] | None = None) -> Iterator[Record]:
    """Emails from an mbox file, an .eml file, or a folder of .eml and .mbox files."""
    if not path.exists():
        raise FileNotFoundError(f"no such mailbox file or folder: {path}")
    if path.is_dir():
        files = sorted(
            p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in (".eml", ".mbox")
        )
    else:
        files = [path]
    for file in files:
        if file.suffix.lower() == ".eml":
            yield from read_eml(file, previous)
        else:
            yield from read_mbox(file, previous)


def mbox_size(path: Path) -> int:
    return os.path.getsize(path) if path.is_file() else 0
