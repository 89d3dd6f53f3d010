"""Fixed-batch mode: ``batch_size`` items per ``LLM.generate`` call, stage 2 as a second pass.

Simpler to step through in a debugger than the in-flight loop, and the usual way to compare.
Failure isolation: bad items fail while their request is built; if ``LLM.generate`` still
rejects the batch (vLLM aborts what it had added), the batch is retried one request at a time so
that only the offending item fails.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, cast

from vlmcap.engine.requests import RequestFactory, apply_output, chunked, describe_error
from vlmcap.engine.stats import LoopStats
from vlmcap.records import CaptionItem, CaptionRecord

if TYPE_CHECKING:
    from vllm import LLM, RequestOutput

logger = logging.getLogger(__name__)


def _generate(llm: LLM, records: list[CaptionRecord]) -> list[RequestOutput | None]:
    """Outputs aligned with ``records``; ``None`` where that record has been failed."""
    if not records:
        return []
    now = time.time()
    for record in records:
        if record.timings.queued is None:
            record.timings.queued = now
    try:
        return list(
            llm.generate(
                [cast(Any, r.engine_inputs) for r in records],
                [r.sampling for r in records],
                use_tqdm=False,
            )
        )
    except Exception as exc:  # noqa: BLE001
        if len(records) == 1:
            records[0].fail(
                f"engine rejected {records[0].status} request: {describe_error(exc)}",
                time.time(),
            )
            return [None]
        logger.warning("batch of %d rejected (%s); retrying one by one", len(records), exc)
        results: list[RequestOutput | None] = []
        for record in records:
            results.extend(_generate(llm, [record]))
        return results


def iter_fixed_batches(
    items: Iterable[CaptionItem],
    llm: LLM,
    factory: RequestFactory,
    stats: LoopStats | None = None,
) -> Iterator[CaptionRecord]:
    """Yield one record per item, batch by batch, in input order within each batch."""
    stats = stats if stats is not None else LoopStats()
    source = iter(items)
    while True:
        t0 = time.perf_counter()
        batch = next(chunked(source, factory.config.batch_size), None)
        stats.input_wait_s += time.perf_counter() - t0
        if batch is None:
            break
        records = [factory.new_record(item) for item in batch]
        pass_records = [r for r in records if factory.stage1(r)]
        for _stage in range(2):
            next_pass = []
            stats.mark(len(pass_records))
            outputs = _generate(llm, pass_records)
            stats.mark(0)
            if pass_records:
                stats.steps += 1
                stats.requests += len(pass_records)
            for record, output in zip(pass_records, outputs, strict=True):
                if output is not None and apply_output(record, output, factory):
                    next_pass.append(record)
            pass_records = [r for r in next_pass if factory.stage2(r)]
        yield from records
    stats.finished = time.perf_counter()
