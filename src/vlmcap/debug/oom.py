"""Out-of-memory failures recognised, with the memory at that moment and what to change.

    advice = oom_advice(exc, config)    # None: not an out-of-memory failure
    if advice is not None:
        typer.echo(advice, err=True)

The failures recognised and their kinds are ``vlmcap.debug.oom_kinds``'.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vlmcap.debug.memory import MemoryReport
from vlmcap.debug.memory_readings import Checkpoint, read_checkpoint
from vlmcap.debug.oom_kinds import OomKind, classify_oom
from vlmcap.options.media import DEFAULT_MAX_FRAMES, DEFAULT_MAX_PIXELS, DEFAULT_MIN_FRAMES
from vlmcap.options.vlm import CPU_MEMORY_UTILIZATION, GPU_MEMORY_UTILIZATION, MIN_MODEL_LEN

if TYPE_CHECKING:
    from vlmcap.config import VLMConfig
    from vlmcap.options.media import MediaOptions

logger = logging.getLogger(__name__)

OOM_LABEL = "oom"
KVCACHE_ENV = "VLLM_CPU_KVCACHE_SPACE"
#: GiB of KV cache vlmcap gives the CPU backend when the variable is unset (engine.args).
DEFAULT_CPU_KVCACHE_GIB = 1
#: A raised memory fraction stops here (the rest is the CUDA context, NCCL, other programs).
MAX_GPU_MEMORY_UTILIZATION = 0.95
#: Steps a memory fraction is raised or lowered by.
UTILIZATION_STEP = 0.05
#: Margin left under the free fraction when vLLM found less free memory than it wanted.
FREE_MARGIN = 0.02
#: Lowest memory fraction worth suggesting.
MIN_UTILIZATION = 0.05
#: Context lengths are suggested in multiples of this many tokens.
MODEL_LEN_STEP = 256
#: Share of the free RAM a suggested ``VLLM_CPU_KVCACHE_SPACE`` may take.
KVCACHE_SHARE_OF_FREE = 0.5
#: Bytes in a GiB.
GIB = 1024**3


@dataclass(frozen=True)
class Remedy:
    """One change to try: the option (or variable) that sets it, and why it helps."""

    option: str
    why: str

    def line(self) -> str:
        return f"  {self.option}: {self.why}"


def oom_advice(
    error: BaseException | str,
    config: VLMConfig,
    *,
    media: MediaOptions | None = None,
    report: MemoryReport | None = None,
    on_cpu: bool | None = None,
    log_text: str | None = None,
) -> str | None:
    """What ran out, the memory now and what to change, or None for other failures.

    ``media``: the run's media options (their defaults without them); ``report``: the run's
    ``--memory-report``, which then records this moment as an ``oom`` checkpoint;
    ``on_cpu``: vLLM's CPU backend (default: vLLM's platform where vLLM is imported, else
    no GPU seen by NVML); ``log_text``: the engine's
    log, searched as well (see the module docstring).
    """
    found = classify_oom(error, log_text)
    if found is None:
        return None
    try:
        now = report.checkpoint(OOM_LABEL) if report is not None else read_checkpoint(OOM_LABEL, 0)
    except OSError as exc:  # a reading failed; the advice still stands
        logger.debug("no memory checkpoint at the out-of-memory failure: %s", exc)
        now = None
    cpu = on_cpu if on_cpu is not None else _engine_on_cpu(now)
    remedies = remedies_for(found, config, media=media, on_cpu=cpu, now=now)
    lines = [f"out of memory: {found.what}"]
    if now is not None:
        lines.append(f"memory now: {now.summary()}")
    lines.append("try:" if remedies else "no remedy known for this case")
    lines.extend(r.line() for r in remedies)
    return "\n".join(lines)


@dataclass(frozen=True)
class _Case:
    """What the remedies are computed from."""

    found: OomKind
    config: VLMConfig
    media: MediaOptions | None
    on_cpu: bool
    util: float  # the memory fraction the engine was started with
    model_len: int | None  # its context length, where known
    kv_env: str  # VLLM_CPU_KVCACHE_SPACE as set ("" unset)
    free_ram_gib: float | None
    gpus: int  # GPUs NVML sees

    @property
    def kv_gib(self) -> int:
        return _int_or(self.kv_env, DEFAULT_CPU_KVCACHE_GIB)


def remedies_for(
    found: OomKind,
    config: VLMConfig,
    *,
    media: MediaOptions | None = None,
    on_cpu: bool,
    now: Checkpoint | None = None,
) -> list[Remedy]:
    """Concrete changes for ``found``, values computed from ``config`` and the figures."""
    free = None if now is None or now.ram_available_bytes is None else now.ram_available_bytes
    case = _Case(
        found=found,
        config=config,
        media=media,
        on_cpu=on_cpu,
        util=_utilization(config, on_cpu),
        model_len=_model_len(config, found),
        kv_env=os.environ.get(KVCACHE_ENV, ""),
        free_ram_gib=None if free is None else free / GIB,
        gpus=len(now.gpus) if now is not None else 0,
    )
    return _REMEDIES[found.kind](case)


def _kv_too_small(case: _Case) -> list[Remedy]:
    out = []
    estimated = case.found.figures.get("estimated_max_model_len")
    target = int(estimated) if estimated else (case.model_len or 0) // 2
    if target:
        out.append(_shorter_context(target, "vLLM's estimate of the longest that fits"))
    if case.on_cpu:
        need = math.ceil(case.found.figures["needed_gib"]) + DEFAULT_CPU_KVCACHE_GIB
        out.append(_kvcache_space(need, case, "GiB of KV cache the CPU backend gets"))
    else:
        out.extend(_more_gpu_budget(case))
    return out


def _no_kv_blocks(case: _Case) -> list[Remedy]:
    out = []
    if case.on_cpu:
        need = max(DEFAULT_CPU_KVCACHE_GIB, case.kv_gib * 2)
        out.append(_kvcache_space(need, case, "an explicit KV cache size in GiB"))
    else:
        out.extend(_more_gpu_budget(case))
    if case.model_len:
        out.append(_shorter_context(case.model_len // 2, "a smaller profiling run"))
    return out


def _cpu_kv_space(case: _Case) -> list[Remedy]:
    free = case.found.figures["free_gib"]
    space = max(DEFAULT_CPU_KVCACHE_GIB, math.floor(free * KVCACHE_SHARE_OF_FREE))
    out = [
        Remedy(
            f"{KVCACHE_ENV}={space}",
            f"GiB of KV cache (now {case.kv_env or 'unset'}); {free:g} GiB of RAM are free",
        )
    ]
    if not case.kv_env:
        fraction = _fraction_below(free / case.found.figures["total_gib"])
        out.append(_lower_utilization(fraction, case.util, "of the host's RAM vLLM reserves"))
    if case.model_len:
        out.append(_shorter_context(case.model_len // 2, "a smaller KV cache per request"))
    return out


def _startup(case: _Case) -> list[Remedy]:
    figures = case.found.figures
    fraction = _fraction_below(figures["free_gib"] / figures["total_gib"])
    cpu = case.found.kind == "cpu_startup"
    whose = "the host's RAM" if cpu else "the GPU's memory"
    out = [_lower_utilization(fraction, case.util, f"of {whose}, under what is free now")]
    if cpu:
        out.append(Remedy(f"{KVCACHE_ENV}={DEFAULT_CPU_KVCACHE_GIB}", "a fixed KV cache"))
    return out


def _gpu_oom(case: _Case) -> list[Remedy]:
    out = []
    lower = round(case.util - 2 * UTILIZATION_STEP, 2)
    if lower >= MIN_UTILIZATION:
        out.append(
            _lower_utilization(lower, case.util, "leaves room for what vLLM does not budget")
        )
    out.extend(_less_per_step(case, with_context=True))
    out.extend(_spread_or_shrink(case))
    return out


def _host_ram(case: _Case) -> list[Remedy]:
    out = _less_per_step(case, with_context=False)
    if case.on_cpu:
        if case.kv_gib > 1:
            out.append(Remedy(f"{KVCACHE_ENV}={case.kv_gib // 2}", f"(now {case.kv_gib}) GiB"))
        lower = round(case.util - UTILIZATION_STEP, 2)
        if lower >= MIN_UTILIZATION:
            out.append(_lower_utilization(lower, case.util, "of the host's RAM vLLM reserves"))
    out.append(Remedy("--memory-report", "see whether memory grows with the items"))
    return out


_REMEDIES: dict[str, Callable[[_Case], list[Remedy]]] = {
    "kv_too_small": _kv_too_small,
    "no_kv_blocks": _no_kv_blocks,
    "cpu_kv_space": _cpu_kv_space,
    "cpu_startup": _startup,
    "gpu_startup": _startup,
    "gpu_oom": _gpu_oom,
    "host_ram": _host_ram,
}


def _engine_on_cpu(now: Checkpoint | None) -> bool:
    """vLLM's own answer where it is loaded (an offline engine), else: no GPU seen by NVML."""
    if "vllm" in sys.modules:
        from vlmcap.engine.args import on_cpu

        return on_cpu()
    return now is None or not now.gpus


