"""Finding and checking the server a caption run talks to: URL or URL file, served model.

``open_server`` turns ``vlmcap caption``'s server options into checked ``ClientConfig``
settings (``None`` means offline mode); ``connect`` asks the server which model it serves.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from vlmcap.client import ServerError
from vlmcap.client.openai_client import ClientConfig, ServerClient

if TYPE_CHECKING:
    from vlmcap.config import VLMConfig

logger = logging.getLogger(__name__)

#: Seconds ``vlmcap caption --server-url-file`` waits for the file to appear.
URL_FILE_WAIT_S = 900.0
#: Config fields that only the engine uses: ignored (with a warning) in server mode.
ENGINE_FIELDS = (
    "model_path",
    "fp8",
    "tensor_parallel_size",
    "preprocess",
    "mm_cache",
    "prefix_caching",
    "max_model_len",
    "gpu_memory_utilization",
    "enforce_eager",
    "engine_args",
    "inflight_batching",
    "batch_size",
    "max_inflight",
)


def connect(settings: ClientConfig, config: VLMConfig) -> ClientConfig:
    """Check the server; ``settings`` with ``model`` resolved (``auto``: the only one served).

    When ``config`` names no model (neither option nor config file) and the server's model is
    a vlmcap plugin variant (as ``vlmcap serve`` names it), ``config.model`` is set to it, so
    prompts, decoding and output names match the server. Raises ``ServerError`` subclasses.
    """
    from vlmcap.plugins.registry import available

    async def resolve() -> str:
        client = ServerClient(settings)
        try:
            return await client.resolve_model()
        finally:
            await client.close()

    served = asyncio.run(resolve())
    settings = replace(settings, model=served)
    if served != config.model:
        if "model" not in config.model_fields_set and served in available():
            config.model = served
        else:
            logger.warning(
                "the server serves %r; captions use the prompts and decoding of model %r",
                served,
                config.model,
            )
    ignored = sorted(set(ENGINE_FIELDS) & config.model_fields_set)
    if ignored:
        logger.warning(
            "ignored with a server (they belong to `vlmcap serve`): %s", ", ".join(ignored)
        )
    logger.info("captioning through %s, model %s", settings.url, served)
    return settings


def open_server(
    config: VLMConfig,
    *,
    url: str | None,
    url_file: Path | None,
    served_model: str = "auto",
    api_key: str | None = None,
    concurrency: int = 16,
    request_timeout: float = 600.0,
    retries: int = 8,
    url_file_wait_s: float = URL_FILE_WAIT_S,
) -> ClientConfig | None:
    """``vlmcap caption``'s server options -> checked settings; None when neither ``url`` nor
    ``url_file`` is given (offline mode). May set ``config.model`` (see ``connect``).

    Raises ``ValueError`` for bad options and ``ServerError`` when the server is not usable.
    """
    from vlmcap.server.url_file import wait_for_url_file

    if url is not None and url_file is not None:
        raise ValueError("give --server-url or --server-url-file, not both")
    if url is None:
        if url_file is None:
            return None
        url = wait_for_url_file(url_file, url_file_wait_s)
    settings = ClientConfig(
        url=url,
        api_key=api_key,
        model=served_model,
        concurrency=concurrency,
        request_timeout=request_timeout,
        retries=retries,
    )
    try:
        return connect(settings, config)
    except ServerError as exc:
        if url_file is not None:
            raise type(exc)(f"{exc} (URL read from {url_file}; a stale file?)") from None
        raise
