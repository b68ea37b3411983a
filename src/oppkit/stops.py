"""Clean stops: SIGINT and SIGTERM end a command or agent at once, with one line.

Why: agents run unattended for months and are stopped by Ctrl-C, systemd or a container
runtime. Whatever they are doing (connecting, reading, writing, sleeping), a stop must
keep everything committed (every write is a transaction; a half-written batch rolls
back and the next run resumes from the last checkpoint), print one line, exit 130
(SIGINT) or 143 (SIGTERM), and never hang or print a traceback.

SIGTERM raises :class:`Terminated`, a KeyboardInterrupt, so every place that cleans up
after Ctrl-C does the same for it. A second signal while the first one's clean-up runs
exits at once (committed work is safe in the database either way).

Example::

    install()          # first thing in a command's main
    try:
        run()
    except KeyboardInterrupt as exc:
        sys.exit(exit_code(exc))
"""

from __future__ import annotations

import os
import signal
from types import FrameType

CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}
_stopping: list[int] = []


class Terminated(KeyboardInterrupt):
    """The process was asked to stop (SIGTERM)."""


def exit_code(exc: BaseException) -> int:
    """130 for Ctrl-C (SIGINT), 143 for SIGTERM."""
    return 143 if isinstance(exc, Terminated) else 130


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    if _stopping:  # a second signal during the first one's clean-up: go now
        os._exit(CODES.get(_stopping[0], 130))
    _stopping.append(signum)
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def install() -> None:
    """Route SIGINT and SIGTERM to a clean stop (main thread only; else a no-op)."""
    _stopping.clear()
    try:
        for signum in CODES:
            signal.signal(signum, _on_signal)
    except ValueError:  # not the main thread (e.g. a notebook's worker): leave it
        pass


def stopping() -> bool:
    """Whether a stop was asked for (threads and clean-ups may check it to end early)."""
    return bool(_stopping)


def stop_code() -> int:
    """The exit code of the stop asked for (130 or 143); 0 when none was."""
    return CODES.get(_stopping[0], 130) if _stopping else 0


__all__ = ["CODES", "Terminated", "exit_code", "install", "stop_code", "stopping"]
