"""Wake a step that waits on a dead engine.

vLLM's engine core runs in its own process; ``LLMEngine.step()`` waits on a queue that a
thread of vLLM's client fills from that process's socket. When the process dies (killed,
a CUDA error, the out-of-memory killer), vLLM's monitor thread marks the client dead and
shuts it down, but the sync client puts nothing into that queue: a step already waiting
never returns, and the job would hang with requests "running" forever. ``DeathAlarm`` watches
the same flag and, once it is set, puts vLLM's own ``EngineDeadError`` into the queue, so the
waiting ``step()`` raises it as it does for any other engine failure.

Engines without a separate process (vLLM's in-process client) have neither the flag nor the
queue: the alarm then does nothing, and a failure there raises from ``step()`` directly.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

logger = logging.getLogger(__name__)

#: Seconds between two looks at vLLM's "engine dead" flag.
POLL_S = 0.25


def _client(engine: Any) -> Any | None:
    """vLLM's multiprocess engine-core client of ``engine`` (an ``LLMEngine``), if it has one
    with the flag and the queue the alarm needs."""
    client = getattr(engine, "engine_core", None)
    resources = getattr(client, "resources", None)
    if resources is None or not hasattr(resources, "engine_dead"):
        return None
    if not hasattr(getattr(client, "outputs_queue", None), "put_nowait"):
        return None
    return client


def engine_dead(engine: Any) -> bool:
    """Whether vLLM has marked ``engine``'s core process dead."""
    client = _client(engine)
    return client is not None and bool(client.resources.engine_dead)


def death_reason(engine: Any) -> str:
    """What is known of a dead engine: its core processes' exit statuses (a negative one is
    the signal that killed it, e.g. -9 for SIGKILL, the out-of-memory killer's)."""
    manager = getattr(getattr(_client(engine), "resources", None), "engine_manager", None)
    codes = [
        f"{proc.name} exit status {proc.exitcode}"
        for proc in getattr(manager, "processes", ())
        if getattr(proc, "exitcode", None) is not None
    ]
    return "vLLM's engine core process exited" + (f" ({', '.join(codes)})" if codes else "")


class DeathAlarm:
    """While started, turns vLLM's "engine dead" flag into an error of the waiting step."""

    def __init__(self, engine: Any) -> None:
        self._client = _client(engine)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def watching(self) -> bool:
        return self._client is not None

    def start(self) -> DeathAlarm:
        if self._client is not None and self._thread is None:
            self._thread = threading.Thread(
                target=self._watch, name="vlmcap-engine-death-alarm", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching (before the engine is shut down on purpose: that sets the flag too)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _watch(self) -> None:
        from vllm.v1.engine.exceptions import EngineDeadError

        client = self._client
        assert client is not None  # started only with a client to watch
        while not self._stop.wait(POLL_S):
            if client.resources.engine_dead:
                logger.debug("vLLM marked the engine core dead: waking the engine's step")
                client.outputs_queue.put_nowait(EngineDeadError(suppress_context=True))
                return
