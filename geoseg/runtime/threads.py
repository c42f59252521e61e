"""The one home of geoseg's bounded background threads: overlap reading, model compute and writing.

GDAL reads/writes, zlib/zstd compression, most numpy kernels and TensorFlow all release the
GIL, so one thread per stage keeps the model busy while the other stages run beside it. Every
stage hands over through a bounded queue, so memory stays bounded by a few items per stage.

- :func:`prefetch` runs a producer ahead of its consumer (prediction chains two: window reads,
  then the model one batch ahead of the accumulation).
- :class:`BackgroundConsumer` runs a consumer behind its producer (prediction's writer).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_END = object()


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


def prefetch(items: Iterable[T], depth: int = 2, name: str = "geoseg-prefetch") -> Iterator[T]:
    """Iterate ``items`` in a background thread, keeping up to ``depth`` items ready.

    Exceptions raised by the producer are re-raised in the consumer. Closing the returned
    generator early (``break``, an exception) stops the producer.
    """
    if depth <= 0:
        yield from items
        return
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_END)
        except BaseException as exc:  # forwarded to the consumer
            q.put(_Failure(exc))

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                pass
            thread.join(timeout=0.05)


class BackgroundConsumer:
    """Run ``func(item)`` for each submitted item, in order, in one background thread.

    ``submit`` blocks when ``depth`` items are waiting (back-pressure bounds memory). The first
    exception raised by ``func`` is re-raised by the next ``submit`` or by ``close``. As a context
    manager it closes on a normal exit (waiting for every item) and, when the block raised,
    drops the items still waiting and lets the block's exception through.
    """

    def __init__(self, func: Callable[[Any], None], depth: int = 2, name: str = "geoseg-writer"):
        self._func = func
        self._q: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self._cancelled = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is _END:
                return
            if self._error is None and not self._cancelled:
                try:
                    self._func(item)
                except BaseException as exc:
                    self._error = exc

    def submit(self, item: Any) -> None:
        self._raise()
        self._q.put(item)

    def close(self) -> None:
        """Wait for all submitted items, then re-raise the first failure if any."""
        self._q.put(_END)
        self._thread.join()
        self._raise()

    def __enter__(self) -> BackgroundConsumer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if exc_type is None:
            self.close()
            return
        self._cancelled = True
        self._q.put(_END)
        self._thread.join()

    def _raise(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err
