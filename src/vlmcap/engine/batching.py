"""Fixed-batch mode: ``batch_size`` items per ``LLM.generate`` call, stage 2 as a second pass.

Simpler to step through in a debugger than the in-flight loop, and the usual way to compare.
It uses the same lifecycle as every other backend (requests built by the plugin, outcomes
settled in one place). Failure isolation: bad items fail while their request is built; if
``LLM.generate`` still rejects the batch (vLLM aborts what it had added), the batch is retried
one request at a time so that only the offending item fails. A dead engine is no item's
fault: the run stops with ``EngineLost`` and the batch's records are not written (a rerun
resumes them); restarting the engine is the in-flight loop's (``vlmcap.core.recovery``).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, cast

from vlmcap.core.lifecycle import Lifecycle, describe_error
from vlmcap.core.recovery import EngineLost
from vlmcap.core.request import Completion, StageRequest
from vlmcap.core.stats import LoopStats
from vlmcap.engine.liveness import death_reason, engine_dead
from vlmcap.engine.transport import EngineTransport, completion_of
from vlmcap.records import Item, Record, Status

if TYPE_CHECKING:
    from vllm import LLM, RequestOutput

logger = logging.getLogger(__name__)


def _inputs(
    transport: EngineTransport, lifecycle: Lifecycle, requests: list[StageRequest | None]
) -> list[tuple[StageRequest, Any]]:
    """Engine inputs of the requests that can be built (the others' records fail)."""
    built = []
    for request in requests:
        if request is None:
            continue
        try:
            inputs = transport.plugin.engine_inputs(request.request, transport.processor)
        except Exception as exc:  # noqa: BLE001 - the processor refused this one item
            lifecycle.reject(request.record, f"cannot build request: {describe_error(exc)}")
            continue
        built.append((request, inputs))
    return built


def _generate(
    llm: LLM, transport: EngineTransport, batch: list[tuple[StageRequest, Any]]
) -> list[RequestOutput | None]:
    """Outputs aligned with ``batch``; ``None`` where that request's record has been failed."""
    if not batch:
        return []
    try:
        return list(
            llm.generate(
                [cast(Any, inputs) for _, inputs in batch],
                [transport.params(request) for request, _ in batch],
                use_tqdm=False,
            )
        )
    except Exception as exc:
        if engine_dead(llm.llm_engine):
            reason = f"engine failed: {death_reason(llm.llm_engine)}"
            raise EngineLost(reason, len(batch)) from exc
        if len(batch) == 1:
            request = batch[0][0]
            reason = f"engine rejected {request.stage} request: {describe_error(exc)}"
            request.record.fail(reason, time.time())
            return [None]
        logger.warning("batch of %d rejected (%s); retrying one by one", len(batch), exc)
        results: list[RequestOutput | None] = []
        for one in batch:
            results.extend(_generate(llm, transport, [one]))
        return results


def iter_fixed_batches(
    items: Iterable[Item],
    llm: LLM,
    lifecycle: Lifecycle,
    stats: LoopStats | None = None,
) -> Iterator[Record]:
    """Yield one record per item, batch by batch, in input order within each batch."""
    stats = stats if stats is not None else LoopStats()
    transport = EngineTransport(llm, lifecycle.plugin, lifecycle.config.batch_size)
    source = iter(items)
    stats.mark(0)
    try:
        yield from _batches(source, transport, lifecycle, stats)
    finally:
        transport.close()  # stops its watch on the engine
        stats.stop()


def _batches(
    source: Iterator[Item], transport: EngineTransport, lifecycle: Lifecycle, stats: LoopStats
) -> Iterator[Record]:
    llm = transport.llm
    while True:
        t0 = time.perf_counter()
        batch = list(itertools.islice(source, lifecycle.config.batch_size))
        stats.input_wait_s += time.perf_counter() - t0
        if not batch:
            break
        records = [lifecycle.new_record(item) for item in batch]
        requests = [lifecycle.first(r) for r in records]
        for _stage in range(2):
            built = _inputs(transport, lifecycle, requests)
            now = time.time()
            for request, _ in built:
                lifecycle.queued(request.record, now)
                stats.progress.submitted(request.request_id, request.record.key, request.stage)
            stats.mark(len(built))
            outputs = _generate(llm, transport, built)
            stats.mark(0)
            stats.requests += len(built)
            again = []
            for (request, _), output in zip(built, outputs, strict=True):
                if output is None:  # rejected: its record failed in _generate
                    stats.progress.finished(request.request_id, Completion.failed("rejected"))
                    continue
                stats.replies += 1
                completion = completion_of(output)
                stats.progress.finished(request.request_id, completion)
                if lifecycle.settle(request.record, completion):
                    again.append(request.record)
            requests = [lifecycle.second(r) for r in again]
        for record in records:
            stats.progress.item_done(record.status == Status.OK)
        yield from records
