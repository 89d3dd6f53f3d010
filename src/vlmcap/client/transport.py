"""An OpenAI-compatible vLLM server as a transport: chat completions in flight, replies out.

Flow trace (the loop driver, ``vlmcap.core.loop``, calls ``submit`` and ``collect``)::

    ServerTransport(settings, plugin, config)  # an asyncio loop on a helper thread, one client
    submit(request)                            # schedules _ask on that loop, returns at once
      _ask:
        encode_media (worker thread)           #   data URLs, once per item (stage 2 reuses
                                               #   them from the record's scratch)
        plugin.chat_messages(request, groups)  #   the same ModelRequest the engine gets
        client.chat(messages, sampling)        #   retries inside (openai_client)
        -> Finished(Completion)                #   a failed request: Completion.failed(reason);
                                               #   the reply itself in Completion.output
    collect(timeout)                           # replies so far; waits up to ``timeout``
    a ServerError (server gone, key refused) is raised by collect and stops the run; requests
    in flight are dropped unwritten, so a resume redoes them

Records are the offline engine's: same lifecycle, same meaning (empty text = failed, finish
reason ``length`` = ok but truncated), so outputs, resume and the summary are shared.

``detail=True`` (debug dumps, replays) also asks the server for the output's token ids and the
prompt it rendered (vLLM's ``return_token_ids`` / ``return_prompt_text``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
from typing import TYPE_CHECKING

from vlmcap.client import ServerError
from vlmcap.client.messages import EncodedMedia, VideoMode, encode_media
from vlmcap.client.openai_client import ClientConfig, RequestFailed, ServerClient
from vlmcap.core.lifecycle import describe_error
from vlmcap.core.request import Completion, StageRequest
from vlmcap.core.transport import Finished

if TYPE_CHECKING:
    from vlmcap.config import VLMConfig
    from vlmcap.plugins.base import VLMPlugin

__all__ = ["ServerError", "ServerTransport", "video_mode"]

logger = logging.getLogger(__name__)

#: Seconds the client's shutdown (cancel in-flight requests, close connections) may take.
CLOSE_TIMEOUT_S = 30.0
#: Seconds to wait for the client thread to end after its loop stopped.
JOIN_TIMEOUT_S = 10.0
#: Key of the encoded media in a record's scratch: ``(media, EncodedMedia)``.
ENCODED_MEDIA = "server.encoded_media"
#: vLLM's own chat-completion fields that ``detail`` turns on.
DETAIL_FIELDS = {"return_token_ids": True, "return_prompt_text": True}


def video_mode(plugin: VLMPlugin, settings: ClientConfig) -> VideoMode:
    """How videos go to this model: as frames of images when it takes no video input."""
    if not plugin.capabilities.video:
        return "images"
    return settings.encoding.video


class ServerTransport:
    """Chat completions to ``settings.url``; ``settings.model`` must be resolved (``connect``)."""

    def __init__(
        self, settings: ClientConfig, plugin: VLMPlugin, config: VLMConfig, *, detail: bool = False
    ) -> None:
        self.settings = settings
        self.plugin = plugin
        self.detail = detail
        self.video: VideoMode = video_mode(plugin, settings)
        self.max_images: int | None = plugin.capabilities.max_images
        self._finished: queue.Queue[concurrent.futures.Future[Finished]] = queue.Queue()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="vlmcap-client")
        self.thread.daemon = True
        self.thread.start()

        async def make() -> ServerClient:
            return ServerClient(settings)

        self.client = asyncio.run_coroutine_threadsafe(make(), self.loop).result()

    @property
    def capacity(self) -> int:
        return self.settings.concurrency

    @property
    def steps(self) -> None:
        return None

    @property
    def outputs_seen(self) -> None:
        return None

    def submit(self, request: StageRequest) -> None:
        future = asyncio.run_coroutine_threadsafe(self._ask(request), self.loop)
        future.add_done_callback(self._finished.put)

    def collect(self, timeout: float | None) -> list[Finished]:
        try:
            first = self._finished.get(timeout=timeout)
        except queue.Empty:
            return []
        done = [first.result()]  # a ServerError stops the run here
        while True:
            try:
                done.append(self._finished.get_nowait().result())
            except queue.Empty:
                return done

    async def _media(self, request: StageRequest) -> EncodedMedia:
        """The request's media as content parts, encoded once per record (off the loop)."""
        scratch = request.record.scratch
        media = request.request.media
        cached = scratch.get(ENCODED_MEDIA)
        if cached is not None and cached[0] is media:
            return cached[1]
        encoded = await asyncio.to_thread(
            encode_media,
            media,
            request.request.fps,
            self.settings.encoding,
            video=self.video,
            max_images=self.max_images,
        )
        scratch[ENCODED_MEDIA] = (media, encoded)
        return encoded

    async def _ask(self, request: StageRequest) -> Finished:
        """One request's reply; raises ``ServerError`` to stop the run."""
        rid = request.request_id
        try:
            media = await self._media(request)
            messages = self.plugin.chat_messages(request.request, media.groups)
        except Exception as exc:  # noqa: BLE001 - a bad item fails alone
            return Finished(rid, Completion.failed(f"cannot build request: {describe_error(exc)}"))
        sampling = request.sampling.to_openai()
        if self.detail:
            sampling["extra_body"].update(DETAIL_FIELDS)
        try:
            reply = await self.client.chat(
                messages,
                sampling,
                model=self.settings.model,
                media_io_kwargs=media.media_io_kwargs,
                request_id=rid,
            )
        except RequestFailed as exc:
            return Finished(rid, Completion.failed(f"{request.stage} request failed: {exc}"))
        except ServerError:
            raise
        except Exception as exc:
            logger.debug("request %s failed unexpectedly", rid, exc_info=True)
            reason = f"{request.stage} request failed: {describe_error(exc)}"
            return Finished(rid, Completion.failed(reason))
        return Finished(
            rid,
            Completion(
                text=reply.text,
                finish_reason=reply.finish_reason,
                prompt_tokens=reply.prompt_tokens,
                output_tokens=reply.completion_tokens,
                token_ids=reply.token_ids,
                attempts=reply.attempts,
                logprobs=reply.logprobs,
                output=reply.raw,
            ),
        )

    def close(self) -> None:
        """Cancel what is in flight, close the HTTP client, stop the loop."""

        async def shutdown() -> None:
            me = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not me]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.client.close()
            await self.loop.shutdown_default_executor()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(CLOSE_TIMEOUT_S)
        except (concurrent.futures.TimeoutError, RuntimeError) as exc:
            logger.warning("server client did not shut down cleanly: %s", exc)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=JOIN_TIMEOUT_S)
        if not self.thread.is_alive():
            self.loop.close()