def _utilization(config: VLMConfig, on_cpu: bool) -> float:
    value = config.engine_args.get("gpu_memory_utilization", config.gpu_memory_utilization)
    if value is None:
        return CPU_MEMORY_UTILIZATION if on_cpu else GPU_MEMORY_UTILIZATION
    return float(value)


def _model_len(config: VLMConfig, found: OomKind) -> int | None:
    """The context length the engine was started with: the message's, else the config's,
    else the plugin's default."""
    if "max_model_len" in found.figures:
        return int(found.figures["max_model_len"])
    value = config.engine_args.get("max_model_len", config.max_model_len)
    if value is not None:
        return int(value)
    from vlmcap.plugins.registry import UnknownModelError, get_plugin

    try:
        plugin = get_plugin(config.model, config.model_path)
    except UnknownModelError:
        return None
    default = plugin.engine_overrides(config).get("max_model_len")
    return int(default) if default is not None else None


def _int_or(text: str, default: int) -> int:
    try:
        return int(text)
    except ValueError:
        return default


def _fraction_below(free_fraction: float) -> float:
    return max(MIN_UTILIZATION, math.floor((free_fraction - FREE_MARGIN) * 100) / 100)


def _shorter_context(tokens: int, why: str) -> Remedy:
    value = max(MIN_MODEL_LEN, tokens // MODEL_LEN_STEP * MODEL_LEN_STEP or tokens)
    return Remedy(
        f"--max-model-len {value}",
        f"{why}; it must still hold the longest prompt (vision tokens) plus the output",
    )


def _lower_utilization(value: float, current: float, why: str) -> Remedy:
    return Remedy(f"--gpu-memory-utilization {value:g}", f"(now {current:g}) {why}")


def _kvcache_space(gib: int, case: _Case, why: str) -> Remedy:
    free = case.free_ram_gib
    note = f"; {free:.1f} GiB of RAM are free now" if free is not None else ""
    return Remedy(
        f"{KVCACHE_ENV}={gib}",
        f"{why} (on the CPU backend --gpu-memory-utilization does not size the KV cache while "
        f"this is set){note}",
    )


def _more_gpu_budget(case: _Case) -> list[Remedy]:
    out = []
    util = case.util
    higher = round(min(MAX_GPU_MEMORY_UTILIZATION, util + UTILIZATION_STEP), 2)
    if higher > util:
        out.append(Remedy(f"--gpu-memory-utilization {higher:g}", f"(now {util:g}) more memory"))
    out.extend(_spread_or_shrink(case))
    return out


def _spread_or_shrink(case: _Case) -> list[Remedy]:
    out = []
    tp = case.config.tensor_parallel_size * 2
    seen = f"{case.gpus} GPU(s) seen here" if case.gpus else "needs that many GPUs"
    out.append(Remedy(f"--tp {tp}", f"weights and KV cache over {tp} GPUs ({seen})"))
    if not case.config.fp8:
        out.append(Remedy("--fp8", "fp8 weights take about half the memory (GPU only)"))
    return out


def _less_per_step(case: _Case, *, with_context: bool) -> list[Remedy]:
    """Fewer requests inside the engine and smaller ones: less activation and KV memory."""
    config, media, model_len = case.config, case.media, case.model_len
    out = []
    if config.inflight_batching and config.max_inflight > 1:
        out.append(
            Remedy(
                f"--max-inflight {max(1, config.max_inflight // 2)}",
                f"(now {config.max_inflight}) fewer requests inside the engine at once",
            )
        )
    elif not config.inflight_batching and config.batch_size > 1:
        out.append(Remedy(f"--batch-size {max(1, config.batch_size // 2)}", "smaller batches"))
    if media is not None and media.num_frames is not None:
        frames = max(DEFAULT_MIN_FRAMES, media.num_frames // 2)
        out.append(Remedy(f"--num-frames {frames}", f"(now {media.num_frames}) per window"))
    else:
        most = media.max_frames if media is not None else DEFAULT_MAX_FRAMES
        minimum = media.min_frames if media is not None else DEFAULT_MIN_FRAMES
        if most > minimum:
            frames = max(minimum, most // 2)
            out.append(Remedy(f"--max-frames {frames}", f"(now {most}) frames per window"))
    pixels = media.max_pixels if media is not None else DEFAULT_MAX_PIXELS
    out.append(Remedy(f"--max-pixels {pixels // 2}", f"(now {pixels}) pixels per frame"))
    if with_context and model_len:
        out.append(_shorter_context(model_len // 2, f"(now {model_len}) less KV cache"))
    return out
