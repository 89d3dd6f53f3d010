"""Engine requests built ahead of the engine, on threads of their own.

Building a request is CPU work in the calling process: the chat template, then vLLM's
renderer, which runs the model's Hugging Face processor on every picture and clip (resizing,
patching, normalising: about 6 ms a picture and 27 ms an 8-frame clip on an H200 host). On the
loop's thread that work stalls everything else the loop does, and requests reach a waiting GPU
one at a time. Here a pool of threads does it while the loop steps the engine; the loop only
hands finished inputs to ``add_request``, in the order they were submitted.

Much of the processor's work (PIL, NumPy and PyTorch kernels) runs outside the GIL, so the
threads run side by side. With vLLM's multimodal processor cache on, one thread is used: the
cache in this process and its mirror in the engine core stay in step only when requests are
rendered and sent in the same order.

Flow::

    submit(request)          the pool: plugin.engine_inputs -> renderer.render_cmpl
    ready()                  finished preparations, oldest first, stopping at the first
                             still running (the order add_request sees)
    wait(timeout)            block until the oldest is finished
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vlmcap.config import VLMConfig
    from vlmcap.core.request import StageRequest

logger = logging.getLogger(__name__)

#: CPU cores per preparation thread when the count is left to vlmcap: the rest stay with the
#: engine's own processes, the decoders and the loop.
CORES_PER_THREAD = 4
#: Most preparation threads chosen automatically (more stop paying off: the GIL).
AUTO_MAX_THREADS = 8


def prepare_threads(
    config: VLMConfig, *, cpu_count: int | None = None, cache_on: bool | None = None
) -> int:
    """Threads the offline engine builds its requests on (0: the loop's own thread).

    ``config.prepare_threads`` when set, else a quarter of the CPU cores (1 to 8). With the
    multimodal processor cache on (``cache_on``, the engine's own setting where known, else
    ``config.mm_cache``), at most one (see the module docstring)."""
    asked = config.prepare_threads
    if asked is None:
        cores = cpu_count if cpu_count is not None else (os.cpu_count() or 1)
        asked = max(1, min(AUTO_MAX_THREADS, cores // CORES_PER_THREAD))
    cached = config.mm_cache if cache_on is None else cache_on
    if asked > 1 and cached:
        logger.info(
            "building requests on 1 thread, not %d: the multimodal processor cache needs them "
            "in order (--no-mm-cache allows more)",
            asked,
        )
        return 1
    return asked


def engine_mm_cache(engine: Any) -> bool | None:
    """Whether ``engine`` (vLLM's ``LLMEngine``) runs with the multimodal processor cache on;
    None where it does not say."""
    multimodal = getattr(getattr(getattr(engine, "vllm_config", None), "model_config", None),
                         "multimodal_config", None)  # fmt: skip
    size = getattr(multimodal, "mm_processor_cache_gb", None)
    return None if size is None else float(size) > 0


def renderer_of(engine: Any) -> Any | None:
    """vLLM's renderer behind ``engine`` (``LLMEngine.input_processor.renderer``), or None
    where this engine has none (then ``add_request`` is given the raw prompt)."""
    processor = getattr(engine, "input_processor", None)
    renderer = getattr(processor, "renderer", None)
    return renderer if callable(getattr(renderer, "render_cmpl", None)) else None


@dataclass
class Prepared:
    """One request whose engine input is being built, or is built (``future``'s result, or
    the ``Rejected`` it raised)."""

    request: StageRequest
    future: Future[Any]


class Preparer:
    """A pool of ``threads`` threads running ``build`` (a request's engine input) ahead."""

    def __init__(self, threads: int, build: Callable[[StageRequest], Any]) -> None:
        self._build = build
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="vlmcap-prepare")
        self._pending: deque[Prepared] = deque()

    def __len__(self) -> int:
        return len(self._pending)

    def submit(self, request: StageRequest) -> None:
        self._pending.append(Prepared(request, self._pool.submit(self._build, request)))

    def ready(self) -> Iterator[Prepared]:
        """Finished preparations, oldest first, up to the first still running."""
        while self._pending and self._pending[0].future.done():
            yield self._pending.popleft()

    def wait(self, timeout: float | None) -> None:
        """Until the oldest preparation has finished, or ``timeout`` seconds have passed."""
        if self._pending:
            wait([self._pending[0].future], timeout=timeout)

    def close(self) -> None:
        """Drop what is still waiting and stop the threads (those running finish their one)."""
        self._pending.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)
