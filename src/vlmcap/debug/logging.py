"""The one place that configures logging for the CLI (libraries only get loggers).

vLLM configures its own ``vllm`` logger from ``VLLM_LOGGING_LEVEL``; we leave it alone unless the
user asks for ``--verbose``/``--quiet``, so vLLM's documented switches keep working.
"""

from __future__ import annotations

import logging
import os

from rich.logging import RichHandler

from vlmcap import envs

_FORMAT = "%(name)s: %(message)s"


def setup_logging(level: str | int | None = None, vllm_level: str | None = None) -> None:
    """Configure the ``vlmcap`` logger (rich handler on stderr) once per process.

    ``level`` defaults to ``$VLMCAP_LOG_LEVEL``. ``vllm_level`` sets ``VLLM_LOGGING_LEVEL`` for
    vLLM and the engine processes it spawns (only if the user has not set it).
    """
    resolved = level if level is not None else envs.get("VLMCAP_LOG_LEVEL")
    if isinstance(resolved, str):
        resolved = resolved.upper()
    logger = logging.getLogger("vlmcap")
    logger.setLevel(resolved)
    if not any(isinstance(h, RichHandler) for h in logger.handlers):
        handler = RichHandler(show_path=False, rich_tracebacks=False, markup=False)
        handler.setFormatter(logging.Formatter(_FORMAT))
        logger.addHandler(handler)
        logger.propagate = False
    if vllm_level is not None:
        os.environ.setdefault("VLLM_LOGGING_LEVEL", vllm_level.upper())
