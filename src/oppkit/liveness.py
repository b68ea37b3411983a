"""Is the process behind a run (or a lock) still there? One rule for the writer and readers.

Why: an agent killed with ``kill -9`` (or by the OOM killer, or a power cut) never
records the end of its run, so its ``sync_runs`` row would say "running" forever. A run
records its host, process id and a heartbeat (every :data:`HEARTBEAT_SECONDS`); it is
*gone* once its process no longer runs on this host, or its heartbeat is older than
:data:`STALE_AFTER` (from any host: the process may have been replaced by another with
the same id, or run on another machine). ``oppkit status`` and ``kit.sync_status()``
show such a run as interrupted, and the next run marks it so.

Example::

    process_gone(socket.gethostname(), 12345)                 # True once 12345 exited
    run_gone("running", host, pid, heartbeat_at, now=now)     # what status shows
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta

HEARTBEAT_SECONDS = 15.0  # how often a running sync says it is alive
STALE_AFTER = timedelta(minutes=2)  # no heartbeat for this long: the run is gone

__all__ = [
    "HEARTBEAT_SECONDS", "STALE_AFTER", "interrupted_message", "process_gone", "run_gone",
    "this_host",
]  # fmt: skip


def this_host() -> str:
    return socket.gethostname()


def process_gone(host: str | None, pid: int | None) -> bool:
    """True when ``pid`` was a process on this host that no longer runs.

    A process on another host (or an unknown one) is never called gone here: only its
    heartbeat can tell.
    """
    if host != this_host() or not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return False
    return False


def run_gone(
    status: str | None,
    host: str | None,
    pid: int | None,
    last_sign: datetime | None,
    *,
    now: datetime | None = None,
) -> bool:
    """Whether a run recorded as ``running`` has no process behind it any more.

    ``last_sign`` is its last heartbeat (or its start, for runs recorded before
    heartbeats). A run in any other status is not gone: it ended.
    """
    if status != "running":
        return False
    if process_gone(host, pid):
        return True
    if last_sign is None:
        return False
    now = now or datetime.now(UTC)
    return now - last_sign > STALE_AFTER


def interrupted_message(host: str | None, pid: int | None) -> str:
    """What a run whose process is gone says (its ``sync_runs.message``)."""
    who = f"{host}:{pid}" if host else "an older oppkit"
    return f"interrupted: its process ({who}) ended without finishing the run"
