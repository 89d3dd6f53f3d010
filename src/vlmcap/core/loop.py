"""The one loop driver: keep a transport topped up, settle what finishes, yield finished records.

Flow trace::

    drive(items, transport, lifecycle, stats)
      loop:
        top up, until transport.capacity requests are inside:
          stage-2 queue first                # they finish records soonest
          else the next item                 # pulled lazily: memory stays bounded; from a
                                             # PollingSource only what is ready, unless
                                             # nothing is inside (then it blocks)
          lifecycle.first/second(record)     # plugin.make_request / make_stage2_request
          transport.submit(request)          # a Rejected request fails its record alone
        yield every record that is done
        transport.collect(timeout)           # engine: one step; server: replies so far
          lifecycle.settle(record, completion)  -> ok / failed / stage 2 next
        an InflightLost (engine died)        # every record inside fails, then the run stops
      stats.progress sees every request go in and come out (monitor, watchdog, timing logs)

The same loop runs vLLM's engine in this process and a server's requests, so in-flight
top-up, failure isolation and statistics mean the same on both.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterable, Iterator

from vlmcap.core.lifecycle import Lifecycle
from vlmcap.core.source import PollingSource
from vlmcap.core.stats import LoopStats
from vlmcap.core.transport import InflightLost, Rejected, Transport
from vlmcap.records import Item, Record, Status

logger = logging.getLogger(__name__)

#: How long the driver waits for a reply before polling its item source again, when there is
#: room inside the transport and the source had nothing ready.
POLL_S = 0.02


class _Source:
    """The items, read lazily: a ``PollingSource`` or any iterable."""

    def __init__(self, items: Iterable[Item], stats: LoopStats) -> None:
        self.poller = items if isinstance(items, PollingSource) else None
        self.iterator: Iterator[Item] | None = None if self.poller else iter(items)
        self.stats = stats

    @property
    def exhausted(self) -> bool:
        return self.poller is None and self.iterator is None

    @property
    def polling(self) -> bool:
        return self.poller is not None

    def pull(self, idle: bool) -> Item | None:
        """The next item; None when exhausted or (polling, not ``idle``) nothing is ready."""
        t0 = time.perf_counter()
        try:
            if self.poller is not None:
                item = self.poller.poll(block=idle)
                if item is None and self.poller.exhausted:
                    self.poller = None
                return item
            if self.iterator is None:
                return None
            item = next(self.iterator, None)
            if item is None:
                self.iterator = None
            return item
        finally:
            if idle:
                self.stats.input_wait_s += time.perf_counter() - t0


class _Driver:
    def __init__(
        self,
        items: Iterable[Item],
        transport: Transport,
        lifecycle: Lifecycle,
        stats: LoopStats,
    ) -> None:
        self.transport = transport
        self.lifecycle = lifecycle
        self.stats = stats
        self.source = _Source(items, stats)
        self.stage2: deque[Record] = deque()
        self.inside: dict[str, Record] = {}
        self.done: list[Record] = []
        self.progress = stats.progress

    def next_request(self) -> bool:
        """Submit one more request; False when nothing is waiting."""
        while True:
            if self.stage2:
                record = self.stage2.popleft()
                request = self.lifecycle.second(record)
            else:
                item = self.source.pull(idle=not self.inside and not self.done)
                if item is None:
                    return False
                record = self.lifecycle.new_record(item)
                request = self.lifecycle.first(record)
            if request is None:
                self.done.append(record)
                continue
            try:
                self.transport.submit(request)
            except Rejected as exc:
                self.lifecycle.reject(record, str(exc))
                self.done.append(record)
                continue
            self.lifecycle.queued(record)
            self.inside[request.request_id] = record
            self.progress.submitted(request.request_id, record.key, request.stage)
            self.stats.requests += 1
            self.stats.mark(len(self.inside))
            return True

    def top_up(self) -> None:
        while len(self.inside) < self.transport.capacity and self.next_request():
            pass

    def collect(self) -> None:
        room = len(self.inside) < self.transport.capacity
        wait = POLL_S if room and self.source.polling else None
        try:
            finished = self.transport.collect(wait)
        except InflightLost as lost:
            now = time.time()
            for record in self.inside.values():
                record.fail(lost.reason, now)
            self.done.extend(self.inside.values())
            self.inside.clear()
            self.progress.lost()
            self.stats.mark(0)
            raise
        now = time.time()
        for reply in finished:
            owner: Record | None = self.inside.pop(reply.request_id, None)
            if owner is None:
                logger.warning("reply for unknown request %s ignored", reply.request_id)
                continue
            self.stats.replies += 1
            self.progress.finished(reply.request_id, reply.completion)
            if self.lifecycle.settle(owner, reply.completion, now):
                self.stage2.append(owner)
            else:
                self.done.append(owner)
        self.stats.mark(len(self.inside))
        self.stats.engine_steps = self.transport.steps
        self.progress.outputs_seen(self.transport.outputs_seen)

    @property
    def exhausted(self) -> bool:
        return self.source.exhausted and not self.stage2 and not self.inside

    def take_done(self) -> list[Record]:
        done, self.done = self.done, []
        for record in done:
            self.progress.item_done(record.status == Status.OK)
        return done


def drive(
    items: Iterable[Item],
    transport: Transport,
    lifecycle: Lifecycle,
    stats: LoopStats | None = None,
) -> Iterator[Record]:
    """Yield one finished record (``ok`` or ``failed``) per item, in completion order.

    A run-stopping error of the transport (the engine died, the server is gone) is raised after
    the records it failed have been yielded.
    """
    driver = _Driver(items, transport, lifecycle, stats if stats is not None else LoopStats())
    driver.stats.mark(0)
    try:
        while True:
            driver.top_up()
            yield from driver.take_done()
            if driver.exhausted:
                return
            if not driver.inside:
                continue  # a polling source had nothing ready yet and nothing is inside
            try:
                driver.collect()
            except InflightLost as lost:
                yield from driver.take_done()
                raise (lost.__cause__ or lost) from None
            yield from driver.take_done()
    finally:
        driver.stats.stop()
