"""Around an offline ``vllm.LLM``'s life: guarded from its start, shut down explicitly and quietly.

vLLM 0.32's ``LLM`` has no ``shutdown``; its engine client (``llm.llm_engine.engine_core``, an
``MPClient``) has ``shutdown(timeout)``, which SIGTERMs the engine core process and joins it.
Left to the interpreter's exit, that runs from an ``atexit`` finalizer with vLLM's default timeout
of 5 s, while multiprocessing terminates its daemonic children on its own: a normal run then
ended with vLLM's WARNING "[shutdown] Process manager: force killing remaining process
EngineCore". Even an explicit ``engine_core.shutdown()`` (no timeout) did.

The engine core needs more than 5 s: it first waits up to ``VLLM_WORKER_SHUTDOWN_TIMEOUT_SECONDS``
(5 s by default) for its workers, SIGTERMs them for 4 s more if they linger ("workers still
running after grace period", another WARNING), then tears down. A worker took about 3 s to exit
on an idle 2-core machine and over 10 s when other engines shared the cores. So:

- ``before_engine_start()`` starts the child guard and gives the workers
  ``WORKER_SHUTDOWN_S`` to exit (unless the user set vLLM's variable), before vLLM spawns anything;
- ``shutdown_llm(llm)`` calls ``llm.llm_engine.engine_core.shutdown(timeout=...)`` with a timeout
  above what the engine core may take, so it exits on its own (about 6 s here) and nothing is
  force-killed. An explicit shutdown also detaches vLLM's exit finalizer and stops its engine
  monitor from reporting the engine core's end ("engine core exited unexpectedly").
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from vlmcap.runtime.guard import guard_children

logger = logging.getLogger(__name__)

#: vLLM's variable: seconds the engine core waits for its workers to exit before SIGTERMing them.
WORKER_SHUTDOWN_ENV = "VLLM_WORKER_SHUTDOWN_TIMEOUT_SECONDS"
#: Our default for it (vLLM's is 5), long enough for workers on a busy machine.
WORKER_SHUTDOWN_S = 30
#: Seconds vLLM's engine core waits after SIGTERMing workers that outlived that wait.
WORKER_TERM_WAIT_S = 4.0
#: Seconds for the engine core's own teardown on top of its workers' (caches, process groups).
TEARDOWN_MARGIN_S = 30.0


def before_engine_start() -> None:
    """Call before ``vllm.LLM(...)``: the child guard runs, and the engine's workers get time to
    exit cleanly at shutdown (the engine processes read the variable when they start)."""
    guard_children()
    os.environ.setdefault(WORKER_SHUTDOWN_ENV, str(WORKER_SHUTDOWN_S))


def engine_shutdown_timeout_s() -> float:
    """How long the engine core may take to exit before vLLM kills it."""
    try:
        workers = float(os.environ.get(WORKER_SHUTDOWN_ENV, WORKER_SHUTDOWN_S))
    except ValueError:
        workers = WORKER_SHUTDOWN_S
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
