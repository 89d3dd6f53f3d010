"""``oom_advice``: real out-of-memory exceptions and vLLM's own messages are recognised and
answered with options and values; other failures give None.

The KV-cache shortage is provoked for real: vLLM's KV-cache check runs on (a copy of) the
session engine's configuration with less memory than one request needs; no engine starts.
The CPU worker's messages come from code that only runs while an engine starts, so their text
is checked against the installed vLLM's source instead.
"""

from __future__ import annotations

import copy
import inspect
import sys
from typing import Any

import pytest
import torch

from tests.conftest import engine_config
from tests.monitor.test_gpu import fake_nvml
from vlmcap.config import VLMConfig
from vlmcap.debug.memory import MemoryReport
from vlmcap.debug.oom import KVCACHE_ENV, OOM_LABEL, oom_advice
from vlmcap.debug.oom_kinds import classify_oom
from vlmcap.options.media import MediaOptions

#: Bytes far beyond any machine's memory: the allocation fails at once.
HUGE = 2**50


def kv_shortage(vllm_config: Any, available_bytes: int) -> ValueError:
    """vLLM's own KV-cache check for the engine's model with ``available_bytes`` to spare."""
    from vllm.v1.attention.backends.utils import resolve_kv_cache_layout
    from vllm.v1.core.kv_cache_utils import check_enough_kv_cache_memory
    from vllm.v1.kv_cache_interface import FullAttentionSpec

    config = copy.deepcopy(vllm_config)  # the session engine's own is left alone
    if config.cache_config.kv_cache_layout is None:
        resolve_kv_cache_layout(config, [["LBNHC"]])
    model, parallel = config.model_config, config.parallel_config
    spec = FullAttentionSpec(
        block_size=config.cache_config.block_size,
        num_kv_heads=model.get_num_kv_heads(parallel),
        head_size=model.get_head_size(),
        dtype=model.dtype,
    )
    specs = {f"layer{i}": spec for i in range(model.get_num_layers(parallel))}
    with pytest.raises(ValueError) as raised:
        check_enough_kv_cache_memory(config, specs, available_bytes)
    return raised.value


