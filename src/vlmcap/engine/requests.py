"""What both loops share: building a request for a record, and applying a finished output.

Everything here works on one record at a time and turns any exception into that record's
failure, which is how one bad item never sinks a batch.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vlmcap import envs
from vlmcap.debug.request_dump import debug_request
from vlmcap.engine.sampling import sampling_params
from vlmcap.records import CaptionItem, CaptionRecord, Status

if TYPE_CHECKING:
    from vllm import RequestOutput, SamplingParams

    from vlmcap.config import VLMConfig
    from vlmcap.plugins.base import VLMPlugin

logger = logging.getLogger(__name__)

_FINISHED_OK = ("stop", "length")


def describe_error(exc: BaseException) -> str:
    """``TypeName: message`` on one line, short enough for a JSONL field."""
    msg = " ".join(str(exc).split())
    if len(msg) > 500:
        msg = msg[:497] + "..."
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


@dataclass
class RequestFactory:
    """Creates records and their stage-1 / stage-2 engine inputs for one run."""

    plugin: VLMPlugin
    config: VLMConfig

    def __post_init__(self) -> None:
        self._processor: Any = None
        self._default_prompt = self.plugin.prompt(self.config.prompt_style, self.config.prompt_text)
        self._params: dict[int, SamplingParams] = {}
        self._ids = itertools.count()
        self._run = os.urandom(3).hex()

    @property
    def processor(self) -> Any:
        if self._processor is None:
            self._processor = self.plugin.processor()
        return self._processor

    def params(self, max_tokens: int | None) -> SamplingParams:
        key = max_tokens or self.config.max_output_tokens
        if key not in self._params:
            self._params[key] = sampling_params(self.config, key)
        return self._params[key]

    def new_record(self, item: CaptionItem) -> CaptionRecord:
        return CaptionRecord(
            key=item.key,
            request_id=f"{self._run}-{next(self._ids)}",
            item=item,
            prompt=item.prompt or self._default_prompt,
        )

    def stage1(self, record: CaptionRecord) -> bool:
        """Fill ``record.engine_inputs`` for stage 1; False (record failed) on a bad item."""
        assert record.item is not None
        try:
            record.engine_inputs = self.plugin.make_request(
                record.prompt, record.item.media, self.processor, fps=record.item.fps
            )
        except Exception as exc:  # noqa: BLE001 - isolate: this item fails, the run goes on
            record.fail(f"cannot build request: {describe_error(exc)}", time.time())
            return False
        record.sampling = self.params(record.item.max_tokens)
        record.status = Status.STAGE1
        return True

    def stage2(self, record: CaptionRecord) -> bool:
        """Fill ``record.engine_inputs`` for the refine request; False if it cannot be built."""
        assert record.item is not None
        record.stage2_prompt = self.config.stage2_prompt
        try:
            record.engine_inputs = self.plugin.make_stage2_request(
                record, self.config.stage2_prompt
            )
        except Exception as exc:  # noqa: BLE001
            record.fail(f"cannot build stage-2 request: {describe_error(exc)}", time.time())
            return False
        record.status = Status.STAGE2
        return True

    def engine_request_id(self, record: CaptionRecord) -> str:
        return record.request_id + (":s2" if record.status == Status.STAGE2 else "")


def apply_output(record: CaptionRecord, output: RequestOutput, factory: RequestFactory) -> bool:
    """Fold one finished vLLM output into ``record``.

    Returns True when the record needs its stage-2 request next; otherwise the record is done
    (``ok`` or ``failed``).
    """
    now = time.time()
    stage = record.status
    completion = output.outputs[0] if output.outputs else None
    record.prompt_tokens += len(output.prompt_token_ids or ())
    if completion is not None:
        record.output_tokens += len(completion.token_ids or ())
    reason = completion.finish_reason if completion is not None else None
    if stage == Status.STAGE1:
        record.stage1_finish_reason = reason
        record.timings.stage1_finished = now
        _first_token_time(record, output)
    else:
        record.finish_reason = reason
    if envs.debug_requests():
        debug_request(record, output)
    if completion is None or reason not in _FINISHED_OK:
        record.fail(f"engine ended the {stage} request without text (finish_reason={reason})", now)
        return False
    decode = factory.plugin.decode
    return settle_stage(record, lambda: decode(completion), factory.config.stage2, now)


def settle_stage(
    record: CaptionRecord, decode: Callable[[], str], stage2: bool, now: float | None = None
) -> bool:
    """The end of a stage whose output has text (finish reason ``stop`` or ``length``), shared
    by the offline loops and the server client: decode it, then fail the record (decoder error,
    empty text), keep it as the stage-1 caption (stage 2 next: returns True), or finish ``ok``.
    """
    now = time.time() if now is None else now
    stage = record.status
    reason = record.stage1_finish_reason if stage == Status.STAGE1 else record.finish_reason
    try:
        text = decode()
    except Exception as exc:  # noqa: BLE001 - a plugin bug fails this item only
        record.fail(f"cannot decode {stage} output: {describe_error(exc)}", now)
        return False
    if not text:
        record.fail(f"model returned empty text in {stage} (finish_reason={reason})", now)
        return False
    if stage == Status.STAGE1 and stage2:
        record.stage1_caption = text
        return True
    if stage == Status.STAGE1:
        record.finish_reason = reason
    record.caption = text
    record.status = Status.OK
    record.timings.finished = now
    record.engine_inputs = None
    return False


def _first_token_time(record: CaptionRecord, output: RequestOutput) -> None:
    stats = getattr(output, "metrics", None)
    arrival = getattr(stats, "arrival_time", 0.0)
    latency = getattr(stats, "first_token_latency", 0.0)
    if arrival and latency:
        record.timings.first_token = arrival + latency


def chunked(items: Iterable[CaptionItem], size: int) -> Iterator[list[CaptionItem]]:
    it = iter(items)
    while batch := list(itertools.islice(it, size)):
        yield batch
