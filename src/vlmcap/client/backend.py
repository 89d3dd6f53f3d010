"""``ServerBackend``: the caption pipeline's backend over an OpenAI-compatible vLLM server.

Flow trace::

    connect(settings, config)              # GET /v1/models: check or pick the served model
    ServerBackend(settings, plugin, config).run(items, stats)
      _LoopThread                          # an asyncio loop on a helper thread, one client
      loop on the calling thread:
        top up: pull items (a PollingSource: only what is ready, unless nothing is in flight)
                until ``concurrency`` items are in flight -> _Captioner.caption(record)
          encode_media (worker thread)     #   data URLs, once per item (stage 2 reuses them)
          plugin.openai_messages(prompt, parts) -> client.chat(...)   # retries inside
          apply_reply: ok / truncated / failed, or stage 2 next (same media, refine prompt)
        wait for one finished item, yield its record
    a ServerError (server gone, key refused) stops the run; in-flight items are dropped
    unwritten, so a resume redoes them

Records are the offline engine's: same fields, same meaning (empty text = failed, finish
reason ``length`` = ok but truncated), so outputs, resume and the summary are shared.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from vlmcap.client import ServerError
from vlmcap.client.messages import EncodedMedia, VideoMode, encode_media
from vlmcap.client.openai_client import ChatReply, ClientConfig, RequestFailed, ServerClient
from vlmcap.engine.requests import RequestFactory, describe_error, settle_stage
from vlmcap.engine.source import PollingSource
from vlmcap.engine.stats import LoopStats
from vlmcap.records import CaptionItem, CaptionRecord, Status

if TYPE_CHECKING:
    from vlmcap.config import VLMConfig
    from vlmcap.plugins.base import VLMPlugin

__all__ = ["ServerBackend", "ServerError", "apply_reply"]

logger = logging.getLogger(__name__)

#: How long the loop waits for a finished item before polling the item source again, when
#: there is room for more requests but no decoded item was ready.
POLL_S = 0.02


@dataclass(frozen=True)
class ServerCompletion:
    """What ``plugin.decode`` reads from a completion (duck-types vLLM's CompletionOutput)."""

    text: str
    finish_reason: str | None
    index: int = 0
    token_ids: tuple[int, ...] = ()


def sampling_options(config: VLMConfig, max_tokens: int | None = None) -> dict[str, Any]:
    """Chat-completion sampling fields of a run, as ``engine.sampling`` builds them offline."""
    return {
        "temperature": config.temperature,
        "top_p": config.top_p,
        "max_tokens": max_tokens or config.max_output_tokens,
        "seed": config.seed,
        "extra_body": {"repetition_penalty": config.repetition_penalty},
    }


def apply_reply(record: CaptionRecord, reply: ChatReply, plugin: VLMPlugin, stage2: bool) -> bool:
    """Fold one chat reply into ``record`` (the server twin of ``engine.requests.apply_output``).

    Returns True when the record needs its stage-2 request next; otherwise it is done.
    """
    now = time.time()
    stage = record.status
    record.prompt_tokens += reply.prompt_tokens
    record.output_tokens += reply.completion_tokens
    reason = reply.finish_reason
    if stage == Status.STAGE1:
        record.stage1_finish_reason = reason
        record.timings.stage1_finished = now
    else:
        record.finish_reason = reason
    if reason == "content_filter":
        record.fail("blocked by content filter", now)
        return False
    if reason not in ("stop", "length"):
        record.fail(f"server ended the {stage} request without text (finish_reason={reason})", now)
        return False
    completion = cast(Any, ServerCompletion(reply.text, reason))
    return settle_stage(record, lambda: plugin.decode(completion), stage2, now)


def video_mode(plugin: VLMPlugin, config: VLMConfig, settings: ClientConfig) -> VideoMode:
    """How videos go to this model: as frames of images when it takes no video input."""
    limits = plugin.engine_overrides(config).get("limit_mm_per_prompt")
    if isinstance(limits, dict) and limits.get("video", 1) == 0:
        return "images"
    return settings.encoding.video


class _Captioner:
    """Turns one record into a finished one through the server (runs on the event loop)."""

    def __init__(self, settings: ClientConfig, plugin: VLMPlugin, config: VLMConfig) -> None:
        self.client = ServerClient(settings)
        self.settings = settings
        self.plugin = plugin
        self.config = config
        self.video: VideoMode = video_mode(plugin, config, settings)
        limits = plugin.engine_overrides(config).get("limit_mm_per_prompt")
        self.max_images = limits.get("image") if isinstance(limits, dict) else None
        self.requests = 0  # chat requests sent (stage 1 + stage 2; retries not counted)

    async def caption(self, record: CaptionRecord) -> CaptionRecord:
        """``record`` finished: ok or failed. Raises ``ServerError`` to stop the run."""
        item = record.item
        assert item is not None
        try:
            media = await asyncio.to_thread(
                encode_media,
                item.media,
                item.fps,
                self.settings.encoding,
                video=self.video,
                max_images=self.max_images,
            )
        except Exception as exc:  # noqa: BLE001 - a bad item fails alone
            record.fail(f"cannot build request: {describe_error(exc)}", time.time())
            return record
        sampling = sampling_options(self.config, item.max_tokens)
        record.status = Status.STAGE1
        record.timings.queued = time.time()
        try:
            reply = await self._ask(record, record.prompt, media, sampling)
            if not apply_reply(record, reply, self.plugin, self.config.stage2):
                return record
            record.stage2_prompt = self.config.stage2_prompt
            record.status = Status.STAGE2
            text = self.config.stage2_prompt + (record.stage1_caption or "")
            reply = await self._ask(record, text, media, sampling)
            apply_reply(record, reply, self.plugin, self.config.stage2)
        except RequestFailed as exc:
            record.fail(f"{record.status} request failed: {exc}", time.time())
        except ServerError:
            raise
        except Exception as exc:  # an unexpected error fails this item only
            logger.debug("item %s failed unexpectedly", record.key, exc_info=True)
            record.fail(f"{record.status} request failed: {describe_error(exc)}", time.time())
        return record

    async def _ask(
        self, record: CaptionRecord, prompt: str, media: EncodedMedia, sampling: dict[str, Any]
    ) -> ChatReply:
        suffix = ":s2" if record.status == Status.STAGE2 else ""
        self.requests += 1
        return await self.client.chat(
            self.plugin.openai_messages(prompt, media.parts),
            sampling,
            model=self.settings.model,
            media_io_kwargs=media.media_io_kwargs,
            request_id=record.request_id + suffix,
        )


class _LoopThread:
    """An asyncio event loop on a daemon thread, with the captioner living on it."""

    def __init__(self, settings: ClientConfig, plugin: VLMPlugin, config: VLMConfig) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="vlmcap-client")
        self.thread.daemon = True
        self.thread.start()
        self.finished: queue.Queue[concurrent.futures.Future[CaptionRecord]] = queue.Queue()

        async def make() -> _Captioner:
            return _Captioner(settings, plugin, config)

        self.captioner = asyncio.run_coroutine_threadsafe(make(), self.loop).result()

    def submit(self, record: CaptionRecord) -> None:
        future = asyncio.run_coroutine_threadsafe(self.captioner.caption(record), self.loop)
        future.add_done_callback(self.finished.put)

    def next_finished(
        self, timeout: float | None
    ) -> concurrent.futures.Future[CaptionRecord] | None:
        try:
            return self.finished.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        """Cancel what is in flight, close the HTTP client, stop the loop."""

        async def shutdown() -> None:
            me = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not me]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.captioner.client.close()
            await self.loop.shutdown_default_executor()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(timeout=30)
        except (concurrent.futures.TimeoutError, RuntimeError) as exc:
            logger.warning("server client did not shut down cleanly: %s", exc)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        if not self.thread.is_alive():
            self.loop.close()


