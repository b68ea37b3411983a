"""Errors the CLI turns into exit codes: 2 for bad input from the user, 1 for failures;
and :func:`printable`, the one way a message quotes input it could not use."""

from __future__ import annotations

import re


class OppkitError(Exception):
    """Base class; ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class ConfigError(OppkitError):
    """Bad arguments or configuration (a missing file, an unknown option value)."""

    exit_code = 2


class SourceError(OppkitError):
    """An upstream system or file could not be read."""

    exit_code = 1


class DatabaseError(OppkitError):
    """The database could not be reached or migrated."""

    exit_code = 1


# An ANSI escape sequence as a whole (CSI "ESC [ ... letter", OSC "ESC ] ... BEL or ESC \",
# or ESC and one character), so a terminal never acts on what a bad input echoes.
_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]?|\][^\x07\x1b]*(?:\x07|\x1b\\)?|.)?", re.S)
_SPACES = re.compile(r"\s+")


def printable(text: object, limit: int = 200) -> str:
    """``text`` as one printable line of at most ``limit`` characters (cut with "…").

    For messages that quote bad input (a Skipped reason, an error): line breaks, tabs and
    runs of white space become one space; an escape sequence or any other control
    character becomes one ``?``, so a terminal shows it and acts on none of it. Bytes are
    read as UTF-8 (undecodable bytes become U+FFFD). Letters of every script stay.

    >>> printable("\\x1b[31mred\\x1b[0m\\nnext line\\x00")
    '?red? next line?'
    """
    if isinstance(text, bytes | bytearray):
        text = bytes(text).decode("utf-8", "replace")
    flat = _ESCAPE.sub("?", str(text))
    flat = _SPACES.sub(" ", flat).strip()
    if not flat.isprintable():
        flat = "".join(c if c.isprintable() else "?" for c in flat)
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"
