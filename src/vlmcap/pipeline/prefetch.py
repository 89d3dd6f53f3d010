"""Decode ahead of the engine: a bounded pool of loader threads.

PyAV and Pillow release the GIL while they decode and scale, so threads decode in parallel
with the engine's own process. At most ``depth`` loaded results wait to be taken (plus the
``workers`` being decoded), so memory is bounded whatever the dataset size. Results come out
as they complete, not in input order: a slow file never holds back the ones behind it.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

S = TypeVar("S")
T = TypeVar("T")


class Prefetcher(Generic[S, T]):
    """Runs ``load(x)`` for every ``x`` of ``inputs`` on ``workers`` threads.

    ``poll(block)`` hands out finished results; ``exhausted`` turns true once every input's
    result has been taken. ``load`` must not raise (turn errors into results): an exception
    that escapes it is re-raised by ``poll``. Use as a context manager, or call ``close``.
    """

    def __init__(
        self,
        inputs: Iterable[S],
        load: Callable[[S], T],
        *,
        workers: int = 4,
        depth: int = 16,
        name: str = "vlmcap-decode",
    ) -> None:
        if workers < 1 or depth < 1:
            raise ValueError(f"workers and depth must be at least 1, got {workers}, {depth}")
        self._inputs: Iterator[S] | None = iter(inputs)
        self._load = load
        self._limit = workers + depth  # submitted but not yet taken
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._ready: queue.SimpleQueue[Future[T]] = queue.SimpleQueue()
        self._outstanding = 0
        self._mutex = threading.Lock()
        self._closed = False

    def _fill(self) -> None:
        """Submit loads until ``workers + depth`` results are pending or inputs run out."""
        with self._mutex:
            while self._inputs is not None and self._outstanding < self._limit:
                try:
                    x = next(self._inputs)
                except StopIteration:
                    self._inputs = None
                    break
                future = self._pool.submit(self._load, x)
                future.add_done_callback(self._ready.put)
                self._outstanding += 1

    @property
    def exhausted(self) -> bool:
        """True once every input has been loaded and its result taken."""
        with self._mutex:
            return self._inputs is None and self._outstanding == 0

    @property
    def pending(self) -> int:
        """Results submitted and not yet taken (decoding or waiting)."""
        return self._outstanding

    def poll(self, block: bool) -> T | None:
        """The next finished result; ``None`` if none is ready (``block=False``) or all done."""
        if self._closed:
            raise RuntimeError("the prefetcher is closed")
        self._fill()
        if self.exhausted:
            return None
        try:
            future = self._ready.get(block=block)
        except queue.Empty:
            return None
        with self._mutex:
            self._outstanding -= 1
        result = future.result()  # re-raises what escaped ``load``
        self._fill()
        return result

    def __iter__(self) -> Iterator[T]:
        while (result := self.poll(block=True)) is not None or not self.exhausted:
            if result is not None:
                yield result

    def close(self) -> None:
        """Stop submitting, drop queued loads, wait for the running ones."""
        self._closed = True
        with self._mutex:
            self._inputs = None
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Prefetcher[S, T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
