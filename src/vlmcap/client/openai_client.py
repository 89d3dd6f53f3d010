"""Async requests to an OpenAI-compatible vLLM server, with vlmcap's retry policy.

``ServerClient`` wraps the official ``openai.AsyncOpenAI`` (its own retries off) and decides,
per failed attempt, what happens next:

    connection error, timeout, 429, 5xx,  retry after an exponential backoff with jitter
    a reply with finish_reason "abort"    (``Retry-After`` honoured), up to ``retries`` times
                                          (vLLM aborts what is in flight when it shuts down)
    401 / 403                             stop the run: ``ServerAuthError`` (never retried)
    404                                   stop the run: wrong URL or model (``ServedModelError``)
    any other 4xx                         this item fails with the server's message (no retry)

When the retries run out, a connection error stops the run (``ServerUnavailableError``: the
server is gone, so the remaining items are left for a resume), while a timeout, 429 or 5xx fails
only that item (as do repeated aborts). Bounded concurrency is the caller's job
(the loop driver keeps at most ``concurrency`` requests in flight).

A ``ChatReply`` keeps the reply as received (``raw``), its token ids when the request asked for
them (vLLM's ``return_token_ids``) and its token logprobs (``Sampling.logprobs``), for debug
dumps and ``logprobs.jsonl``.

Every attempt runs under an ``OutageWatch`` (``vlmcap.client.outage``): attempts in flight to a
server that stopped listening are given up and retried like connection errors.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

from vlmcap.client import ServedModelError, ServerAuthError, ServerUnavailableError
from vlmcap.client.messages import MediaEncoding
from vlmcap.client.outage import WATCH_INTERVAL_S, OutageWatch, ServerLost
from vlmcap.debug.logprobs import from_openai
from vlmcap.options.network import (
    AUTO_MODEL,
    DEFAULT_CONCURRENCY,
    DEFAULT_REQUEST_TIMEOUT_S,
    DEFAULT_RETRIES,
)

if TYPE_CHECKING:
    from openai import AsyncOpenAI

    from vlmcap.core.request import TokenLogprob

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds a connection attempt may take (the request itself has ``request_timeout``).
CONNECT_TIMEOUT_S = 10.0


def normalize_url(url: str) -> str:
    """``host:8000``, ``http://host:8000/`` or ``http://host:8000/v1`` -> ``http://host:8000``."""
    url = url.strip()
    if not url:
        raise ValueError("the server URL is empty")
    if "://" not in url:
        url = "http://" + url
    url = url.rstrip("/")
    return url.removesuffix("/v1")


