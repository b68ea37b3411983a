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

from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")
_END = object()


def one_ahead(pages: Iterable[T]) -> Iterator[T]:
    """Yield ``pages`` in order while a helper thread already fetches the next one."""
    iterator = iter(pages)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="oppkit-page-ahead")
    pending = pool.submit(next, iterator, _END)
    try:
        while (page := pending.result()) is not _END:
            pending = pool.submit(next, iterator, _END)
            yield page
    finally:
        # The consumer stopped (or a fetch failed): let a fetch under way end, then
        # close the source in this thread; a generator cannot be closed while it runs.
        pending.cancel()
        wait([pending])
        pool.shutdown(wait=False)
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
