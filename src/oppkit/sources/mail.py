"""Emails from local exports: an mbox file, or a folder of .eml (and .mbox) files.

Why streaming: a mailbox export can be many gigabytes. The mbox is read one message at
a time (memory does not grow with its size) and the byte offset after each batch is the
checkpoint, so a killed run resumes where it stopped and a re-run over an unchanged
file does nothing. Parsing a message is :func:`parse_message`, shared with the live
IMAP and Exchange sources.

Bad input never stops a run: a message the parser cannot use is a :class:`Skipped` with
one line of reason, and the messages around it land. Anything with a message header is
an email (only what has none at all is skipped); a date comes from the Date header, else
the Received chain, else what the mailbox knows (IMAP INTERNALDATE, Exchange's received
time, the mbox From_ line, the file's time), and a date outside 1970 .. a year from now
counts as none. Work and memory are bounded: at most :data:`MAX_MESSAGE_BYTES` of one
message are read and parsed, and the text of a body that signals and snippets see is a
window (:func:`oppkit.sources.text.latest_text`). Text fields carry no NUL byte and no
unpaired surrogate (PostgreSQL stores neither); a bare CR in a header is no line break.

Example::

    for record in read_mail(Path("rep.mbox")):
        ...
"""

from __future__ import annotations

import codecs
import hashlib
import logging
import mmap
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import closing
from datetime import MAXYEAR, UTC, datetime, timedelta
from email import policy
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from functools import cache, lru_cache, partial
from itertools import chain
from pathlib import Path

from ..config import env_setting
from . import mime_fast
from .parse_ahead import Parse, parse_ahead
from .records import ActivityRecord, Attachment, Checkpoint, Participant, Record, Skipped
from .text import clean_text, latest_text, truncate

log = logging.getLogger(__name__)
# compat32 parses 10x faster than policy.default; headers are decoded explicitly below.
_parser = BytesParser(policy=policy.compat32)
_ANGLE_ID = re.compile(r"<([^<>\s]+)>")
_FROM_LINE = re.compile(rb"^From \S*\s+(.*)$")
_ESCAPED_FROM = re.compile(rb"^>(>*From )")
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")  # a raw 8-bit byte the parser kept
_ESCAPED_FROM_LINE = re.compile(rb"^>(>*From )", re.MULTILINE)
_FROM_AFTER_BLANK = re.compile(rb"\n\r?\nFrom ")  # a From_ line after a blank line
_BLANK_AT = re.compile(rb"(?:\r?\n)?From ")
_HEAD_END = re.compile(rb"\n\r?\n")
_BARE_CR = re.compile(rb"\r(?!\n)")
# "1 Jan 0001": the parser reads a year below 100 as 19xx/20xx, even written in 4 digits
_WRITTEN_YEAR = re.compile(r"\b\d{1,2}\s+[A-Za-z]{3,9}\.?\s+(\d{3,})\b")
HEAD_BYTES = 65536
CHECKPOINT_EVERY = 500
MAX_MESSAGE_BYTES = 8 * 2**20  # of one message, read and parsed; the rest is passed over
LINE_CHUNK = 65536  # an mbox is read in lines of at most this many bytes
RELEASE_BYTES = 8 * 2**20  # mapped mbox pages read are given back every this many bytes
BODY_BYTES = 2**20  # of a text part, decoded: far more than a snippet or signals read
MAX_ATTACHMENTS = 200  # listed per message
Fallback = datetime | None | Callable[[], datetime | None]  # see parse_message
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_AHEAD = timedelta(days=366)  # a date further ahead than this is a broken clock
MESSAGE_HEADERS = frozenset(
    ("from", "sender", "reply-to", "to", "cc", "bcc", "date", "subject", "message-id",
     "received", "return-path", "in-reply-to", "references", "mime-version", "content-type")
)  # fmt: skip
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


