"""Turning message bodies into short plain-text snippets for the timeline.

Why: a timeline row should show what a person wrote, not the quoted thread below it,
the HTML markup around it or a wall of whitespace.

Work is bounded whatever a body holds: HTML goes through libxml2's parser (lxml), which
is linear (an HTML5 tree builder is quadratic in the nesting: a megabyte of ``<div>x``
took minutes), and only the start of a body is read: at most :data:`HTML_LIMIT`
characters of HTML, and a window of :data:`TEXT_WINDOW` characters of text, which is
all a snippet or the signal rules ever see.

>>> make_snippet("Thanks, see you Monday.\\n\\nOn Fri, Bob wrote:\\n> earlier text")
'Thanks, see you Monday.'
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator

from lxml import etree
from mailparser_reply import EmailReplyParser
from mailparser_reply.constants import OUTLOOK_MAIL_SEPARATOR
from mailparser_reply.parser import EmailMessage

SNIPPET_LIMIT = 400
HTML_LIMIT = 256 * 1024  # characters of an HTML body converted to text
# A whitespace run becomes one space; a lone space is already that, so it is not a match
# (replacing every single space of a text cost more than the rest of a snippet).
_WS = re.compile(r" [ \t\r\f\v\u00a0]+|[\t\r\f\v\u00a0][ \t\r\f\v\u00a0]*")
_ODD_SPACES = ("\t", "\r", "\f", "\v", "\u00a0")  # the characters of _WS besides " "
_BLANKS = re.compile(r"\n\s*\n+")
_QUOTED_LINE = re.compile(r"^\s*>.*$", re.MULTILINE)
_LINE_BREAK = re.compile("[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")  # what splitlines() splits on
# Only the start of a body can reach a snippet: a quote header further down is cut off
# anyway, so the (regex-heavy) reply parser and the signal rules read a window, not the
# whole thread.
TEXT_WINDOW = SNIPPET_LIMIT * 4
REPLY_LANGUAGES = ("en", "de", "fr", "es", "nl")
_reply_parser = EmailReplyParser(languages=list(REPLY_LANGUAGES))  # the reference (tests)


# Every reply header mailparser_reply finds for REPLY_LANGUAGES holds one of these: the
# "wrote" lines' verbs, an Outlook-style header field at a line's start (after quote marks
# or stars), or the "Original Message" separator. A text without any has no header; a
# header starts at most four lines before its first (an "On" line, wrapped).
_HEADER_TOKEN = re.compile(
    r"wrote:|schrieb|a \u00e9crit|escribi|schreef:|original message"
    r"|^[>* ]*(?:from|sent|to|subject|date|cc|organization|von|gesendet|an|betreff|datum"
    r"|organisation|de|enviado|para|asunto|fecha|organizaci[^:\n]*|van|verzonden|aan|onderwerp):"
    r"|^[>* ]*(?:de |envoy\u00e9 |\u00e0 |objet |  |cc ):",
    re.IGNORECASE | re.MULTILINE,
)
_HEADER_LINES_BEFORE_TOKEN = 4
# The same for ASCII text, lower-cased: the words found with str.find, the fields at a
# line's start with a pattern that needs no IGNORECASE (three times faster in all).
_HEADER_WORDS = ("wrote:", "schrieb", "escribi", "schreef:", "original message")
_FIELD = (
    r"[>* ]*(?:from|sent|to|subject|date|cc|organization|von|gesendet|an|betreff|datum"
    r"|organisation|de|enviado|para|asunto|fecha|organizaci[^:\n]*|van|verzonden|aan|onderwerp"
    r"|de |objet |  |cc ):"
)
_HEADER_FIELD = re.compile("^" + _FIELD, re.MULTILINE)  # the reference of the two below
# "^" with MULTILINE is tried at every position; a line break is a literal the engine
# finds fast: so, the text's start, else after a line break (the same first match).
_HEADER_FIELD_FIRST = re.compile(_FIELD)
_HEADER_FIELD_AFTER_BREAK = re.compile("\n" + _FIELD)


def _first_header_token(body: str) -> int:
    """Where the first of _HEADER_TOKEN is in ``body``; -1 if none is."""
    if not body.isascii():
        token = _HEADER_TOKEN.search(body)
        return -1 if token is None else token.start()
    low = body.lower()
    found = [at for word in _HEADER_WORDS if (at := low.find(word)) >= 0]
    if _HEADER_FIELD_FIRST.match(low):
        found.append(0)
    elif field := _HEADER_FIELD_AFTER_BREAK.search(low):
        found.append(field.start() + 1)
    return min(found, default=-1)


def header_matches(pattern: re.Pattern[str], body: str, pos: int) -> Iterator[re.Match[str]]:
    """``pattern.finditer(body, pos)`` for mailparser_reply's header pattern, tried only
    where one of its matches can start: a line's start (its branches begin with "^" in
    MULTILINE mode) or a line break (its Outlook branches begin with ``(?:^|\n|...)``).
    The engine would try every position with each branch (most of ``latest_reply``'s
    time). An empty match, which these branches cannot make, hands over to finditer."""
    end = len(body)
    while pos <= end:
        if pos and body[pos - 1] != "\n" and not body.startswith("\n", pos):
            pos = body.find("\n", pos)
            if pos < 0:
                return
        match = pattern.match(body, pos)
        if match is None:
            pos += 1
        elif match.end() == match.start():
            yield from pattern.finditer(body, pos)
            return
        else:
            yield match
            pos = match.end()


class _LatestReply(EmailMessage):
    """mailparser_reply's message (its text normalised as it does), for the header pattern.

    Why not ``EmailReplyParser.parse_reply``: that is ``EmailMessage(...).read()
    .latest_reply``, the content of the first reply, but ``read`` finds every header of
    the whole text, runs the disclaimer and signature patterns over every reply (only
    ``EmailReply.body`` uses them) and builds the header pattern anew for each message:
    two thirds of a mail sync's time (#16). :func:`latest_reply` reads only up to the
    first reply, with the same pattern built once.
    """

    _header_cache: dict[tuple[str, ...], re.Pattern[str]] = {}

    def _normalize_text(self) -> None:
        """The parent's, with its Outlook-separator substitution (up to ``re.MULTILINE``,
        i.e. 8, as the parent passes it as the count) run only when a run of ``_``/``-``
        can be there at all (a run of 32 holds two of them side by side)."""
        self.text = "\n".join(line.strip() for line in self.text.replace("\r\n", "\n").split("\n"))
        if any(pair in self.text for pair in ("__", "--", "_-", "-_")):
            self.text = re.sub(f"([^\n]){OUTLOOK_MAIL_SEPARATOR}", "\\1\n", self.text, re.MULTILINE)  # noqa: B034

    @property
    def HEADER_REGEX(self) -> re.Pattern[str]:  # noqa: N802 - the parent's name
        key = tuple(self.languages)
        if key not in self._header_cache:
            self._header_cache[key] = EmailMessage.HEADER_REGEX.fget(self)  # type: ignore[attr-defined]
        return self._header_cache[key]


def latest_reply(text: str) -> str:
    """``_reply_parser.parse_reply(text=text)``: the same string, for a fraction of the work.

    ``read`` cuts the text at each header found (``str.find`` of each non-empty group of
    each match, from the previous cut) and the first non-blank piece is the latest reply;
    here the matches are taken one at a time until that piece is found, starting a few
    lines before the first header token (no header starts earlier), and a text without a
    token has no header at all. tests/test_mail_speed.py compares the two.
    """
    message = _LatestReply(text=text, languages=list(REPLY_LANGUAGES))
    body = message.text
    token = _first_header_token(body)
    if token < 0:
        return body.strip()
    start = body.rfind("\n", 0, token) + 1
    for _ in range(_HEADER_LINES_BEFORE_TOKEN):
        if start == 0:
            break
        start = body.rfind("\n", 0, start - 1) + 1
    current = 0
    for match in header_matches(message.HEADER_REGEX, body, max(start - 1, 0)):
        for header in match.groups():
            if not header:
                continue
            position = body.find(header, current + 1 if current > 0 else current)
            content = body[current:position].strip()
            current = position if position >= 0 else 0
            if content:
                return content
    return body[current:].strip()


_HIDDEN = ("script", "style", "head", "blockquote", "div")  # div: only div.gmail_quote
_BLOCKS = ("br", "p", "div", "li", "tr", "h1", "h2", "h3")
_parsers = threading.local()  # an lxml parser serves one thread at a time


def _html_parser() -> etree.HTMLParser:
    if not hasattr(_parsers, "html"):
        _parsers.html = etree.HTMLParser(
            encoding="utf-8", no_network=True, remove_comments=True, remove_pis=True
        )
    return _parsers.html


def html_to_text(html: str) -> str:
    """Visible text of an HTML document (scripts, styles and quoted blocks dropped), from
    its first :data:`HTML_LIMIT` characters."""
    data = html[:HTML_LIMIT].encode("utf-8", errors="replace")  # as bytes: no encoding clash
    try:
        root = etree.fromstring(data, _html_parser())
    except etree.LxmlError:
        return ""
    if root is None:
        return ""
    for node in list(root.iter(*_HIDDEN)):
        if node.tag != "div" or "gmail_quote" in (node.get("class") or "").split():
            _drop(node)
    for node in root.iter(*_BLOCKS):
        node.tail = "\n" + (node.tail or "")
    body = root.find("body")
    return "".join((root if body is None else body).itertext())


def _drop(node: etree._Element) -> None:
    """Remove ``node`` and what it holds; the text after it stays."""
    parent = node.getparent()
    if parent is None:
        return
    if node.tail:
        before = node.getprevious()
        if before is not None:
            before.tail = (before.tail or "") + node.tail
        else:
            parent.text = (parent.text or "") + node.tail
    parent.remove(node)


_SIGNATURE = re.compile(r"^-- ?$", re.MULTILINE)


def strip_quoted(text: str) -> str:
    """The newest part of a reply: quoted history, signatures and disclaimers removed."""
    if "--" in text:  # (what the patterns below need, looked for first: a quick "no")
        text = _SIGNATURE.split(text, maxsplit=1)[0]  # RFC 3676 signature delimiter
    window = text[:TEXT_WINDOW]
    if "\n" not in window.strip():
        # Quote headers, quoted blocks and signatures are made of lines: one line (a CRM
        # description, say) has none for the costly reply parser to find.
        return _unquoted(text)
    try:
        latest = latest_reply(window)
    except Exception:  # the parser is heuristic; never lose the message over it
        latest = text
    if not latest or not latest.strip():
        latest = text
    return _unquoted(latest)


def _unquoted(text: str) -> str:
    """``text`` without its quoted lines ("> ...")."""
    return _QUOTED_LINE.sub("", text) if ">" in text else text


def normalise_whitespace(text: str) -> str:
    # _WS matches only where one of these is: most texts have none, and looking costs an
    # eighth of the substitution's scan
    if "  " in text or any(odd in text for odd in _ODD_SPACES):
        text = _WS.sub(" ", text)
    text = _BLANKS.sub("\n", text)
    return "\n".join(line.strip() for line in text.splitlines()).strip()


def latest_text(text: str | None, html: str | None = None) -> str | None:
    """The newest part of a message as plain text (quotes, signature, markup removed).

    At most :data:`TEXT_WINDOW` characters from the start of the body: enough for a
    snippet and for signals, and bounded work however long the body or its lines are.
    """
    if not text and html:
        text = html_to_text(html)
    if not text:
        return None
    text = text[: TEXT_WINDOW * 16].lstrip()[:TEXT_WINDOW]
    if not _LINE_BREAK.search(text):  # one line (a CRM description): spaces are all to fix
        if _SIGNATURE.fullmatch(text) or _QUOTED_LINE.match(text):
            return None
        return _WS.sub(" ", text).strip() or None
    return normalise_whitespace(strip_quoted(text)) or None


def truncate(text: str | None, limit: int = SNIPPET_LIMIT) -> str | None:
    if not text:
        return None
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def make_snippet(
    text: str | None, html: str | None = None, limit: int = SNIPPET_LIMIT
) -> str | None:
    """A plain-text snippet of at most ``limit`` characters from a text or HTML body."""
    return truncate(latest_text(text, html), limit)


def clean_text(value: str | None) -> str | None:
    """No NUL byte and no unpaired surrogate: text every database stores (PostgreSQL
    refuses NUL in text; a lone surrogate cannot be encoded as UTF-8)."""
    if not value or value.isascii() and "\0" not in value:
        return value
    value = value.replace("\0", "")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a pair becomes its character, a lone one U+FFFD
        value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value