@dataclass
class ServerBackend:
    """Caption through a vLLM server; ``settings.model`` must be resolved (see ``connect``)."""

    settings: ClientConfig
    plugin: VLMPlugin
    config: VLMConfig

    def run(self, items: Iterable[CaptionItem], stats: LoopStats) -> Iterator[CaptionRecord]:
        """Yield one finished record per item, in completion order, ``concurrency`` at a time."""
        factory = RequestFactory(self.plugin, self.config)
        poller = items if isinstance(items, PollingSource) else None
        source = None if poller is not None else iter(items)
        limit = self.settings.concurrency
        inflight = 0
        more = True
        busy_from = 0.0
        worker = _LoopThread(self.settings, self.plugin, self.config)
        try:
            while True:
                while more and inflight < limit:
                    idle = inflight == 0
                    t0 = time.perf_counter()
                    if poller is not None:
                        item = poller.poll(block=idle)
                        more = not (item is None and poller.exhausted)
                    else:
                        assert source is not None
                        item = next(source, None)
                        more = item is not None
                    if idle:
                        stats.input_wait_s += time.perf_counter() - t0
                    if item is None:
                        break
                    if inflight == 0:
                        busy_from = time.perf_counter()
                    worker.submit(factory.new_record(item))
                    inflight += 1
                    stats.peak_inflight = max(stats.peak_inflight, inflight)
                if inflight == 0:
                    if not more:
                        break
                    continue
                wait = POLL_S if (more and inflight < limit and poller is not None) else None
                future = worker.next_finished(wait)
                if future is None:
                    continue
                inflight -= 1
                stats.steps += 1
                if inflight == 0:
                    stats.busy_s += time.perf_counter() - busy_from
                yield future.result()  # a ServerError stops the run here
        finally:
            stats.finished = time.perf_counter()
            worker.close()
            stats.requests += worker.captioner.requests
