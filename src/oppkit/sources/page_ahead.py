"""Page-ahead: a source fetches the next page of an upstream API while this one is parsed.

Not to be confused with :mod:`oppkit.sync.reader_thread`, where the runner reads a
whole source in a thread ahead of the writer; this one works inside a source, one
page at a time.

Why: a sync alternates between waiting for a server (which prepares a page) and
parsing what arrived (while the server idles). Asking for the next page as soon as the
current one is in keeps both sides busy. Only one page is ever ahead, so memory stays
flat, and pages keep their order: a fault while fetching the next page is raised where
that page would have been yielded, after every page before it.

Example::

    for page in one_ahead(client.pages(query)):
        ...
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from ..stops import stopping

T = TypeVar("T")
_END = object()


def one_ahead(pages: Iterable[T]) -> Iterator[T]:
    """Yield ``pages`` in order while a helper thread already fetches the next one.

    Each fetch runs in a daemon thread: a stop (Ctrl-C, SIGTERM) never waits for a
    server that is slow to answer, and the process exits with it.
    """
    iterator = iter(pages)
    arrived: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=1)

    def fetch() -> None:
        try:
            arrived.put((True, next(iterator, _END)))
        except BaseException as exc:  # noqa: BLE001 - raised where the page would be
            arrived.put((False, exc))

    def start() -> threading.Thread:
        thread = threading.Thread(target=fetch, name="oppkit-page-ahead", daemon=True)
        thread.start()
        return thread

    fetching = start()
    try:
        while True:
            ok, page = arrived.get()
            if not ok:
                raise page
            if page is _END:
                return
            fetching = start()
            yield page
    finally:
        # The consumer stopped (or a fetch failed): let a fetch under way end, then close
        # the source here (a generator cannot be closed while it runs); on a stop, go now
        fetching.join(timeout=0.2 if stopping() else None)
        close = getattr(iterator, "close", None)
        if close is not None and not fetching.is_alive():
            close()
