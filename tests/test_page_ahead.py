"""Fetching one page ahead keeps the order, the faults, the bound and the overlap."""

from __future__ import annotations

import threading
import time

import pytest

from oppkit.sources.page_ahead import one_ahead


def test_pages_arrive_in_order():
    assert list(one_ahead(iter(range(50)))) == list(range(50))


def test_a_fault_fetching_a_page_comes_after_the_pages_before_it():
    def pages():
        yield "page 1"
        yield "page 2"
        raise ConnectionError("server went away")

    seen = []
    with pytest.raises(ConnectionError, match="went away"):
        for page in one_ahead(pages()):
            seen.append(page)
    assert seen == ["page 1", "page 2"]


def test_the_next_page_is_fetched_while_this_one_is_processed():
    def pages():  # the server takes 0.2 s a page
        for n in range(5):
            time.sleep(0.2)
            yield n

    started = time.perf_counter()
    for _page in one_ahead(pages()):
        time.sleep(0.2)  # the caller takes as long to process it
    # one after the other: 2 s; overlapped: about 1.2 s
    assert time.perf_counter() - started < 1.7


def test_stopping_early_fetches_at_most_one_page_more_and_closes_the_source():
    fetched, closed = [], threading.Event()

    def pages():
        try:
            for n in range(100):
                fetched.append(n)
                yield n
        finally:
            closed.set()

    for page in one_ahead(pages()):
        if page == 3:
            break
    assert closed.is_set()
    assert fetched in ([0, 1, 2, 3], [0, 1, 2, 3, 4])
