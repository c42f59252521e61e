"""The one bounded background-thread helper (tiling patch writes, prediction writers)."""

from __future__ import annotations

import threading
import time

import pytest

from geoseg.runtime.threads import BackgroundConsumer, prefetch


def test_consumer_keeps_order_bounds_the_queue_and_waits_on_exit():
    done: list[int] = []
    peak = 0
    lock = threading.Lock()
    waiting = [0]

    def slow(i: int) -> None:
        time.sleep(0.005)
        with lock:
            waiting[0] -= 1
        done.append(i)

    with BackgroundConsumer(slow, depth=2) as c:
        for i in range(8):
            with lock:
                waiting[0] += 1
            c.submit(i)
            with lock:
                peak = max(peak, waiting[0])
    assert done == list(range(8))  # every item handled, in order, before the block ends
    assert peak <= 2 + 1 + 1  # depth queued + one being handled + the one just submitted


def test_consumer_failure_is_raised_not_lost():
    def boom(_):
        raise OSError("disk full: images/x.tif")

    with pytest.raises(OSError, match="disk full"):
        with BackgroundConsumer(boom, depth=2) as c:
            c.submit(1)


def test_consumer_drops_waiting_items_when_the_block_raises():
    gate = threading.Event()
    handled: list[int] = []

    def work(i: int) -> None:
        gate.wait(0.5)  # item 0 is being written while the block fails
        handled.append(i)

    with pytest.raises(RuntimeError, match="reader failed"):
        with BackgroundConsumer(work, depth=4) as c:
            for i in range(4):
                c.submit(i)
            raise RuntimeError("reader failed")
    assert handled in ([], [0])  # the block's error wins; the items still waiting are not written


def test_prefetch_forwards_errors_and_stops_early():
    def items():
        yield 1
        yield 2
        raise ValueError("bad window")

    got = []
    with pytest.raises(ValueError, match="bad window"):
        for v in prefetch(items(), depth=1):
            got.append(v)
    assert got == [1, 2]
