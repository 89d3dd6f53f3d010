"""What a running loop has done and what is inside it now, for the monitor and the watchdog.

The loop driver updates one ``Progress`` as requests go in and come out; other threads (the
background monitor, the hang watchdog, a metrics endpoint) read it at any time. Reads and
writes hold one lock for a few dictionary operations, so an engine step never waits on them.

``last_progress`` moves whenever a request finishes or the transport reports new output
tokens (the in-process engine does, every step that produced any; a server only reports
finished requests): a run with requests inside whose ``last_progress`` is old is stuck.

Each finished request is also logged on ``vlmcap.requests`` (DEBUG, or the level the run sets)::

    [REQUEST START] clip.mp4 id=5e1f-12 stage=stage1
    [REQUEST COMPLETE] clip.mp4 id=5e1f-12 stage=stage1 total=3.45s queue=0.02s
        first_token=0.24s generation=3.21s tokens=87 tokens/s=27.1
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from vlmcap.core.request import Completion

request_logger = logging.getLogger("vlmcap.requests")


@dataclass(frozen=True)
class InFlight:
    """One request inside the transport."""

    request_id: str
    key: str  # the item's key
    stage: str
    since: float  # monotonic time it went in
    since_wall: float  # the same instant, ``time.time()``

    def age(self, now: float) -> float:
        return now - self.since


@dataclass(frozen=True)
class ProgressView:
    """A consistent copy of a ``Progress`` at one instant (``time.monotonic`` based)."""

    at: float
    requests_done: int  # requests finished (a stage-2 item counts two)
    items_ok: int
    items_failed: int
    output_tokens: int
    inflight: int
    oldest: tuple[InFlight, ...]  # the oldest requests inside, oldest first
    last_progress: float
    latency_counts: tuple[int, ...] = ()  # requests per ``LATENCY_BUCKETS_S`` bucket
    latency_sum_s: float = 0.0

    @property
    def stalled_s(self) -> float:
        """Seconds without progress while requests were inside (0 when nothing is inside)."""
        return self.at - self.last_progress if self.inflight else 0.0

    @property
    def oldest_age_s(self) -> float | None:
        return self.oldest[0].age(self.at) if self.oldest else None


#: Requests ``ProgressView.oldest`` lists by default.
OLDEST_SHOWN = 5
#: Upper bounds (seconds) of the request-latency histogram's buckets; the last is open.
LATENCY_BUCKETS_S = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, float("inf"))


class Progress:
    """Thread-safe counters of one run, written by the loop driver."""

    def __init__(
        self,
        *,
        log_level: int = logging.DEBUG,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log_level = log_level
        self._clock = clock
        self._lock = threading.Lock()
        self._inside: dict[str, InFlight] = {}
        self._requests_done = 0
        self._ok = 0
        self._failed = 0
        self._tokens = 0
        self._outputs_seen: int | None = None
        self._last = clock()
        self._latency_counts = [0] * len(LATENCY_BUCKETS_S)
        self._latency_sum = 0.0

    def submitted(self, request_id: str, key: str, stage: str) -> None:
        entry = InFlight(request_id, key, stage, self._clock(), time.time())
        with self._lock:
            if not self._inside:
                self._last = entry.since  # a stall is measured from when work went in
            self._inside[request_id] = entry
        if request_logger.isEnabledFor(self.log_level):
            request_logger.log(
                self.log_level, "[REQUEST START] %s id=%s stage=%s", key, request_id, stage
            )

    def finished(self, request_id: str, completion: Completion) -> None:
        """A request came out (answered or failed)."""
        now = self._clock()
        with self._lock:
            entry = self._inside.pop(request_id, None)
            self._requests_done += 1
            self._tokens += completion.output_tokens
            self._last = now
            if entry is not None:
                latency = now - entry.since
                self._latency_sum += latency
                self._latency_counts[bisect.bisect_left(LATENCY_BUCKETS_S, latency)] += 1
        if entry is not None and request_logger.isEnabledFor(self.log_level):
            request_logger.log(self.log_level, "%s", timing_line(entry, completion, now))

    def item_done(self, ok: bool) -> None:
        with self._lock:
            if ok:
                self._ok += 1
            else:
                self._failed += 1

    def lost(self) -> None:
        """Everything inside is gone (the engine died); the records fail elsewhere."""
        with self._lock:
            self._inside.clear()

    def outputs_seen(self, count: int | None) -> None:
        """The transport's running count of partial outputs; a rise is progress."""
        if count is None:
            return
        with self._lock:
            if self._outputs_seen is not None and count > self._outputs_seen:
                self._last = self._clock()
            self._outputs_seen = count

    def view(self, oldest: int = OLDEST_SHOWN) -> ProgressView:
        with self._lock:
            inside = sorted(self._inside.values(), key=lambda e: e.since)[:oldest]
            return ProgressView(
                at=self._clock(),
                requests_done=self._requests_done,
                items_ok=self._ok,
                items_failed=self._failed,
                output_tokens=self._tokens,
                inflight=len(self._inside),
                oldest=tuple(inside),
                last_progress=self._last,
                latency_counts=tuple(self._latency_counts),
                latency_sum_s=self._latency_sum,
            )


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def timing_line(entry: InFlight, completion: Completion, now: float) -> str:
    """``[REQUEST COMPLETE] ...`` for one request (``now`` monotonic, when it came out).

    ``total`` runs from going into the transport to coming out; ``queue`` is the engine's time
    before scheduling it (in-process engine only); ``first_token`` from going in to the first
    output token; ``generation`` from the first token to the end, and tokens/s over it.
    """
    total = now - entry.since
    first = (
        completion.first_token_at - entry.since_wall
        if completion.first_token_at is not None
        else None
    )
    generation = total - first if first is not None and first <= total else None
    rate = completion.output_tokens / generation if generation else None
    status = f" error={completion.error!r}" if completion.error else ""
    return (
        f"[REQUEST COMPLETE] {entry.key} id={entry.request_id} stage={entry.stage} "
        f"total={_seconds(total)} queue={_seconds(completion.queue_s)} "
        f"first_token={_seconds(first)} generation={_seconds(generation)} "
        f"tokens={completion.output_tokens} tokens/s={'-' if rate is None else f'{rate:.1f}'}"
        f"{status}"
    )
