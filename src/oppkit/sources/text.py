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

from lxml import etree
from mailparser_reply import EmailReplyParser

SNIPPET_LIMIT = 400
HTML_LIMIT = 256 * 1024  # characters of an HTML body converted to text
# A whitespace run becomes one space; a lone space is already that, so it is not a match
# (replacing every single space of a text cost more than the rest of a snippet).
_WS = re.compile(r" [ \t\r\f\v\u00a0]+|[\t\r\f\v\u00a0][ \t\r\f\v\u00a0]*")
_BLANKS = re.compile(r"\n\s*\n+")
_QUOTED_LINE = re.compile(r"^\s*>.*$", re.MULTILINE)
_LINE_BREAK = re.compile("[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")  # what splitlines() splits on
# Only the start of a body can reach a snippet: a quote header further down is cut off
# anyway, so the (regex-heavy) reply parser and the signal rules read a window, not the
# whole thread.
TEXT_WINDOW = SNIPPET_LIMIT * 4
_reply_parser = EmailReplyParser(languages=["en", "de", "fr", "es", "nl"])
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
    text = _SIGNATURE.split(text, maxsplit=1)[0]  # RFC 3676 signature delimiter
    window = text[:TEXT_WINDOW]
    if "\n" not in window.strip():
        # Quote headers, quoted blocks and signatures are made of lines: one line (a CRM
        # description, say) has none for the costly reply parser to find.
        return _QUOTED_LINE.sub("", text)
    try:
        latest = _reply_parser.parse_reply(text=window)
    except Exception:  # the parser is heuristic; never lose the message over it
        latest = text
    if not latest or not latest.strip():
        latest = text
    return _QUOTED_LINE.sub("", latest)


def normalise_whitespace(text: str) -> str:
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
