"""Reader thread: the runner reads a source's records in a thread, ahead of the writer.

Not to be confused with :mod:`oppkit.sources.page_ahead`, which a source uses to
fetch its next upstream page; this one sits in the runner, between any source and the
writer, and hands records over in chunks.

Why: a sync spends its time in two places that can overlap. The source waits on the
network (an HTTPS page, an IMAP fetch) and parses; the writer waits on the database
(SQLite and the PostgreSQL driver release the GIL while they work). Reading the next
records while the current batch is written hides one behind the other.

The records arrive in the order the source yields them, checkpoints included, so the
runner's guarantees do not change: a checkpoint is still written with the rows before it.
Memory stays bounded: at most ``depth`` chunks of ``chunk`` records wait in the queue;
a checkpoint is handed over at once, so it commits as soon as it would have without.
An exception in the source is raised to the consumer at the point in the stream where it
happened; when the consumer stops early, the source is closed in its own thread.

Example::

    for record in read_ahead(read_mailbox(path, cursors)):
        ...
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from ..sources.records import Checkpoint
from ..stops import stopping

_DONE = object()


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def read_ahead(records: Iterable[Any], chunk: int = 200, depth: int = 32) -> Iterator[Any]:
    """Yield ``records`` while a thread reads further ahead (up to ``chunk * depth``).

    ``depth`` 32: the writer writes a batch of up to 5,000 rows at a time (about a second
    of mail); the reader must be able to run that far ahead, or a source that parses in
    worker processes leaves them idle while the batch is written (8 chunks, ~1,300 mails
    with checkpoints, kept them idle half the time in #16).
    """
    waiting: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                waiting.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        iterator = iter(records)
        batch: list[Any] = []
        try:
            for record in iterator:
                batch.append(record)
                if len(batch) >= chunk or isinstance(record, Checkpoint):
                    if not put(batch):
                        return
                    batch = []
            if batch and not put(batch):
                return
            put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            if not batch or put(batch):  # what came before the fault is still written
                put(_Failed(exc))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="oppkit-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = waiting.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield from item
    finally:
        stop.set()
        # a stop (Ctrl-C, SIGTERM) must not wait for a read under way: the thread is a
        # daemon and ends with the process; otherwise let the source close itself
        interrupted = stopping() or isinstance(sys.exc_info()[1], KeyboardInterrupt)
        thread.join(timeout=0.2 if interrupted else 5)
