"""A message read by a native MIME parser, as the standard library's parser reads it.

Why: the standard library's parser (compat32, pure Python) was a third of a mail sync's
parsing time (#16); ``fast_mail_parser`` (Rust) reads the same message in a tenth of
the time. What oppkit does with a message (:mod:`oppkit.sources.mail`) stays written
once, against ``email.message.Message``: :func:`read` builds that same Message (its
headers, its MIME tree, each leaf's payload) from the native parse.

Where the two parsers could read a message differently, the standard library reads it
(or the part of it in doubt), as before. A header block with 8-bit bytes, encoded words,
folded lines or mixed line ends is parsed by the standard library (that block only: a
one-part body is the rest of the message for both). :func:`read` says None, and the
standard library reads the whole message, for a header block it would end elsewhere (a
line that is no header, an mbox ``From`` line, a bare CR), an attached message, and a
multipart message that is not plain: delimiters not all clean (a line that starts like
one and is none, a boundary another starts with, a missing or early close delimiter), a
digest, a base64, quoted-printable or uuencoded part, a part header that is not plain.
The native parser is also optional: without it (a platform it has no wheel for) the
standard library reads every multipart message. tests/test_mime_fast.py checks that both
give equal records, on CPython's email corpus, crafted broken mail and mutations of many
messages.

Example::

    msg = read(raw)  # None: use email.parser.BytesParser(policy=compat32)
"""

from __future__ import annotations

import re
from email import policy
from email.message import Message
from email.parser import BytesParser

try:
    from fast_mail_parser import parse_email_tree
except ImportError:  # no wheel for this platform: the standard library reads every message
    parse_email_tree = None  # type: ignore[assignment]

# The header block as the standard library's parser takes all of it: each line a header
# ("Name:", the name printable ASCII without a colon or space) or a folded continuation,
# up to the first empty line. Not "From " lines (the parser treats them apart) and not a
# continuation first.
_HEAD = re.compile(rb"(?:[\x21-\x39\x3b-\x7e]*:[^\r\n]*\r?\n(?:[ \t][^\r\n]*\r?\n)*)*\r?\n")
_parser = BytesParser(policy=policy.compat32)
# Parts whose content is their text as it stands; a base64 or quoted-printable part goes to
# the standard library, whose decoders forgive broken input in their own ways.
_PLAIN_CODINGS = frozenset(("", "7bit", "8bit", "binary"))


def available() -> bool:
    """Is the native parser installed?"""
    return parse_email_tree is not None


def read(raw: bytes) -> Message | None:
    """``raw`` as ``BytesParser(policy=compat32).parsebytes`` reads it, or None when only
    that parser can say so."""
    head = _HEAD.match(raw)
    if head is None:
        return None
    block, body = raw[: head.end()], raw[head.end() :]
    tree = msg = None
    if parse_email_tree is not None and _plain_head(block):
        tree = _tree(raw)
        msg = None if tree is None else _headers(tree.headers)
    if msg is None:  # encoded words, 8-bit bytes, folded lines: the parser's own reading
        msg = _parser.parsebytes(block, headersonly=True)
        if msg.get_payload():
            return None
    maintype = msg.get_content_maintype()
    if maintype == "message":
        return None
    if maintype != "multipart":  # one part: the body is all the rest, as the parser has it
        msg.set_payload(body.decode("ascii", "surrogateescape"))
        return msg
    if tree is None and parse_email_tree is not None:
        tree = _tree(raw)
    msg.set_payload(None)  # the parts are attached below
    try:
        return msg if tree is not None and _fill(msg, tree, body, set()) else None
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:  # noqa: BLE001 - a part that does not decode, or a Rust panic
        return None


def _tree(raw: bytes) -> object | None:
    """The native parse, or None where it fails: a ParseError, and also a panic in the
    Rust code, which pyo3 raises as a BaseException that ``except Exception`` misses."""
    try:
        return parse_email_tree(raw, mode="lazy")
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:  # noqa: BLE001 - see above; the standard library reads it
        return None


def _headers(headers: dict[str, list[str]]) -> Message | None:
    """A Message holding ``headers`` (the native parse's), or None when their order could
    differ from the message's: the native parser groups values by the name as written,
    so "Cc" and "cc" in one message would lose their order."""
    msg = Message()
    names = set()
    for name, values in headers.items():
        lower = name.lower()
        if lower in names:
            return None
        names.add(lower)
        for value in values:
            if not value.isascii():
                return None
            msg.set_raw(name, value)
    return msg


def _plain_head(head: bytes) -> bool:
    """No 8-bit bytes, no encoded words, no folded lines, one kind of line end: the
    native parser's values are the standard library's (it decodes the first two its own
    way, unfolds without the space and keeps a CR before an LF in a file of LFs)."""
    if not head.isascii() or b"=?" in head or b"\n " in head or b"\n\t" in head:
        return False
    return b"\r" not in head or head.count(b"\r\n") == head.count(b"\n")


def _fill(msg: Message, node: object, body: bytes, outer: set[str]) -> bool:
    """Attach ``node``'s parts to the multipart ``msg``; False where unsure. ``outer``:
    the boundaries of the containers around it."""
    boundary = msg.get_boundary()
    children = node.children  # type: ignore[attr-defined]
    if not boundary or not children or not boundary.isascii() or boundary in outer:
        return False
    if msg.get_content_type() == "multipart/digest":  # its parts default to message/rfc822
        return False
    if _clean_delimiters(body, boundary.encode("ascii")) != len(children):
        return False
    for child in children:
        part = _headers(child.headers)
        if part is None:
            return False
        maintype = part.get_content_maintype()
        if child.content is None or maintype == "multipart":  # a container
            if maintype != "multipart" or child.content is not None:
                return False
            if not _fill(part, child, body, outer | {boundary}):
                return False
        else:
            if maintype == "message" or child.is_message:
                return False
            coding = str(part.get("content-transfer-encoding", "")).lower()
            if coding not in _PLAIN_CODINGS:
                return False
            del part["content-transfer-encoding"]  # the content is decoded already
            part.set_payload(child.content)
        msg.attach(part)
    return True


def _clean_delimiters(body: bytes, boundary: bytes) -> int:
    """How many parts ``body`` has between ``--boundary`` delimiters, or -1 unless every
    line that starts ``--boundary`` is a delimiter (``--boundary`` or ``--boundary--``,
    then spaces or tabs at most), the close delimiter comes last and each part's header
    block is a plain one: where the two parsers agree on the parts."""
    marker = b"--" + boundary
    parts, closed = 0, False
    at = body.find(marker)
    while at >= 0:
        if at == 0 or body[at - 1] in b"\r\n":
            end = at + len(marker)
            close = body.startswith(b"--", end)
            rest = end + 2 if close else end
            eol = body.find(b"\n", rest)
            tail = body[rest : len(body) if eol < 0 else eol].rstrip(b"\r")
            if tail.strip(b" \t") or closed:
                return -1  # "--boundaryX", a boundary another starts with, or after the close
            closed = close
            if not close:  # a part's header block, as plain as the whole message's
                head = None if eol < 0 else _HEAD.match(body, eol + 1)
                if head is None or not _plain_head(body[eol + 1 : head.end()]):
                    return -1
                parts += 1
        at = body.find(marker, at + 1)
    return parts if closed else -1
