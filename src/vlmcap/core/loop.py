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
        an InflightLost (engine died)        # with a Recovery: a fresh transport, the records
                                             # inside retried one at a time (a poison item
                                             # fails alone, see vlmcap.core.recovery);
                                             # without one, or none left: EngineLost, and
                                             # the records inside stay unwritten (resume)
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
from vlmcap.core.recovery import EngineLost, Recovery, poison_reason
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
        recovery: Recovery | None,
    ) -> None:
        self.transport = transport
        self.given = transport  # the caller's: the caller closes it
        self.lifecycle = lifecycle
        self.stats = stats
        self.recovery = recovery
        self.source = _Source(items, stats)
        self.stage2: deque[Record] = deque()
        self.inside: dict[str, Record] = {}
        self.done: list[Record] = []
        self.progress = stats.progress
        #: Records that were inside when the engine died: retried one at a time, first.
        self.suspects: deque[Record] = deque()
        #: The request id of the suspect now inside alone, if any.
        self.isolating: str | None = None

    @property
    def capacity(self) -> int:
        """Requests allowed inside now: one while suspects are being retried."""
        return 1 if self.suspects or self.isolating else self.transport.capacity

    def next_request(self) -> bool:
        """Submit one more request; False when nothing is waiting."""
        while True:
            suspect = bool(self.suspects)
            if suspect:
                record = self.suspects.popleft()
                retry = self.lifecycle.second if record.status == Status.STAGE2 else None
                request = (retry or self.lifecycle.first)(record)
            elif self.stage2:
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
            if suspect:
                self.isolating = request.request_id
            self.progress.submitted(request.request_id, record.key, request.stage)
            self.stats.requests += 1
            self.stats.mark(len(self.inside))
            return True

    def top_up(self) -> None:
        while len(self.inside) < self.capacity and self.next_request():
            pass

    def collect(self) -> None:
        room = len(self.inside) < self.capacity
        wait = POLL_S if room and self.source.polling else None
        try:
            finished = self.transport.collect(wait)
        except InflightLost as lost:
            self.recover(lost)
            return
        now = time.time()
        for reply in finished:
            if reply.request_id == self.isolating:
                self.isolating = None  # it came out: it did not kill the engine
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

    def recover(self, lost: InflightLost) -> None:
        """Everything inside is gone: fail a suspect that was alone (a poison item), then go on
        with a fresh transport, or raise ``EngineLost`` when no restart is left."""
        alone = self.inside.pop(self.isolating, None) if self.isolating else None
        if alone is not None:
            alone.attempts += 1
            alone.fail(poison_reason(lost.reason), time.time())
            self.done.append(alone)
            logger.error("%s failed: %s", alone.key, alone.error)
        self.isolating = None
        for record in self.inside.values():
            record.attempts += 1  # the request lost with the engine
        self.suspects.extendleft(reversed(self.inside.values()))
        self.inside.clear()
        self.progress.lost()
        self.stats.mark(0)
        if self.recovery is None or self.recovery.left == 0:
            unfinished = len(self.suspects)
            self.suspects.clear()
            raise EngineLost(lost.reason, unfinished) from (lost.__cause__ or lost)
        if self.transport is not self.given:
            self.transport.close()
        self.transport = self.recovery.new_transport(lost.reason, len(self.suspects))

    @property
    def exhausted(self) -> bool:
        return self.source.exhausted and not self.stage2 and not self.inside and not self.suspects

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
    *,
    recovery: Recovery | None = None,
) -> Iterator[Record]:
    """Yield one finished record (``ok`` or ``failed``) per item, in completion order.

    When the transport loses what is inside (the engine died), ``recovery`` (optional) gives a
    fresh one and the records inside are retried; without it, or with no restart left,
    ``EngineLost`` is raised after every finished record has been yielded, and the records
    that were inside are not yielded (a rerun resumes them). A run-stopping error of the
    transport itself (the server is gone) is raised as it is.
    """
    stats = stats if stats is not None else LoopStats()
    driver = _Driver(items, transport, lifecycle, stats, recovery)
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
            except EngineLost:
                yield from driver.take_done()
                raise
            yield from driver.take_done()
    finally:
        driver.stats.stop()
        if driver.transport is not driver.given:
            driver.transport.close()
