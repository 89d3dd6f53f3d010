"""The request lifecycle: stage 1 -> optional stage 2 -> ``ok`` / ``failed``, for every backend.

Flow trace of one item (the loop driver calls these; a transport runs the requests)::

    lifecycle.new_record(item)          -> Record (pending), prompt = item's or the run's
    lifecycle.first(record)             -> StageRequest of stage 1: the media checked against
                                           plugin.capabilities, then plugin.make_request
                                           (None: the model cannot take the input or the
                                           request cannot be built; record failed)
                                           debugger.prepare: its sampling (logprobs for the
                                           run's first N), whether it is dumped
    transport runs it                   -> Completion
    lifecycle.settle(record, completion)
        tokens, finish reason, first-token time
        debugger.settled                -> log entry, dump, logprobs line (debug switches)
        error / no text                 -> failed, with the reason
        plugin.decode(completion)       -> Decoded: text, reasoning kept apart (a decoder
                                           error or no answer text: failed)
        stage 1 and stage 2 on          -> True: lifecycle.second(record) is next
        otherwise                       -> ok
    lifecycle.second(record)            -> StageRequest of stage 2: plugin.make_stage2_request

Everything here works on one record at a time and turns any exception into that record's
failure, which is how one bad item never sinks a batch. The debugger
(``vlmcap.debug.request_dump.RequestDebugger``, optional) is consulted on the loop's thread;
without one (and without ``VLMCAP_DEBUG_REQUESTS``) nothing extra happens per request.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from typing import TYPE_CHECKING

from vlmcap.core.request import FINISHED_WITH_TEXT, Completion, ModelRequest, Sampling, StageRequest
from vlmcap.media.frames import is_video
from vlmcap.plugins.capabilities import UnsupportedInputError
from vlmcap.plugins.reasoning import Decoded
from vlmcap.records import Item, Record, Status

if TYPE_CHECKING:
    from vlmcap.config import VLMConfig
    from vlmcap.debug.request_dump import RequestDebugger
    from vlmcap.plugins.base import VLMPlugin

logger = logging.getLogger(__name__)

#: Longest error text kept in a record (it goes into a JSONL field).
MAX_ERROR_CHARS = 500
#: Random bytes that make request ids unique across runs that share a server.
RUN_ID_BYTES = 3


def describe_error(exc: BaseException) -> str:
    """``TypeName: message`` on one line, short enough for a JSONL field. An exception raised
    from another (``raise ... from``) leads with the one it came from, the actionable part
    (vLLM's "Failed to apply <processor> on data=..." wraps the processor's own reason)."""
    root = exc
    while root.__cause__ is not None and root.__cause__ is not root:
        root = root.__cause__
    text = _one_line(root)
    if root is not exc:
        text = f"{text} (in {_one_line(exc)})"
    if len(text) > MAX_ERROR_CHARS:
        text = text[: MAX_ERROR_CHARS - 3] + "..."
    return text


def _one_line(exc: BaseException) -> str:
    msg = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


class Lifecycle:
    """Creates the records of one run, builds their requests and settles their outcomes.

    ``debugger``: the run's ``RequestDebugger`` (None: the log-only one of
    ``VLMCAP_DEBUG_REQUESTS=1``, or none)."""

    def __init__(
        self, plugin: VLMPlugin, config: VLMConfig, debugger: RequestDebugger | None = None
    ) -> None:
        from vlmcap.debug.request_dump import RequestDebugger

        self.plugin = plugin
        self.config = config
        self.debugger = debugger if debugger is not None else RequestDebugger.from_env(plugin)
        #: The run's prompt for items that bring none, per kind (pictures and clips differ).
        self.default_prompts = {
            kind: plugin.prompt_for(kind, config.prompt_style, config.prompt_text)
            for kind in ("image", "video")
        }
        self._sampling: dict[int, Sampling] = {}
        self._ids = itertools.count()
        self._run = os.urandom(RUN_ID_BYTES).hex()

    def sampling(self, max_tokens: int | None) -> Sampling:
        """The run's sampling with an item's own token limit (built once per limit)."""
        key = max_tokens or self.config.max_output_tokens
        if key not in self._sampling:
            self._sampling[key] = Sampling.from_config(self.config, key)
        return self._sampling[key]

    def new_record(self, item: Item) -> Record:
        return Record(
            key=item.key,
            request_id=f"{self._run}-{next(self._ids)}",
            item=item,
            prompt=item.prompt
            or self.default_prompts["video" if is_video(item.media) else "image"],
        )

    def first(self, record: Record) -> StageRequest | None:
        """Stage 1 of ``record``; None (and the record failed) when it cannot be built."""
        item = self._item(record)
        try:
            self.plugin.capabilities.check(item.media, self.plugin.variant)
        except UnsupportedInputError as exc:
            record.fail(f"unsupported input: {exc}", time.time())
            return None
        try:
            request = self.plugin.make_request(record.prompt, item.media, fps=item.fps)
        except Exception as exc:  # noqa: BLE001 - isolate: this item fails, the run goes on
            record.fail(f"cannot build request: {describe_error(exc)}", time.time())
            return None
        return self._stage(record, Status.STAGE1, request)

    def second(self, record: Record) -> StageRequest | None:
        """Stage 2 of ``record`` (after ``settle`` returned True); None when it cannot be built."""
        self._item(record)
        record.stage2_prompt = self.config.stage2_prompt
        try:
            request = self.plugin.make_stage2_request(record, self.config.stage2_prompt)
        except Exception as exc:  # noqa: BLE001
            record.fail(f"cannot build stage-2 request: {describe_error(exc)}", time.time())
            return None
        return self._stage(record, Status.STAGE2, request)

    def _stage(self, record: Record, stage: Status, request: ModelRequest) -> StageRequest:
        item = self._item(record)
        record.status = stage
        record.request = request
        staged = StageRequest(record, stage, request, self.sampling(item.max_tokens))
        if self.debugger is not None:
            staged.sampling = self.debugger.prepare(staged)
        record.sampling = staged.sampling
        return staged

    @staticmethod
    def _item(record: Record) -> Item:
        if record.item is None:
            raise ValueError(f"record {record.key!r} has no item (already written?)")
        return record.item

    def queued(self, record: Record, now: float | None = None) -> None:
        """The record's first request went into the transport."""
        if record.timings.queued is None:
            record.timings.queued = time.time() if now is None else now

    def reject(self, record: Record, reason: str) -> None:
        """The transport refused the record's current request (``reason`` says who and why)."""
        record.fail(reason, time.time())

    def settle(self, record: Record, completion: Completion, now: float | None = None) -> bool:
        """Fold one finished request into ``record``.

        Returns True when the record needs its stage-2 request next; otherwise the record is
        done (``ok`` or ``failed``).
        """
        now = time.time() if now is None else now
        stage = record.status
        record.prompt_tokens += completion.prompt_tokens
        record.output_tokens += completion.output_tokens
        record.attempts += completion.attempts
        reason = completion.finish_reason
        if stage == Status.STAGE1:
            record.stage1_finish_reason = reason
            record.timings.stage1_finished = now
            record.timings.first_token = completion.first_token_at
        else:
            record.finish_reason = reason
        if self.debugger is not None:
            self.debugger.settled(record, stage, completion)
        if completion.error is not None:
            record.fail(completion.error, now)
            return False
        if reason == "content_filter":
            record.fail("blocked by content filter", now)
            return False
        if reason not in FINISHED_WITH_TEXT:
            record.fail(
                f"model ended the {stage} request without text (finish_reason={reason})", now
            )
            return False
        try:
            decoded = self.plugin.decode(completion)
        except Exception as exc:  # noqa: BLE001 - a plugin bug fails this item only
            record.fail(f"cannot decode {stage} output: {describe_error(exc)}", now)
            return False
        if isinstance(decoded, str):  # a plugin written before reasoning was kept apart
            decoded = Decoded(decoded)
        text = decoded.text
        record.reasoning = decoded.reasoning or record.reasoning
        if not text:
            what = "only reasoning" if decoded.reasoning else "empty text"
            record.fail(f"model returned {what} in {stage} (finish_reason={reason})", now)
            return False
        if stage == Status.STAGE1 and self.config.stage2:
            record.stage1_text = text
            return True
        if stage == Status.STAGE1:
            record.finish_reason = reason
        record.finish(text, now)
        return False
