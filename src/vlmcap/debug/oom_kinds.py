"""Which out-of-memory failure an error is, from vLLM 0.32's own messages.

What is recognised (the messages are vLLM 0.32's own; the exception chain is searched, as
vLLM often wraps the first error):

* ``kv_too_small``: "To serve at least one request with the model's max seq len (N), (X GiB
  KV cache is needed, which is larger than the available KV cache memory (Y GiB)" (vLLM's
  KV-cache check; it may add "the estimated maximum model length is M");
* ``no_kv_blocks``: "No available memory for the cache blocks" (weights and activations fill
  the whole budget);
* ``cpu_kv_space``: the CPU worker's "Available memory on node N (A/T GiB) on kv cache
  allocation is less than requested memory for kv" (``VLLM_CPU_KVCACHE_SPACE`` or the
  memory fraction asks for more RAM than is free);
* ``cpu_startup``: the CPU worker's "... on startup is less than desired CPU memory
  utilization";
* ``gpu_startup``: "Free memory on device ... on startup is less than desired GPU memory
  utilization" (or "than the engine's budget"): other processes hold GPU memory;
* ``gpu_oom``: ``torch.OutOfMemoryError`` (``torch.cuda.OutOfMemoryError`` is the same class),
  "CUDA out of memory", vLLM's "not enough GPU memory" on load;
* ``host_ram``: ``MemoryError``, PyTorch's "DefaultCPUAllocator: can't allocate memory", an
  ``OSError`` with ``ENOMEM``.

An engine that fails to start in its own process reaches this process as "Engine core
initialization failed. See root cause above": the root cause is in the engine's log, so pass
that text as ``log_text`` (or call ``oom_advice(log_tail, config)``).
"""

from __future__ import annotations

import errno
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

_NUMBER = r"([0-9]+(?:\.[0-9]+)?)"
_KV_TOO_SMALL = re.compile(
    rf"max seq len \((\d+)\), \({_NUMBER} GiB KV cache is needed, which is larger than the "
    rf"available KV cache memory \({_NUMBER} GiB\)"
)
_ESTIMATED_LEN = re.compile(r"estimated maximum model length is (\d+)")
_CPU_KV_SPACE = re.compile(
    rf"Available memory on node \d+ \({_NUMBER}/{_NUMBER} GiB\) on kv cache allocation is "
    rf"less than requested memory for kv \({_NUMBER}"
)
_CPU_STARTUP = re.compile(
    rf"Available memory on node \d+ \({_NUMBER}/{_NUMBER} GiB\) on startup is less than "
    r"desired CPU memory utilization"
)
_GPU_STARTUP = re.compile(
    rf"Free memory on device \S*\s*\({_NUMBER}/{_NUMBER} GiB\) on startup is less than"
)
_NO_KV_BLOCKS = "No available memory for the cache blocks"
_GPU_OOM_TEXTS = ("CUDA out of memory", "HIP out of memory", "not enough GPU memory")
_HOST_OOM_TEXTS = ("DefaultCPUAllocator: can't allocate memory", "Cannot allocate memory")


@dataclass(frozen=True)
class OomKind:
    """What ran out, and the figures its message gave (GiB, tokens)."""

    kind: str
    what: str
    figures: dict[str, float] = field(default_factory=dict)


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException] = [error]
    while todo:
        exc = todo.pop(0)
        if id(exc) in seen:
            continue
        seen.add(id(exc))
        yield exc
        todo.extend(e for e in (exc.__cause__, exc.__context__) if e is not None)


def _is_torch_oom(exc: BaseException) -> bool:
    return any(
        cls.__name__ == "OutOfMemoryError" and cls.__module__.startswith("torch")
        for cls in type(exc).__mro__
    )


def classify_oom(error: BaseException | str, log_text: str | None = None) -> OomKind | None:
    """The kind of out-of-memory failure ``error`` is (see the module docstring), or None."""
    excs = [] if isinstance(error, str) else list(_chain(error))
    texts = [error] if isinstance(error, str) else [f"{type(e).__name__}: {e}" for e in excs]
    if log_text:
        texts.append(log_text)
    text = "\n".join(texts)
    if match := _KV_TOO_SMALL.search(text):
        figures = {
            "max_model_len": float(match[1]),
            "needed_gib": float(match[2]),
            "available_gib": float(match[3]),
        }
        if estimated := _ESTIMATED_LEN.search(text):
            figures["estimated_max_model_len"] = float(estimated[1])
        return OomKind(
            "kv_too_small",
            f"the KV cache cannot hold one request of max_model_len {match[1]} "
            f"({match[2]} GiB needed, {match[3]} GiB available)",
            figures,
        )
    if _NO_KV_BLOCKS in text:
        return OomKind(
            "no_kv_blocks",
            "no memory is left for the KV cache (the weights and the profiling run's "
            "activations take the whole budget)",
        )
    if match := _CPU_KV_SPACE.search(text):
        figures = {
            "free_gib": float(match[1]),
            "total_gib": float(match[2]),
            "requested_gib": float(match[3]),
        }
        return OomKind(
            "cpu_kv_space",
            f"the CPU KV cache asks for {match[3]} GiB of RAM, {match[1]} GiB of {match[2]} "
            "GiB are free",
            figures,
        )
    if match := _CPU_STARTUP.search(text):
        figures = {"free_gib": float(match[1]), "total_gib": float(match[2])}
        return OomKind(
            "cpu_startup",
            f"the CPU engine wants more RAM than is free ({match[1]} of {match[2]} GiB)",
            figures,
        )
    if match := _GPU_STARTUP.search(text):
        figures = {"free_gib": float(match[1]), "total_gib": float(match[2])}
        return OomKind(
            "gpu_startup",
            f"the GPU has {match[1]} of {match[2]} GiB free, less than vLLM's memory fraction "
            "(other processes hold the rest)",
            figures,
        )
    if any(_is_torch_oom(e) for e in excs) or any(t in text for t in _GPU_OOM_TEXTS):
        return OomKind("gpu_oom", "the GPU ran out of memory")
    host = any(
        isinstance(e, MemoryError) or (isinstance(e, OSError) and e.errno == errno.ENOMEM)
        for e in excs
    )
    if host or any(t in text for t in _HOST_OOM_TEXTS) or text.startswith("MemoryError"):
        return OomKind("host_ram", "the host ran out of RAM")
    return None
