"""Stop an offline ``vllm.LLM``'s engine explicitly, and quietly, before the interpreter exits.

vLLM 0.32's ``LLM`` has no ``shutdown``; its engine client (``llm.llm_engine.engine_core``, an
``MPClient``) has ``shutdown(timeout)``, which SIGTERMs the engine core process and joins it.
Left to the interpreter's exit, that runs from an ``atexit`` finalizer with vLLM's default
timeout of 5 s, racing multiprocessing's own termination of daemonic children: every normal run
then ended with a WARNING, "[shutdown] Process manager: force killing remaining process
EngineCore" or "[shutdown] MPClient: engine core exited unexpectedly; starting cleanup".

The engine core needs longer than 5 s: it first waits up to ``VLLM_WORKER_SHUTDOWN_TIMEOUT_SECONDS``
(5 s by default) for its workers, and SIGTERMs them for 4 s more if they linger, then tears down.
So ``shutdown_llm`` calls ``engine_core.shutdown(timeout=...)`` with a timeout above that sum: the
engine core exits on its own (about 6 s on a 2-core CPU machine) and nothing is force-killed. An
explicit shutdown also detaches vLLM's finalizer, so its engine monitor thread no longer reports
the engine core's end as unexpected.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

logger = logging.getLogger(__name__)

#: Seconds vLLM's engine core may wait for its workers (its default, and the variable it reads).
WORKER_SHUTDOWN_DEFAULT_S = 5.0
WORKER_SHUTDOWN_ENV = "VLLM_WORKER_SHUTDOWN_TIMEOUT_SECONDS"
#: Seconds vLLM's engine core waits after SIGTERMing workers that outlived that wait.
WORKER_TERM_WAIT_S = 4.0
#: Seconds for the engine core's own teardown on top of its workers' (model, caches, sockets).
TEARDOWN_MARGIN_S = 20.0


def engine_shutdown_timeout_s() -> float:
    """How long the engine core may take to exit before vLLM kills it."""
    try:
        workers = float(os.environ.get(WORKER_SHUTDOWN_ENV, WORKER_SHUTDOWN_DEFAULT_S))
    except ValueError:
        workers = WORKER_SHUTDOWN_DEFAULT_S
    return workers + WORKER_TERM_WAIT_S + TEARDOWN_MARGIN_S


def shutdown_llm(llm: Any, timeout_s: float | None = None) -> None:
    """Stop ``llm``'s engine processes now and wait for them (idempotent, never raises).

    ``llm`` is a ``vllm.LLM``; ``timeout_s`` defaults to ``engine_shutdown_timeout_s()``. A failure
    is logged, not raised: this runs in ``finally`` blocks, where it must not hide the run's own
    outcome.
    """
    engine = getattr(llm, "llm_engine", None)
    client = getattr(engine, "engine_core", None)
    if client is None:
        return
    timeout = engine_shutdown_timeout_s() if timeout_s is None else timeout_s
    start = time.monotonic()
    try:
        client.shutdown(timeout=timeout)
    except Exception:  # reported, not raised: the run's own outcome stands
        logger.warning("vLLM's engine did not shut down cleanly", exc_info=True)
        return
    logger.debug("vLLM's engine shut down in %.1f s", time.monotonic() - start)