@dataclass(frozen=True)
class ClientConfig:
    """Where the server is and how to talk to it."""

    url: str
    api_key: str | None = None  # None: $OPENAI_API_KEY, else none
    model: str = AUTO_MODEL  # served model name; auto: the server's only model
    concurrency: int = DEFAULT_CONCURRENCY  # items in flight
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT_S  # seconds per attempt
    retries: int = DEFAULT_RETRIES  # further attempts after a retryable failure
    backoff_s: float = 0.5  # first backoff; doubles per attempt
    backoff_max_s: float = 20.0
    watch_interval_s: float = WATCH_INTERVAL_S
    encoding: MediaEncoding = field(default_factory=MediaEncoding)

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", normalize_url(self.url))
        if self.concurrency < 1:
            raise ValueError(f"--concurrency must be at least 1, got {self.concurrency}")
        if self.request_timeout <= 0:
            raise ValueError(f"--request-timeout must be > 0 s, got {self.request_timeout}")
        if self.retries < 0:
            raise ValueError(f"--retries must be 0 or more, got {self.retries}")
        if not self.model.strip():
            raise ValueError("--served-model is empty; give a model name or 'auto'")

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    @property
    def resolved_api_key(self) -> str | None:
        return self.api_key or os.environ.get("OPENAI_API_KEY") or None

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry ``attempt`` (0-based): half fixed, half random."""
        ceiling = min(self.backoff_max_s, self.backoff_s * 2**attempt)
        return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


@dataclass(frozen=True)
class ChatReply:
    """The parts of a chat completion a record needs, and the reply itself (``raw``: the
    ``openai`` ``ChatCompletion`` as received, for debug dumps)."""

    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    attempts: int = 1
    token_ids: tuple[int, ...] = ()  # only when the server was asked for them
    logprobs: tuple[TokenLogprob, ...] | None = None  # only when the sampling asked for them
    raw: Any = field(default=None, repr=False, compare=False)


class RequestFailed(Exception):
    """This request (item) failed for good; ``str(exc)`` is the reason written to its record."""


class Aborted(Exception):
    """The server answered ``finish_reason: abort``: it dropped the request (typically while
    shutting down), so the request is retried like a 5xx answer."""


def server_message(exc: BaseException) -> str:
    """The server's own error message from an ``openai`` status error, on one short line."""
    body = getattr(exc, "body", None)
    msg: Any = None
    if isinstance(body, dict):
        inner = body.get("error", body)
        msg = inner.get("message") if isinstance(inner, dict) else inner
    text = " ".join(str(msg or getattr(exc, "message", None) or exc).split())
    return text if len(text) <= 400 else text[:397] + "..."


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class ServerClient:
    """One ``AsyncOpenAI`` client with the retry policy above; use it inside one event loop."""

    def __init__(self, settings: ClientConfig, rng: random.Random | None = None) -> None:
        from openai import AsyncOpenAI, Timeout

        self.settings = settings
        self._rng = rng or random.Random()
        self._openai: AsyncOpenAI = AsyncOpenAI(
            base_url=settings.base_url,
            api_key=settings.resolved_api_key or "EMPTY",
            max_retries=0,
            timeout=Timeout(settings.request_timeout, connect=CONNECT_TIMEOUT_S),
        )
        self._down_since: float | None = None  # first connection failure of an outage
        self._watch = OutageWatch(settings.url, settings.watch_interval_s)
        self.send_media_io_kwargs = True  # off once the server refuses per-request kwargs
        self.attempts = 0  # HTTP attempts made (for stats)

    async def close(self) -> None:
        await self._watch.close()
        await self._openai.close()

    # ---- the server's models ---------------------------------------------------------------

    async def served_model_parents(self) -> list[tuple[str, str | None]]:
        """``(name, parent)`` of each served model; the parent of a LoRA adapter is the base
        model it runs on (vLLM's ``parent`` field), None for a base model."""

        async def call() -> list[tuple[str, str | None]]:
            page = await self._openai.models.list()
            return [(m.id, getattr(m, "parent", None)) for m in page.data]

        return await self._retrying("GET /v1/models", call, fatal_timeout=True)

    async def resolve_model(self) -> str:
        """The served model to use: ``settings.model``, checked, or for auto the only one
        served, or the only adapter among a base model and its adapter (``vlmcap serve`` of a
        plugin that runs with a LoRA adapter)."""
        served = await self.served_model_parents()
        models = [name for name, _ in served]
        wanted = self.settings.model
        listing = ", ".join(repr(m) for m in models) or "none"
        if wanted == "auto":
            if len(models) == 1:
                return models[0]
            adapters = [name for name, parent in served if parent in models]
            if len(adapters) == 1 and len(models) == len(adapters) + 1:
                return adapters[0]
            raise ServedModelError(
                f"the server at {self.settings.url} serves {listing}; pick one with "
                "--served-model NAME"
            )
        if wanted not in models:
            raise ServedModelError(
                f"the server at {self.settings.url} does not serve {wanted!r} (it serves "
                f"{listing}); fix --served-model, or use --served-model auto"
            )
        return wanted

    # ---- chat completions ------------------------------------------------------------------

    async def chat(
        self,
        messages: list[dict[str, Any]],
        sampling: dict[str, Any],
        *,
        model: str,
        media_io_kwargs: dict[str, dict[str, Any]] | None = None,
        request_id: str | None = None,
    ) -> ChatReply:
        """One chat completion. Raises ``RequestFailed`` (this item) or ``ServerError``."""
        attempts = 0

        async def call() -> ChatReply:
            nonlocal attempts
            attempts += 1
            extra = dict(sampling.get("extra_body") or {})
            if media_io_kwargs and self.send_media_io_kwargs:
                extra["media_io_kwargs"] = media_io_kwargs
            if request_id is not None:
                extra["request_id"] = request_id if attempts == 1 else f"{request_id}.{attempts}"
            params = {k: v for k, v in sampling.items() if k != "extra_body"}
            response = await self._openai.chat.completions.create(
                model=model, messages=cast(Any, messages), extra_body=extra, **params
            )
            choice = response.choices[0] if response.choices else None
            usage = response.usage
            if choice is not None and choice.finish_reason == "abort":
                raise Aborted("the server aborted the request (was it shutting down?)")
            token_ids = tuple(getattr(choice, "token_ids", None) or ())
            content = getattr(getattr(choice, "logprobs", None), "content", None)
            return ChatReply(
                text=(choice.message.content or "") if choice is not None else "",
                finish_reason=str(choice.finish_reason) if choice is not None else None,
                prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
                attempts=attempts,
                token_ids=token_ids,
                logprobs=from_openai(content, token_ids),
                raw=response,
            )

        return await self._retrying(f"request {request_id or ''}".strip(), call)

    # ---- the retry policy ------------------------------------------------------------------

    async def _retrying(
        self, what: str, call: Callable[[], Awaitable[T]], *, fatal_timeout: bool = False
    ) -> T:
        import openai

        started = time.monotonic()
        attempt = 0
        while True:
            self.attempts += 1
            try:
                result = await self._watch.run(call)
            except (openai.APIConnectionError, ServerLost) as exc:  # incl. APITimeoutError
                timeout = isinstance(exc, openai.APITimeoutError)
                if not timeout:
                    await self._watch.check()  # gone? then give up what else went to it
                if attempt >= self.settings.retries:
                    raise self._gave_up(
                        what,
                        exc=exc,
                        attempt=attempt,
                        started=started,
                        timeout=timeout,
                        fatal_timeout=fatal_timeout,
                    ) from None
                if not timeout:
                    self._note_outage(exc)
                delay = self.settings.backoff(attempt, self._rng)
            except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
                raise ServerAuthError(
                    f"the server at {self.settings.url} refused the API key "
                    f"({exc.status_code}: {server_message(exc)}); pass the server's key with "
                    "--api-key or $OPENAI_API_KEY"
                ) from None
            except openai.NotFoundError as exc:
                raise ServedModelError(
                    f"{what}: the server at {self.settings.url} answered 404 "
                    f"({server_message(exc)}); check --server-url and --served-model"
                ) from None
            except openai.APIStatusError as exc:
                status = exc.status_code
                if status == 400 and self._refuses_media_kwargs(exc):
                    attempt += 1  # not a backoff case: retry at once without them
                    continue
                if status != 429 and status < 500:
                    raise RequestFailed(
                        f"server refused the request ({status}): {server_message(exc)}"
                    ) from None
                if attempt >= self.settings.retries:
                    raise RequestFailed(
                        f"server error {status} after {attempt + 1} attempts: {server_message(exc)}"
                    ) from None
                delay = max(self.settings.backoff(attempt, self._rng), _retry_after(exc) or 0.0)
            except Aborted as exc:
                await self._watch.check()
                if attempt >= self.settings.retries:
                    raise RequestFailed(f"{exc} ({attempt + 1} attempts)") from None
                delay = self.settings.backoff(attempt, self._rng)
            except openai.OpenAIError as exc:  # e.g. a response that does not parse
                raise RequestFailed(f"bad answer from the server: {exc}") from None
            else:
                if self._down_since is not None:
                    logger.warning(
                        "server at %s answers again (after %.0f s)",
                        self.settings.url,
                        time.monotonic() - self._down_since,
                    )
                    self._down_since = None
                return result
            logger.debug("%s: attempt %d failed, retrying in %.2f s", what, attempt + 1, delay)
            await asyncio.sleep(delay)
            attempt += 1

    def _note_outage(self, exc: BaseException) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            logger.warning(
                "cannot reach the server at %s (%s); retrying up to %d times with backoff",
                self.settings.url,
                " ".join(str(exc.__cause__ or exc).split()) or type(exc).__name__,
                self.settings.retries,
            )

    def _refuses_media_kwargs(self, exc: BaseException) -> bool:
        if not self.send_media_io_kwargs or "media_io_kwargs" not in server_message(exc):
            return False
        self.send_media_io_kwargs = False
        logger.warning(
            "the server refuses per-request media options, so videos go with the server's "
            "default frame rate; start it with `vlmcap serve` (or `--trust-request-mm-kwargs`) "
            "to send each clip's own rate"
        )
        return True

    def _gave_up(
        self,
        what: str,
        *,
        exc: BaseException,
        attempt: int,
        started: float,
        timeout: bool,
        fatal_timeout: bool,
    ) -> Exception:
        tries = f"{attempt + 1} attempt{'s' if attempt else ''}"
        spent = time.monotonic() - started
        if timeout and not fatal_timeout:
            return RequestFailed(
                f"no answer within {self.settings.request_timeout:g} s ({tries}); raise "
                "--request-timeout for long videos or a busy server"
            )
        cause = " ".join(str(exc.__cause__ or exc).split()) or type(exc).__name__
        return ServerUnavailableError(
            f"cannot reach the vLLM server at {self.settings.url} ({what}: {cause}; {tries} "
            f"over {spent:.0f} s). Check that it runs (`vlmcap serve ...`, `curl "
            f"{self.settings.url}/health`) and that --server-url is right; raise --retries to "
            "wait longer. Rows written so far are kept: rerun the same command to resume."
        )
