"""Secrets out of every text oppkit prints, logs or stores.

Why: an upstream error body may repeat what was sent (a proxy's error page echoes the
request headers, exchangelib's debug log shows them), and oppkit prints such messages,
logs them and keeps them in ``sync_runs.message`` and ``last_error`` columns. Every such
text goes through :func:`redact` (or :func:`one_line`, which also makes it one bounded,
printable line), and the CLI's log handler through :class:`RedactingFilter`.

What is removed: the values of ``OPPKIT_*`` variables named like a secret (PASSWORD,
SECRET, TOKEN, SESSION_ID, KEY), secrets oppkit was handed otherwise (:func:`remember`),
Authorization / Bearer / OAuth / Basic credentials, ``sid=`` cookies and ``password=``-style
parameters, passwords in URLs and Salesforce session ids (``00D...!...``).

Example::

    one_line("401: Authorization: Bearer 00D5g000001!AQ4x...\\n")
    # '401: Authorization: Bearer ***'
"""

from __future__ import annotations

import base64
import logging
import os
import re
import threading

from .errors import printable

MASK = "***"
MESSAGE_LIMIT = 300  # characters of an error line that is printed or stored
MIN_SECRET = 4  # shorter values would mask ordinary text, and guard nothing
MIN_REMEMBERED = 12  # a session id a login issued is long; a short one is a test's word
_SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|SESSION_ID|KEY", re.IGNORECASE)
_NAMES_A_FILE = re.compile(r"_(FILE|PATH|DIR|BUNDLE)$", re.IGNORECASE)
_FIELD = r"sid|session_?id|access_token|refresh_token|id_token|client_secret|password|passwd|pwd|api_?key"
_CREDENTIALS = re.compile(r"\b(Bearer|OAuth|Basic|NTLM|Negotiate)(\s+)([A-Za-z0-9._~+/!=-]{8,})")
_AUTHORIZATION = re.compile(
    r"(?i)\b((?:proxy-)?authorization['\"]?\s*[:=]\s*['\"]?)"
    r"(?:(basic|bearer|oauth|ntlm|negotiate|digest|token)(\s+))?[^\s'\",;}]+"
)
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # sid=... cookies, password=... parameters
    (re.compile(rf"(?i)\b({_FIELD})=[^\s&;'\",]+"), r"\1=" + MASK),
    # "password": "...", 'sessionId': '...' (JSON, a dict's repr)
    (re.compile(rf"(?i)(['\"](?:{_FIELD}|sessionid)['\"]\s*:\s*['\"])[^'\"]*"), r"\1" + MASK),
    # <password>...</password>, <n1:sessionId>...</n1:sessionId> (SOAP)
    (re.compile(r"(?i)(<(?:\w+:)?(?:password|sessionid)>)[^<]*"), r"\1" + MASK),
    # scheme://user:password@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@"), r"\1" + MASK + "@"),
    # a Salesforce session id: the org id, "!", the token
    (re.compile(r"(?<![A-Za-z0-9])00D[A-Za-z0-9]{2,15}![A-Za-z0-9._=+/-]+"), MASK),
)


def _authorization(match: re.Match[str]) -> str:
    """An Authorization header's value, whatever its form, keeping the scheme's name."""
    return f"{match[1]}{match[2]}{match[3]}{MASK}" if match[2] else match[1] + MASK


def _credentials(match: re.Match[str]) -> str:
    """A scheme and its credentials outside a header (Bearer <token>), but not the words
    of "Basic authentication" or "OAuth settings"."""
    scheme, space, value = match[1], match[2], match[3]
    if scheme == "Basic":
        try:
            looks_secret = ":" in base64.b64decode(value, validate=True).decode()
        except ValueError:
            looks_secret = False
    else:
        looks_secret = not value.isalpha()
    return f"{scheme}{space}{MASK}" if looks_secret else match[0]


_remembered: set[str] = set()
_lock = threading.Lock()


def remember(*values: str | None) -> None:
    """Secrets oppkit holds that did not come from an ``OPPKIT_*`` variable (a session id
    issued at login, settings made in a notebook): they are masked from now on."""
    with _lock:
        _remembered.update(v for v in values if v and len(v) >= MIN_REMEMBERED)


def known_secrets() -> list[str]:
    """Every secret value oppkit knows now, longest first."""
    found = {
        value
        for name, value in os.environ.items()
        if name.upper().startswith("OPPKIT_")
        and _SECRET_NAME.search(name)
        and not _NAMES_A_FILE.search(name)
        and len(value) >= MIN_SECRET
    }
    with _lock:
        found |= _remembered
    return sorted(found, key=len, reverse=True)


def redact(text: str) -> str:
    """``text`` with every secret oppkit knows, and everything shaped like one, masked."""
    for secret in known_secrets():
        text = text.replace(secret, MASK)
    text = _AUTHORIZATION.sub(_authorization, text)
    text = _CREDENTIALS.sub(_credentials, text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def one_line(text: object, limit: int = MESSAGE_LIMIT) -> str:
    """Redacted, printable, one line of at most ``limit`` characters (cut with "…"); see
    :func:`oppkit.errors.printable` for what becomes of control characters."""
    return printable(redact(str(text)), limit)


def error_line(exc: BaseException, limit: int = MESSAGE_LIMIT) -> str:
    """What an error says, as :func:`one_line` (its type's name when it says nothing)."""
    return one_line(str(exc).strip() or type(exc).__name__, limit)


class RedactingFilter(logging.Filter):
    """A log filter (put it on a handler) that masks secrets in the message and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string: leave it to the handler
            return True
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install(handler: logging.Handler) -> None:
    """Put a :class:`RedactingFilter` on ``handler`` (once)."""
    if not any(isinstance(f, RedactingFilter) for f in handler.filters):
        handler.addFilter(RedactingFilter())


__all__ = [
    "MASK",
    "MESSAGE_LIMIT",
    "RedactingFilter",
    "error_line",
    "install",
    "known_secrets",
    "one_line",
    "redact",
    "remember",
]