@pytest.fixture(scope="module")
def shortage(engine) -> tuple[ValueError, ValueError, int]:
    """(a KV cache too small for max_model_len, none at all, the engine's max_model_len)."""
    _, llm = engine
    vllm_config = llm.llm_engine.vllm_config
    max_len = vllm_config.model_config.max_model_len
    too_small = kv_shortage(vllm_config, available_bytes=2**20 // 4)
    none = kv_shortage(vllm_config, available_bytes=0)
    return too_small, none, max_len


@pytest.mark.engine
def test_a_real_kv_cache_shortage_on_cpu(shortage, tiny_model_path, monkeypatch):
    too_small, _, max_len = shortage
    monkeypatch.setenv(KVCACHE_ENV, "1")
    config = engine_config(tiny_model_path)
    found = classify_oom(too_small)
    assert found is not None and found.kind == "kv_too_small", str(too_small)
    assert found.figures["max_model_len"] == max_len
    estimated = int(found.figures["estimated_max_model_len"])
    assert 0 < estimated < max_len
    advice = oom_advice(too_small, config, on_cpu=True)
    assert advice is not None
    assert f"max_model_len {max_len}" in advice
    suggested = estimated // 256 * 256 or estimated
    assert f"--max-model-len {max(64, suggested)}" in advice
    assert f"{KVCACHE_ENV}=" in advice and "does not size the KV cache" in advice
    assert "memory now: this process" in advice
    assert "--tp" not in advice and "--fp8" not in advice  # GPU remedies, not on CPU


@pytest.mark.engine
def test_a_real_kv_cache_shortage_on_gpu(shortage, tiny_model_path):
    too_small, _, _ = shortage
    advice = oom_advice(too_small, engine_config(tiny_model_path), on_cpu=False)
    assert advice is not None
    assert "--gpu-memory-utilization 0.9: (now 0.85)" in advice  # 0.85 by default on a GPU, +0.05
    assert "--tp 2" in advice and "--fp8" in advice
    assert KVCACHE_ENV not in advice


@pytest.mark.engine
def test_no_memory_for_any_kv_block(shortage, tiny_model_path, monkeypatch):
    _, none, max_len = shortage
    assert "No available memory for the cache blocks" in str(none)
    monkeypatch.setenv(KVCACHE_ENV, "2")
    advice = oom_advice(none, engine_config(tiny_model_path), on_cpu=True)
    assert advice is not None and "no memory is left for the KV cache" in advice
    assert f"{KVCACHE_ENV}=4" in advice  # twice the 2 GiB set
    assert f"--max-model-len {max_len // 2}" in advice


def test_cuda_out_of_memory(tiny_model_path):
    error = torch.OutOfMemoryError(
        "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of "
        "79.19 GiB of which 1.06 GiB is free."
    )
    config = engine_config(tiny_model_path, max_inflight=64, gpu_memory_utilization=0.9)
    media = MediaOptions(max_frames=32, max_pixels=448 * 448)
    advice = oom_advice(error, config, media=media, on_cpu=False)
    assert advice is not None and advice.startswith("out of memory: the GPU ran out of memory")
    for expected in (
        "--gpu-memory-utilization 0.8: (now 0.9)",
        "--max-inflight 32",
        "--max-frames 16",
        f"--max-pixels {448 * 448 // 2}",
        "--max-model-len 1024",  # half the config's 2048
        "--tp 2",
        "--fp8",
    ):
        assert expected in advice, expected


def test_a_wrapped_cuda_error_and_fixed_frames(tiny_model_path):
    try:
        try:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20 MiB")
        except torch.OutOfMemoryError as exc:
            raise RuntimeError("engine step failed") from exc
    except RuntimeError as wrapped:
        error = wrapped
    config = engine_config(tiny_model_path, fp8=True, tensor_parallel_size=2)
    advice = oom_advice(error, config, media=MediaOptions(num_frames=8), on_cpu=False)
    assert advice is not None
    assert "--num-frames 4" in advice and "--max-frames" not in advice
    assert "--tp 4" in advice and "--fp8" not in advice  # fp8 already on


def test_real_host_out_of_memory_errors(tiny_model_path, monkeypatch):
    monkeypatch.setenv(KVCACHE_ENV, "8")
    config = engine_config(tiny_model_path)
    with pytest.raises(MemoryError) as python_error:
        bytearray(HUGE)
    with pytest.raises(RuntimeError) as torch_error:
        torch.empty(HUGE, dtype=torch.uint8)  # PyTorch's CPU allocator refuses it
    for error in (python_error.value, torch_error.value):
        advice = oom_advice(error, config, on_cpu=True)
        assert advice is not None and "the host ran out of RAM" in advice, error
        assert "--max-inflight" in advice and "--max-frames 8" in advice
        assert f"{KVCACHE_ENV}=4" in advice  # half the 8 GiB set
        assert "--gpu-memory-utilization 0.25" in advice  # 0.3 of RAM on CPU, -0.05
        assert "--memory-report" in advice


def test_the_memory_now_is_recorded_in_the_report(tiny_model_path):
    report = MemoryReport(None)
    advice = oom_advice(MemoryError(), engine_config(tiny_model_path), report=report)
    assert advice is not None
    (point,) = report.checkpoints
    assert point.label == OOM_LABEL and point.process_rss_bytes
    assert point.summary() in advice


def test_gpus_seen_by_nvml_choose_the_gpu_remedies(tiny_model_path, monkeypatch):
    """This machine has no GPU: NVML's answers for two come from the fake of the monitor's
    tests (the only mock here)."""
    fake = fake_nvml(2)
    fake.nvmlDeviceGetComputeRunningProcesses = lambda handle: []
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    advice = oom_advice("CUDA out of memory", engine_config(tiny_model_path), on_cpu=False)
    assert advice is not None
    assert "--tp 2: weights and KV cache over 2 GPUs (2 GPU(s) seen here)" in advice
    assert "GPU0 1.00/141.00 GiB" in advice and "GPU1 2.00/141.00 GiB" in advice


def cpu_kv_message(free: float, total: float, requested: float) -> str:
    return (
        f"Available memory on node 0 ({free}/{total} GiB) on kv cache allocation is less than "
        f"requested memory for kv ({requested} GiB). Decrease --kv-cache-memory-bytes, "
        "VLLM_CPU_KVCACHE_SPACE, or reduce CPU memory used by other processes."
    )


def test_the_cpu_workers_messages_are_vllms():
    from vllm.v1.worker import cpu_worker, utils

    source = inspect.getsource(cpu_worker)
    for fragment in (
        " allocation is less than requested memory for kv ",
        "Decrease --kv-cache-memory-bytes, VLLM_CPU_KVCACHE_SPACE, ",
        "is less than desired CPU memory utilization ",
    ):
        assert fragment in source, fragment
    assert "is less than desired GPU memory utilization " in inspect.getsource(utils)


def test_cpu_kv_space_asks_for_less(tiny_model_path, monkeypatch):
    monkeypatch.setenv(KVCACHE_ENV, "40")
    advice = oom_advice(cpu_kv_message(10.5, 23.4, 40.0), engine_config(tiny_model_path))
    assert advice is not None and "asks for 40.0 GiB of RAM" in advice
    assert f"{KVCACHE_ENV}=5: GiB of KV cache (now 40)" in advice  # half of the 10.5 free
    assert "--max-model-len 1024" in advice


def test_startup_fractions_are_computed_from_what_is_free(tiny_model_path):
    cpu = (
        "Available memory on node 0 (5.0/20.0 GiB) on startup is less than desired CPU memory "
        "utilization (0.5, 10.0 GiB). On the CPU backend, ..."
    )
    gpu = (
        "Free memory on device cuda:0 (30.0/80.0 GiB) on startup is less than desired GPU "
        "memory utilization (0.9, 72.0 GiB). Decrease GPU memory utilization or reduce GPU "
        "memory used by other processes."
    )
    config = engine_config(tiny_model_path, gpu_memory_utilization=0.5)
    cpu_advice = oom_advice(cpu, config, on_cpu=True)
    gpu_advice = oom_advice(gpu, config.model_copy(update={"gpu_memory_utilization": 0.9}))
    assert cpu_advice is not None and "--gpu-memory-utilization 0.23: (now 0.5)" in cpu_advice
    assert gpu_advice is not None and "--gpu-memory-utilization 0.35: (now 0.9)" in gpu_advice


@pytest.mark.engine
def test_a_root_cause_in_the_engine_log_is_found(shortage, tiny_model_path):
    too_small, _, _ = shortage
    error = RuntimeError("Engine core initialization failed. See root cause above.")
    config = engine_config(tiny_model_path)
    assert oom_advice(error, config) is None
    log = f"ERROR ... EngineCore failed to start.\nValueError: {too_small}\n"
    advice = oom_advice(error, config, log_text=log, on_cpu=True)
    assert advice is not None and "the KV cache cannot hold one request" in advice


@pytest.mark.parametrize(
    "error",
    [
        ValueError("expected a PIL image"),
        RuntimeError("CPU Generator does not use offset"),
        OSError(2, "No such file or directory"),
        KeyError("max_model_len"),
        "the engine rejected the prompt: longer than the maximum model length",
    ],
)
def test_other_failures_give_none(error, tiny_model_path):
    assert oom_advice(error, engine_config(tiny_model_path)) is None


def test_the_default_context_length_is_the_plugins():
    config = VLMConfig(model="qwen2.5-vl")  # no max_model_len: the plugin's 32768
    advice = oom_advice(torch.OutOfMemoryError("CUDA out of memory"), config, on_cpu=False)
    assert advice is not None and "--max-model-len 16384" in advice