def iter_mbox(
    path: Path, start: int = 0, limit: int = MAX_MESSAGE_BYTES
) -> Iterator[tuple[int, int, bytes, bytes]]:
    """Yield (offset, end, from_line, raw message) from an mbox, starting at byte ``start``.

    The same as :func:`iter_mbox_lines` (which documents the rules), found with a few
    searches over the mapped file instead of a Python loop over its lines (a third of
    the reader's time in #16): a message starts at a "From " line after a blank line (or
    at ``start``). A message longer than ``limit`` or a From_ line longer than
    :data:`LINE_CHUNK` is read by :func:`iter_mbox_lines` itself, so what it keeps of
    them cannot differ.
    """
    with path.open("rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size <= start:
            return
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            # (where a region starts, whether it starts with a From_ line)
            first = _BLANK_AT.match(data, start)
            if first is None:  # text before the first From_ line: a message without one
                regions = [(start, False)]
            elif first.end() - 5 == start:
                regions = [(start, True)]
            else:  # a blank line, then a From_ line: the line reader yields the blank alone
                regions = [(start, False), (first.end() - 5, True)]
            later = _from_lines_after_blank(data, start)
            released = start - start % mmap.PAGESIZE  # pages before this are given back
            for (at, has_from), upto in _with_ends(chain(regions, later), size):
                body, from_line = at, b""
                if has_from:
                    eol = data.find(b"\n", at, upto)
                    body = upto if eol < 0 else eol + 1
                    from_line = bytes(data[at:body])
                if upto - body > limit or len(from_line) > LINE_CHUNK:
                    with closing(iter_mbox_lines(path, at, limit)) as one:
                        yield next(one)
                else:
                    raw = bytes(data[body:upto])
                    if b">" in raw:
                        raw = _ESCAPED_FROM_LINE.sub(rb"\1", raw)
                    yield at, upto, from_line, raw
                # Memory stays flat: the mapped pages read so far leave this process's
                # resident set (they stay in the page cache) every few megabytes.
                done = upto - upto % mmap.PAGESIZE
                if done - released >= RELEASE_BYTES:
                    data.madvise(mmap.MADV_DONTNEED, released, done - released)
                    released = done


def _from_lines_after_blank(data: mmap.mmap, start: int) -> Iterator[tuple[int, bool]]:
    """Where each From_ line after a blank line starts (``finditer``'s matches, but one
    search at a time: a finditer scanner holds the map's buffer between matches, and a
    run stopped mid-file could then not close the map)."""
    pos = start
    while (found := _FROM_AFTER_BLANK.search(data, pos)) is not None:
        yield found.end() - 5, True
        pos = found.end()


def _with_ends(
    regions: Iterator[tuple[int, bool]], size: int
) -> Iterator[tuple[tuple[int, bool], int]]:
    """Each region with where it ends: the next one's start, the last one's ``size``."""
    previous = next(regions, None)
    for region in regions:
        yield previous, region[0]  # type: ignore[misc]
        previous = region
    if previous is not None:
        yield previous, size


def iter_mbox_lines(
    path: Path, start: int = 0, limit: int = MAX_MESSAGE_BYTES
) -> Iterator[tuple[int, int, bytes, bytes]]:
    """Yield (offset, end, from_line, raw message) from an mbox, starting at byte ``start``.

    Un-escapes ``>From`` lines (mboxrd). ``end`` is the byte offset after the message.
    Memory is bounded whatever the file holds: lines are read in chunks of at most
    :data:`LINE_CHUNK` bytes and a message keeps its first ``limit`` bytes (a longer one,
    or a binary file without line breaks, is passed over after that).
    """
    with path.open("rb") as fh:
        fh.seek(start)
        offset = position = start
        kept = bytearray()
        from_line = b""
        previous_blank = line_start = True
        in_from_line = False  # a From_ line longer than a chunk: its rest is no header
        while chunk := fh.readline(LINE_CHUNK):
            starts_line, line_start = line_start, chunk.endswith(b"\n")
            if starts_line and previous_blank and chunk.startswith(b"From "):
                if kept or from_line:
                    yield offset, position, from_line, bytes(kept)
                offset, from_line, kept, in_from_line = position, chunk, bytearray(), not line_start
            elif in_from_line:
                in_from_line = not line_start
            elif len(kept) < limit:
                # mboxrd: only ">From " lines (any number of ">") lose one ">"; a quoted
                # line of a reply ("> text") is kept as it is, without a substitution
                escaped = (
                    starts_line
                    and chunk.startswith(b">")
                    and chunk.lstrip(b">").startswith(b"From ")
                )
                kept += (_ESCAPED_FROM.sub(rb"\1", chunk) if escaped else chunk)[
                    : limit - len(kept)
                ]
            previous_blank = starts_line and chunk in (b"\n", b"\r\n")
            position += len(chunk)
        if kept or from_line:
            yield offset, position, from_line, bytes(kept)


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


def _file_time(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)


def _cut(where: str, size: int) -> None:
    if size > MAX_MESSAGE_BYTES:
        log.info("%s: %.0f MB, the first %d MB read", where, size / 2**20, MAX_MESSAGE_BYTES >> 20)


# --- parsing one message ----------------------------------------------------------


def _unescape(value: str) -> str:
    """Raw 8-bit header bytes (kept as surrogates by the parser) read as UTF-8 or cp1252."""
    if value.isascii() or _ESCAPED_BYTE.search(value) is None:
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


RawHeaders = dict[str, list[str]]  # every raw value of each header, by lower-cased name


def _raw_headers(msg: Message) -> RawHeaders:
    """The message's raw header values (no Header objects, whatever the bytes were), by
    lower-cased name, in one pass (a pass per header read was a tenth of a parse)."""
    found: RawHeaders = {}
    for name, value in msg.raw_items():
        found.setdefault(name.lower(), []).append(str(value))
    return found


def _header(headers: RawHeaders, name: str) -> str | None:
    values = headers.get(name)
    return _decoded(values[0]) if values else None


# The common shapes of an address list: "Name Surname <local@domain>" and bare
# "local@domain", comma-separated, in plain ASCII words. For those the result is read off
# one match; anything else (quotes, comments, groups, dots in a name, encoded words...)
# goes to email.utils.getaddresses (pure Python, a quarter of the parse in #16).
# tests/test_mail_speed.py checks both give the same pairs.
_ATOMS = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_PLAIN_ADDRESS = rf"{_ATOMS}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
_PLAIN_ENTRY = rf"[ \t]*(?:([A-Za-z0-9'-]+(?:[ \t]+[A-Za-z0-9'-]+)*)[ \t]*<({_PLAIN_ADDRESS})>|({_PLAIN_ADDRESS}))[ \t]*"
_PLAIN_LIST = re.compile(rf"{_PLAIN_ENTRY}(?:,{_PLAIN_ENTRY})*")
_PLAIN_ONE = re.compile(rf"(?:^|,){_PLAIN_ENTRY}")


def _address_pairs(values: list[str]) -> list[tuple[str, str]]:
    """``getaddresses(values)``, read directly when every entry has a plain shape."""
    joined = ", ".join(values)
    if _PLAIN_LIST.fullmatch(joined) is None:
        return getaddresses(values)
    return [
        (" ".join(name.split()) if name else "", named or bare)
        for name, named, bare in _PLAIN_ONE.findall(joined)
    ]


def _addresses(headers: RawHeaders, name: str) -> list[tuple[str | None, str]]:
    raw = [_unescape(v) for v in headers.get(name, ())]
    return [(_decoded(n) if n else None, a) for n, a in _address_pairs(raw) if a and "@" in a]


def _message_id(value: str | None) -> str | None:
    """The id inside the angle brackets; None for a missing, empty or blank one ('<>')."""
    if not value:
        return None
    match = _ANGLE_ID.search(value)
    if match:
        return match.group(1)
    bare = value.replace("<", " ").replace(">", " ").split()
    return bare[0] if bare else None


def _thread_id(msg: Message, own_id: str) -> str:
    ids = _ANGLE_ID.findall(str(msg.get("References") or ""))
    if ids:
        return ids[0]
    return _message_id(str(msg.get("In-Reply-To") or "")) or own_id


def _text_of(part: Message) -> tuple[str, bool]:
    """Decoded text of a leaf part (its first :data:`BODY_BYTES`), and whether its charset
    had to be guessed: the declared one, else UTF-8, else cp1252 (as for headers)."""
    payload = part.get_payload(decode=True)
    payload = payload[:BODY_BYTES] if isinstance(payload, bytes) else b""
    for charset, guessed in ((_charset(part) or "utf-8", False), ("utf-8", True)):
        try:  # incremental: a character cut at the window's end is no decoding error
            return codecs.getincrementaldecoder(charset)().decode(payload), guessed
        except Exception:  # noqa: BLE001 - unknown, lying, or no text codec ("undefined")
            continue
    return payload.decode("cp1252", errors="replace"), True


def _charset(part: Message) -> str | None:
    """``part.get_content_charset()``: a function of the first Content-Type value, worked
    out once per distinct value (stdlib's parameter parsing was a twentieth of a parse)."""
    value = next((v for k, v in part.raw_items() if k.lower() == "content-type"), None)
    if not isinstance(value, str) or _ESCAPED_BYTE.search(value):  # a Header, 8-bit bytes
        return part.get_content_charset()
    return _charset_of(value)


@lru_cache(maxsize=512)
def _charset_of(content_type: str) -> str | None:
    part = Message()
    part.set_raw("Content-Type", content_type)
    return part.get_content_charset()


def _leaves(msg: Message) -> Iterator[Message]:
    """Leaf parts in order, not descending into attached messages (message/rfc822)."""
    waiting = [msg]
    while waiting:  # a loop, not recursion: parts may nest thousands deep
        part = waiting.pop()
        if part.is_multipart() and (part is msg or part.get_content_maintype() != "message"):
            waiting.extend(reversed([p for p in part.get_payload() if isinstance(p, Message)]))
        else:
            yield part


def _filename(part: Message) -> str | None:
    try:
        return _decoded(part.get_filename())
    except (LookupError, UnicodeError, ValueError):  # an RFC 2231 name in a lying charset
        return None


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
            if len(attachments) < MAX_ATTACHMENTS:
                payload = part.get_payload(decode=True)
                size = len(payload) if isinstance(payload, bytes) else len(str(part.get_payload()))
                attachments.append(Attachment(_filename(part), ctype, size))
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


def _stable_id(headers: RawHeaders, raw: bytes) -> str:
    """An id for a message without Message-ID: the same message gives the same id."""
    digest = hashlib.sha256()
    for name in ("from", "to", "cc", "date", "subject"):
        digest.update((_header(headers, name) or "").encode("utf-8", "replace") + b"\0")
    body_start = raw.find(b"\n\n")
    digest.update(raw[body_start:] if body_start >= 0 else raw)
    return "sha256:" + digest.hexdigest()[:40]


def _sane(moment: datetime | None) -> datetime | None:
    """``moment`` in UTC (naive taken as UTC), or None outside 1970 .. a year from now."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if not EARLIEST.year <= moment.year < MAXYEAR:  # 9999-12-31 -01:00 overflows in UTC
        return None
    moment = moment.astimezone(UTC)
    return moment if EARLIEST <= moment <= datetime.now(UTC) + LATEST_AHEAD else None


def _date(value: str) -> datetime | None:
    """An RFC 5322 date, if it is a sane one."""
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    written = _WRITTEN_YEAR.search(value)
    if written and int(written.group(1)) != moment.year:
        return None  # "0001" read as 2001: not the date the sender wrote
    return _sane(moment)


def _occurred_at(
    msg: Message, headers: RawHeaders, fallbacks: tuple[Fallback, ...]
) -> datetime | None:
    """The Date header, else the newest Received hop, else the first sane fallback."""
    dates = [str(msg.get("Date") or "").strip()]
    dates += [value.rpartition(";")[2] for value in headers.get("received", ()) if ";" in value]
    for value in dates:
        if value and (moment := _date(value)):
            return moment
    moments = (_sane(f() if callable(f) else f) for f in fallbacks)
    return next(filter(None, moments), None)


@cache
def native_mime() -> bool:
    """``OPPKIT_NATIVE_MIME`` (read once): 0 turns the native MIME parser off."""
    return (env_setting("NATIVE_MIME", "1") or "1").strip() != "0"


def _cleaned(record: ActivityRecord) -> ActivityRecord:
    for name in ("source_id", "subject", "snippet", "text", "thread_id"):
        setattr(record, name, clean_text(getattr(record, name)))
    for p in record.participants:
        p.email, p.name = clean_text(p.email) or "", clean_text(p.name)
    for a in record.attachments:
        a.name, a.content_type = clean_text(a.name), clean_text(a.content_type)
    return record


def _without_bare_cr(raw: bytes) -> bytes:
    """A CR not followed by LF in the header block is no line break (RFC 5322 2.2): it
    would make a header out of the rest of the line ("Subject: hi<CR>Bcc: x")."""
    end = _HEAD_END.search(raw)
    head = raw[: end.start() + 1] if end else raw  # with the LF after the last header's CR
    if b"\r" not in head or b"\n" not in head:  # none, or a file of CR-only lines
        return raw
    return _BARE_CR.sub(b" ", head) + raw[len(head) :]


def _parsed(raw: bytes, where: str, native: bool) -> Message:
    """The message; its headers alone when its body defeats the parser (nesting).

    ``native``: read by :mod:`oppkit.sources.mime_fast` where it is sure to read it as
    the standard library does (most mail, ten times faster), else by the standard library.
    """
    if native and (quick := mime_fast.read(raw)) is not None:
        return quick
    raw = _without_bare_cr(raw)
    try:
        return _parser.parsebytes(raw)
    except RecursionError:
        log.info("%s: body nested too deep to read; headers only", where)
        return _parser.parsebytes(raw, headersonly=True)


def parse_message(
    raw: bytes, where: str, *fallback_dates: Fallback, native: bool | None = None
) -> ActivityRecord | Skipped:
    """One raw RFC 5322 message -> an email activity (or a Skipped with the reason).

    ``fallback_dates`` are what the mailbox knows of the message's time, best first
    (IMAP INTERNALDATE, the mbox From_ line, the file's time): used when neither the Date
    header nor the Received chain gives a sane date. One may be a function that returns
    the date, called only then (reading an mbox From_ line's date is costly). ``native``
    False reads the message with the standard library's parser alone (None:
    ``OPPKIT_NATIVE_MIME``, on unless set to 0); both give the same record. Never raises.
    """
    if len(raw) > MAX_MESSAGE_BYTES:  # from a server: a file is read no further
        _cut(where, len(raw))
        raw = raw[:MAX_MESSAGE_BYTES]
    try:
        msg = _parsed(raw, where, native_mime() if native is None else native)
        headers = _raw_headers(msg)
        if MESSAGE_HEADERS.isdisjoint(headers):
            return Skipped("not an email (no message headers)", where)
        occurred_at = _occurred_at(msg, headers, fallback_dates)
        if occurred_at is None:
            return Skipped("no usable date (Date, Received or the mailbox's own)", where)
        return _cleaned(_activity(msg, headers, raw, where, occurred_at))
    except Exception as exc:  # noqa: BLE001 - one bad message never stops a mailbox
        log.debug("%s: unreadable", where, exc_info=True)
        return Skipped(f"unreadable message ({type(exc).__name__})", where)


def _activity(
    msg: Message, headers: RawHeaders, raw: bytes, where: str, occurred_at: datetime
) -> ActivityRecord:
    participants = [
        Participant(email=address, name=name, role=role)
        for header, role in ADDRESS_ROLES
        for name, address in _addresses(headers, header)
    ]
    subject = _header(headers, "subject")
    source_id = _message_id(_header(headers, "message-id")) or _stable_id(headers, raw)
    text, html, attachments, repaired = _body_and_attachments(msg)
    latest = latest_text(text, html)
    if repaired:
        log.info("%s: body charset unknown, decoded as UTF-8 (or cp1252)", where)
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


def parsed(
    jobs: Iterable[Parse | Record], parser: str = "oppkit.sources.mail:parse_message"
) -> Iterator[Record]:
    """Each :class:`Parse` job's message as :func:`parse_message` (or ``parser``) reads
    it, in worker processes when there are many
    (:func:`oppkit.sources.parse_ahead.parse_ahead`), and every other job as it is, in
    order."""
    return parse_ahead(jobs, parser, _crashed)


def parse_in_thread(
    raw: bytes, where: str, thread_id: str | None, *fallback_dates: Fallback
) -> ActivityRecord | Skipped:
    """:func:`parse_message`, with the thread the mailbox knows (Exchange's conversation)
    in place of the one the headers give, when it knows one."""
    record = parse_message(raw, where, *fallback_dates)
    if thread_id is not None and isinstance(record, ActivityRecord):
        record.thread_id = thread_id
    return record


def _crashed(args: tuple) -> Skipped:
    """A message whose parse killed the worker process (twice)."""
    return Skipped("unreadable message (the parser crashed)", args[1])


def mbox_jobs(
    path: Path, previous: Mapping[str, dict] | None = None, checkpoint_every: int = CHECKPOINT_EVERY
) -> Iterator[Parse | Checkpoint]:
    """The messages of one mbox as :func:`parse_message` jobs, from the committed byte
    offset, with a checkpoint after every ``checkpoint_every``."""
    obj = f"mbox:{path.resolve()}"
    start = _resume_offset(path, (previous or {}).get(obj))
    if start is None:
        return
    count, end, file_time = 0, start, _file_time(path)
    for offset, end, from_line, raw in iter_mbox(path, start):
        where = f"{path.name} @ byte {offset}"
        _cut(where, end - offset)
        yield Parse((raw, where, partial(_from_line_date, from_line), file_time))
        count += 1
        if count % checkpoint_every == 0:
            yield Checkpoint(obj, {"offset": end, "fingerprint": _fingerprint(path, end)})
    yield Checkpoint(obj, {"offset": end, "fingerprint": _fingerprint(path, end)})


def eml_jobs(
    path: Path, previous: Mapping[str, dict] | None = None
) -> Iterator[Parse | Checkpoint]:
    """One .eml file as a :func:`parse_message` job, none when unchanged since the last run."""
    obj = f"eml:{path.resolve()}"
    stat = path.stat()
    cursor = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if (previous or {}).get(obj) == cursor:
        return
    _cut(path.name, stat.st_size)
    with path.open("rb") as fh:
        raw = fh.read(MAX_MESSAGE_BYTES)
    yield Parse((raw, path.name, _file_time(path)))
    yield Checkpoint(obj, cursor)


def read_mbox(
    path: Path, previous: Mapping[str, dict] | None = None, checkpoint_every: int = CHECKPOINT_EVERY
) -> Iterator[Record]:
    """Email activities from one mbox, resuming from the committed byte offset."""
    yield from parsed(mbox_jobs(path, previous, checkpoint_every))


def read_eml(path: Path, previous: Mapping[str, dict] | None = None) -> Iterator[Record]:
    """One .eml file, skipped when unchanged since the last run."""
    yield from parsed(eml_jobs(path, previous))


def read_mail(path: Path, previous: Mapping[str, dict] | None = None) -> Iterator[Record]:
    """Emails from an mbox file, an .eml file, or a folder of .eml and .mbox files (one
    set of parse workers for all of them)."""
    if not path.exists():
        raise FileNotFoundError(f"no such mailbox file or folder: {path}")
    yield from parsed(_mail_jobs(path, previous))


def _mail_jobs(path: Path, previous: Mapping[str, dict] | None) -> Iterator[Parse | Checkpoint]:
    if path.is_dir():
        files = sorted(
            p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in (".eml", ".mbox")
        )
    else:
        files = [path]
    for file in files:
        if file.suffix.lower() == ".eml":
            yield from eml_jobs(file, previous)
        else:
            yield from mbox_jobs(file, previous)


def mbox_size(path: Path) -> int:
    return os.path.getsize(path) if path.is_file() else 0
