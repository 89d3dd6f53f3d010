"""In-flight batching: keep the engine topped up on every step; stage 2 re-enters the same loop.

Flow trace::

    iter_inflight(items, llm, factory)
      loop:
        _top_up()                       # until max_inflight requests are inside the engine:
          refine queue first            #   stage-2 requests finish records soonest
          else next(items)              #   items are pulled lazily: memory stays bounded
          factory.stage1/stage2(record) #   plugin.make_request / make_refine_request
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
from typing import TYPE_CHECKING

from vlmcap.engine.requests import RequestFactory, apply_output, describe_error
from vlmcap.records import CaptionItem, CaptionRecord

if TYPE_CHECKING:
    from vllm import LLM

logger = logging.getLogger(__name__)


def iter_inflight(
    items: Iterable[CaptionItem], llm: LLM, factory: RequestFactory
) -> Iterator[CaptionRecord]:
    """Yield one record per item, in completion order."""
    engine = llm.llm_engine
    max_inflight = factory.config.max_inflight
    source = iter(items)
    source_done = False
    refine: deque[CaptionRecord] = deque()
    inflight: dict[str, CaptionRecord] = {}
    done: list[CaptionRecord] = []

    def submit(record: CaptionRecord) -> None:
        request_id = factory.engine_request_id(record)
        try:
            engine.add_request(request_id, record.engine_inputs, record.sampling)
        except Exception as exc:  # noqa: BLE001 - the engine rejected this one request
            record.fail(f"engine rejected {record.status} request: {describe_error(exc)}",
                        time.time())
            done.append(record)
            return
        if record.timings.queued is None:
            record.timings.queued = time.time()
        inflight[request_id] = record

    while True:
        while len(inflight) < max_inflight:
            if refine:
                record = refine.popleft()
                if factory.stage2(record):
                    submit(record)
                else:
                    done.append(record)
                continue
            if source_done:
                break
            item = next(source, None)
            if item is None:
                source_done = True
                break
            record = factory.new_record(item)
            if factory.stage1(record):
                submit(record)
            else:
                done.append(record)
        if done:
            yield from done
            done.clear()
        if not inflight:
            if source_done and not refine:
                return
            continue
        try:
            outputs = engine.step()
        except Exception as exc:
            reason = f"engine failed: {describe_error(exc)}"
            now = time.time()
            for record in inflight.values():
                record.fail(reason, now)
            yield from inflight.values()
            raise
        for output in outputs:
            if not output.finished:
                continue
            record = inflight.pop(output.request_id, None)
            if record is None:
                logger.warning("output for unknown request %s ignored", output.request_id)
                continue
            if apply_output(record, output, factory):
                refine.append(record)
            else:
                done.append(record)
