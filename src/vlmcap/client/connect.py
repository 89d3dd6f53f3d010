"""Finding and checking the server a caption run talks to: URL or URL file, served model.

``open_server`` turns ``vlmcap caption``'s server options (``ClientOptions``) into checked
``ClientConfig`` settings (``None`` means offline mode); ``connect`` asks the server which model
it serves.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from vlmcap.client import ServerError
from vlmcap.client.openai_client import ClientConfig, ServerClient
from vlmcap.options.commands import SERVER_IGNORED_FIELDS

if TYPE_CHECKING:
    from vlmcap.config import VLMConfig
    from vlmcap.options.network import ClientOptions

logger = logging.getLogger(__name__)

#: Seconds ``vlmcap caption --server-url-file`` waits for the file to appear.
URL_FILE_WAIT_S = 900.0
#: Config fields that only the engine uses (the engine-side option groups): ignored, with a
#: warning, in server mode.
ENGINE_FIELDS = tuple(sorted(SERVER_IGNORED_FIELDS))


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
    config: VLMConfig, options: ClientOptions, *, url_file_wait_s: float = URL_FILE_WAIT_S
) -> ClientConfig | None:
    """``vlmcap caption``'s server options -> checked settings; None when neither
    ``server_url`` nor ``server_url_file`` is given (offline mode). May set ``config.model``
    (see ``connect``).

    Raises ``ValueError`` for bad options and ``ServerError`` when the server is not usable.
    """
    from vlmcap.server.url_file import wait_for_url_file

    url, url_file = options.server_url, options.server_url_file
    if url is not None and url_file is not None:
        raise ValueError("give --server-url or --server-url-file, not both")
    if url is None:
        if url_file is None:
            return None
        url = wait_for_url_file(url_file, url_file_wait_s)
    settings = ClientConfig(
        url=url,
        api_key=options.api_key,
        model=options.served_model,
        concurrency=options.concurrency,
        request_timeout=options.request_timeout,
        retries=options.retries,
    )
    try:
        return connect(settings, config)
    except ServerError as exc:
        if url_file is not None:
            raise type(exc)(f"{exc} (URL read from {url_file}; a stale file?)") from None
        raise
