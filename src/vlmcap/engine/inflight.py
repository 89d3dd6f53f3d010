"""In-flight batching: keep the engine topped up on every step; stage 2 re-enters the same loop.

Flow trace::

    iter_inflight(items, llm, factory)
      loop:
        _top_up()                       # until max_inflight requests are inside the engine:
          refine queue first            #   stage-2 requests finish records soonest
          else next(items)              #   items are pulled lazily: memory stays bounded
                                        #   (a PollingSource: only what is ready, unless
                                        #   the engine is empty)
          factory.stage1/stage2(record) #   plugin.make_request / make_stage2_request
          engine.add_request(...)       #   vLLM's input processing; a rejection fails the record
        engine.step()                   # one engine iteration; returns finished outputs
        apply_output(record, output)    # plugin.decode; -> ok / failed / needs stage 2
        yield every record that is done

Unlike a loop that adds one request per step, the engine is refilled to ``max_inflight`` after
every step, so it never runs below capacity while work is waiting.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, cast

from vlmcap.engine.requests import RequestFactory, apply_output, describe_error
from vlmcap.engine.source import PollingSource
from vlmcap.engine.stats import LoopStats
from vlmcap.records import CaptionItem, CaptionRecord

if TYPE_CHECKING:
    from vllm import LLM, RequestOutput

logger = logging.getLogger(__name__)


class _InflightLoop:
    """State of one run: the lazily read source, the refine queue and the engine's requests."""

    def __init__(
        self,
        items: Iterable[CaptionItem],
        llm: LLM,
        factory: RequestFactory,
        stats: LoopStats | None = None,
    ) -> None:
        self.engine = llm.llm_engine
        self.factory = factory
        self.max_inflight = factory.config.max_inflight
        self.stats = stats if stats is not None else LoopStats()
        self.poller = items if isinstance(items, PollingSource) else None
        self.source: Iterator[CaptionItem] | None = None if self.poller else iter(items)
        self.refine: deque[CaptionRecord] = deque()
        self.inflight: dict[str, CaptionRecord] = {}
        self.done: list[CaptionRecord] = []

    def submit(self, record: CaptionRecord) -> None:
        request_id = self.factory.engine_request_id(record)
        try:
            self.engine.add_request(request_id, cast(Any, record.engine_inputs), record.sampling)
        except Exception as exc:  # noqa: BLE001 - the engine rejected this one request
            reason = f"engine rejected {record.status} request: {describe_error(exc)}"
            record.fail(reason, time.time())
            self.done.append(record)
            return
        if record.timings.queued is None:
            record.timings.queued = time.time()
        self.inflight[request_id] = record
        self.stats.requests += 1
        self.stats.mark(len(self.inflight))

    def next_record(self) -> CaptionRecord | None:
        """The next request to add, stage-2 first; None when nothing is waiting.

        Records whose request cannot be built are failed on the way (into ``done``).
        """
        while True:
            if self.refine:
                record = self.refine.popleft()
                built = self.factory.stage2(record)
            else:
                item = self.pull()
                if item is None:
                    return None
                record = self.factory.new_record(item)
                built = self.factory.stage1(record)
            if built:
                return record
            self.done.append(record)

    def pull(self) -> CaptionItem | None:
        """The next item of the source; None when exhausted or (polling) nothing is ready."""
        if self.poller is not None:
            idle = not self.inflight and not self.done
            t0 = time.perf_counter()
            item = self.poller.poll(block=idle)
            if idle:
                self.stats.input_wait_s += time.perf_counter() - t0
            if item is None and self.poller.exhausted:
                self.poller = None
            return item
        if self.source is None:
            return None
        item = next(self.source, None)
        if item is None:
            self.source = None
        return item

    def top_up(self) -> None:
        while len(self.inflight) < self.max_inflight:
            record = self.next_record()
            if record is None:
                return
            self.submit(record)

    def step(self) -> Exception | None:
        """One engine step; on an engine error every in-flight record fails and the error is
        returned for the caller to raise once those records are out."""
        try:
            outputs = self.engine.step()
        except Exception as exc:  # noqa: BLE001 - re-raised by iter_inflight
            reason = f"engine failed: {describe_error(exc)}"
            now = time.time()
            for record in self.inflight.values():
                record.fail(reason, now)
            self.done.extend(self.inflight.values())
            self.inflight.clear()
            self.stats.mark(0)
            return exc
        self.stats.steps += 1
        for output in outputs:
            if not output.finished:
                continue
            owner = self.inflight.pop(output.request_id, None)
            if owner is None:
                logger.warning("output for unknown request %s ignored", output.request_id)
            elif apply_output(owner, cast("RequestOutput", output), self.factory):
                self.refine.append(owner)
            else:
                self.done.append(owner)
        self.stats.mark(len(self.inflight))
        return None

    @property
    def exhausted(self) -> bool:
        return self.source is None and self.poller is None and not self.refine and not self.inflight


def iter_inflight(
    items: Iterable[CaptionItem],
    llm: LLM,
    factory: RequestFactory,
    stats: LoopStats | None = None,
) -> Iterator[CaptionRecord]:
    """Yield one record per item, in completion order."""
    loop = _InflightLoop(items, llm, factory, stats)
    loop.stats.mark(0)
    while True:
        loop.top_up()
        yield from loop.done
        loop.done.clear()
        if loop.exhausted:
            loop.stats.mark(0)
            loop.stats.finished = time.perf_counter()
            return
        if not loop.inflight:
            continue  # a polling source had nothing ready yet and the engine is empty
        error = loop.step()
        yield from loop.done
        loop.done.clear()
        if error is not None:
            raise error
