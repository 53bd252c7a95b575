"""The read-ahead thread: pages in order, errors raised to the reader, an early stop
stops the producer, and ``ready`` says when taking the next page costs no wait."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from lexful_source.paging import ReadAhead


def wait_until(condition, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return False


def test_pages_arrive_in_order_and_then_the_end() -> None:
    ahead = ReadAhead(iter(range(10)), depth=3)
    assert list(ahead) == list(range(10))
    assert ahead.ready, "after the end, next() does not wait"
    with pytest.raises(StopIteration):
        next(ahead)


def test_ready_only_once_a_page_is_waiting() -> None:
    release = threading.Event()

    def pages() -> Iterator[int]:
        yield 1
        release.wait()
        yield 2

    ahead = ReadAhead(pages(), depth=3)
    assert wait_until(lambda: ahead.ready)
    assert next(ahead) == 1
    assert not ahead.ready, "page 2 is not produced yet"
    release.set()
    assert wait_until(lambda: ahead.ready)
    assert next(ahead) == 2


def test_a_producer_error_reaches_the_reader_after_the_pages_before_it() -> None:
    def pages() -> Iterator[int]:
        yield 1
        raise RuntimeError("page 2 failed")

    ahead = ReadAhead(pages(), depth=3)
    assert next(ahead) == 1
    with pytest.raises(RuntimeError, match="page 2 failed"):
        next(ahead)


def test_closing_stops_the_producer_at_the_queue_depth() -> None:
    produced: list[int] = []

    def pages() -> Iterator[int]:
        for n in range(1000):
            produced.append(n)
            yield n

    ahead = ReadAhead(pages(), depth=2)
    assert next(ahead) == 0
    ahead.close()
    time.sleep(0.3)  # the producer notices the stop within its 0.1 s put timeout
    stopped_at = len(produced)
    time.sleep(0.3)
    assert len(produced) == stopped_at < 10
