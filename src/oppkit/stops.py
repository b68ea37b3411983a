"""Clean stops: SIGINT and SIGTERM end a command or agent at once, with one line.

Why: agents run unattended for months and are stopped by Ctrl-C, systemd or a container
runtime. Whatever they are doing (connecting, reading, writing, sleeping), a stop must
keep everything committed (every write is a transaction; a half-written batch rolls
back and the next run resumes from the last checkpoint), print one line, exit 130
(SIGINT) or 143 (SIGTERM), and never hang or print a traceback.

SIGTERM raises :class:`Terminated`, a KeyboardInterrupt, so every place that cleans up
after Ctrl-C does the same for it. A second signal while the first one's clean-up runs
exits at once (committed work is safe in the database either way).

Python runs a signal handler only between bytecodes of the main thread, so a main thread
held in C (SQLite's busy wait on a locked database, a blocking socket read in a driver)
would not stop until the call returns. A watchdog thread learns of each signal through
:func:`signal.set_wakeup_fd` at once; when the process still lives :data:`GRACE` seconds
later it prints the one line and exits with the code. :func:`finish` ends a stopped
command with :func:`os._exit` after flushing its output: the interpreter's shutdown
(finalizers, connection pools, daemon threads) has nothing left to do that keeps data.

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
import sys
import threading
import time
from types import FrameType

CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}
GRACE = 1.0  # seconds a stop may take before the watchdog ends the process
LINES = {
    130: "oppkit: interrupted; committed work is kept, the next run resumes",
    143: "oppkit: stopped (SIGTERM); committed work is kept, the next run resumes",
}
_stopping: list[int] = []
_announced: list[int] = []
_armed: dict[str, object] = {}  # the handlers and wakeup fd install() replaced


class Terminated(KeyboardInterrupt):
    """The process was asked to stop (SIGTERM)."""


def exit_code(exc: BaseException) -> int:
    """130 for Ctrl-C (SIGINT), 143 for SIGTERM."""
    return 143 if isinstance(exc, Terminated) else 130


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    if _stopping:  # a second signal during the first one's clean-up: go now
        finish(CODES.get(_stopping[0], 130))
    _stopping.append(signum)
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def install() -> None:
    """Route SIGINT and SIGTERM to a clean stop (main thread only; else a no-op)."""
    _stopping.clear()
    _announced.clear()
    if threading.current_thread() is not threading.main_thread():
        return  # e.g. a notebook's worker thread: leave the process's handlers alone
    if not _armed:
        _armed["handlers"] = {signum: signal.getsignal(signum) for signum in CODES}
        read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)
        _armed["wakeup"] = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
        _armed["pipe"] = (read_end, write_end)
        threading.Thread(
            target=_watch, args=(read_end,), name="oppkit-stop-watchdog", daemon=True
        ).start()
    for signum in CODES:
        signal.signal(signum, _on_signal)


def disarm() -> None:
    """Give the process back the handlers :func:`install` replaced (in-process callers).

    The watchdog stays asleep on its pipe; signals no longer reach it.
    """
    if threading.current_thread() is not threading.main_thread() or not _armed:
        return
    for signum, handler in _armed.pop("handlers").items():  # type: ignore[union-attr]
        signal.signal(signum, handler)
    signal.set_wakeup_fd(_armed.pop("wakeup"))  # type: ignore[arg-type]
    _armed.clear()


def _watch(read_end: int) -> None:
    """The watchdog: a signal seen, then GRACE seconds and the process still alive: go."""
    while True:
        try:
            got = os.read(read_end, 64)
        except OSError:
            return
        codes = [CODES[signum] for signum in got if signum in CODES]
        if not codes or not _armed:
            continue
        time.sleep(GRACE)
        if _armed:
            finish(stop_code() or codes[0])


def announce(code: int) -> None:
    """Print the stop's one line on stderr (once, whoever gets there first)."""
    if not _announced:
        _announced.append(code)
        try:
            print(LINES.get(code, LINES[130]), file=sys.stderr, flush=True)
        except (OSError, ValueError, RuntimeError):  # stderr closed, or a reentrant write
            pass


def finish(code: int) -> None:
    """End a stopped process now: its one line, flushed output, exit ``code``."""
    announce(code)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def stopping() -> bool:
    """Whether a stop was asked for (threads and clean-ups may check it to end early)."""
    return bool(_stopping)


def stop_code() -> int:
    """The exit code of the stop asked for (130 or 143); 0 when none was."""
    return CODES.get(_stopping[0], 130) if _stopping else 0


__all__ = [
    "CODES", "GRACE", "Terminated", "announce", "disarm", "exit_code", "finish", "install",
    "stop_code", "stopping",
]  # fmt: skip
