"""Turning message bodies into short plain-text snippets for the timeline.

Why: a timeline row should show what a person wrote, not the quoted thread below it,
the HTML markup around it or a wall of whitespace.

>>> make_snippet("Thanks, see you Monday.\\n\\nOn Fri, Bob wrote:\\n> earlier text")
'Thanks, see you Monday.'
"""

from __future__ import annotations

import re

from mailparser_reply import EmailReplyParser
from selectolax.lexbor import LexborHTMLParser

SNIPPET_LIMIT = 400
# A whitespace run becomes one space; a lone space is already that, so it is not a match
# (replacing every single space of a text cost more than the rest of a snippet).
_WS = re.compile(r" [ \t\r\f\v\u00a0]+|[\t\r\f\v\u00a0][ \t\r\f\v\u00a0]*")
_BLANKS = re.compile(r"\n\s*\n+")
_QUOTED_LINE = re.compile(r"^\s*>.*$", re.MULTILINE)
_LINE_BREAK = re.compile("[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")  # what splitlines() splits on
# Only the start of a body can reach a snippet: a quote header further down is cut off
# anyway, so the (regex-heavy) reply parser reads a window, not the whole thread.
_PARSE_WINDOW = SNIPPET_LIMIT * 4
_reply_parser = EmailReplyParser(languages=["en", "de", "fr", "es", "nl"])


def html_to_text(html: str) -> str:
    """Visible text of an HTML document (scripts, styles and quoted blocks dropped)."""
    tree = LexborHTMLParser(html)
    for selector in ("script", "style", "head", "blockquote", "div.gmail_quote"):
        for node in tree.css(selector):
            node.decompose()
    for node in tree.css("br, p, div, li, tr, h1, h2, h3"):
        node.insert_after("\n")
    return tree.body.text(separator="") if tree.body else tree.text(separator="")


_SIGNATURE = re.compile(r"^-- ?$", re.MULTILINE)


def strip_quoted(text: str) -> str:
    """The newest part of a reply: quoted history, signatures and disclaimers removed."""
    text = _SIGNATURE.split(text, maxsplit=1)[0]  # RFC 3676 signature delimiter
    window = text[:_PARSE_WINDOW]
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

    At most the first few thousand characters: enough for a snippet and for signals.
    """
    if not text and html:
        text = html_to_text(html)
    if not text:
        return None
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
