"""The read-ahead thread keeps the stream's order, its faults and its bounds."""

from __future__ import annotations

import threading
import time

import pytest

from oppkit.sources.records import Checkpoint
from oppkit.sync.reader_thread import read_ahead


def test_records_and_checkpoints_arrive_in_order():
    items = [*range(450), Checkpoint("x", {"n": 450}), *range(450, 500)]
    assert list(read_ahead(iter(items), chunk=100)) == items


def test_a_fault_in_the_source_comes_after_everything_read_before_it():
    def source():
        yield from range(5)
        yield Checkpoint("x", {"n": 5})
        yield 5
        raise ConnectionError("server went away")

    seen = []
    with pytest.raises(ConnectionError, match="went away"):
        for item in read_ahead(source(), chunk=100):
            seen.append(item)
    assert seen == [0, 1, 2, 3, 4, Checkpoint("x", {"n": 5}), 5]


def test_a_checkpoint_is_handed_over_without_waiting_for_a_full_chunk():
    release = threading.Event()

    def source():
        yield 1
        yield Checkpoint("x", {"n": 1})
        release.wait(5)  # a slow network read after the checkpoint
        yield 2

    stream = read_ahead(source(), chunk=100)
    started = time.perf_counter()
    assert next(stream) == 1
    assert next(stream) == Checkpoint("x", {"n": 1})
    assert time.perf_counter() - started < 2
    release.set()
    assert list(stream) == [2]


def test_stopping_early_closes_the_source_and_reads_only_a_bounded_amount_ahead():
    produced, closed = [], threading.Event()

    def source():
        try:
            for i in range(100_000):
                produced.append(i)
                yield i
        finally:
            closed.set()

    stream = read_ahead(source(), chunk=10, depth=3)
    assert [next(stream) for _ in range(5)] == [0, 1, 2, 3, 4]
    time.sleep(0.3)  # let the reader run ahead as far as it may
    assert len(produced) <= 10 * (3 + 2)
    stream.close()
    assert closed.wait(5)
    assert len(produced) < 100
