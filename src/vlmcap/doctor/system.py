"""The machine: CPU cores, free RAM, free disk where outputs go, GPUs, driver and CUDA.

GPUs are read through NVML (``pynvml``, from nvidia-ml-py). Where it is missing or NVML does not
initialise (no driver, no GPU) the report says so and why; it never makes up figures.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from vlmcap.doctor.checks import Check, fail, ok, warn
from vlmcap.doctor.versions import IMPORT_ERRORS
from vlmcap.doctor.vllm_platform import PlatformInfo
from vlmcap.options.vlm import GPU_MEMORY_UTILIZATION

logger = logging.getLogger(__name__)

GIB = 1024**3
#: Below this much available RAM a run is likely to fail: vLLM's engine core and worker took
#: about 3 GB together even with the tiny model.
MIN_FREE_RAM_GIB = 4.0
#: Below this much free disk where outputs go, a run may stop half-way.
MIN_FREE_DISK_GIB = 1.0
#: Free share a suggested --gpu-memory-utilization stays below (other processes may grow), and
#: the least one worth suggesting.
UTILIZATION_MARGIN = 0.05
MIN_SUGGESTED_UTILIZATION = 0.05
#: NVML gives CUDA versions as 1000 * major + 10 * minor.
CUDA_MAJOR_UNIT = 1000
CUDA_MINOR_UNIT = 10
#: How to get the GPU build of vLLM into a fresh venv.
GPU_SETUP_FIX = (
    "set up a GPU environment: `VLMCAP_BACKEND=gpu bash scripts/setup.sh` in a fresh checkout "
    "or venv"
)
DRIVER_FIX = "install or load the NVIDIA driver (`nvidia-smi` must list the GPUs)"


def gib(n_bytes: float) -> str:
    return f"{n_bytes / GIB:.1f} GiB"


# ---- CPU, RAM, disk -------------------------------------------------------------------------


def cpu_check() -> Check:
    logical = psutil.cpu_count(logical=True)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else logical
    return ok("CPU", f"{usable} usable of {logical} logical cores")


def ram_check() -> Check:
    memory = psutil.virtual_memory()
    detail = f"{gib(memory.available)} available of {gib(memory.total)}"
    if memory.available < MIN_FREE_RAM_GIB * GIB:
        return warn(
            "RAM",
            f"{detail}; vLLM's engine needs about {MIN_FREE_RAM_GIB:.0f} GiB even for a tiny model",
            "close other programs, and stop vLLM processes left behind "
            "(`ps -eo pid,cmd | grep VLLM`, then `kill PID`)",
        )
    return ok("RAM", detail)


def existing_ancestor(path: Path) -> Path:
    """``path`` or its nearest parent that exists (the folder may not be created yet)."""
    path = path.expanduser().absolute()
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(path.anchor or "/")


def disk_check(output_dir: Path) -> Check:
    name = "disk"
    where = existing_ancestor(output_dir)
    shown = str(output_dir.expanduser().absolute())
    if where != output_dir.expanduser().absolute():
        shown += f" (not created yet; measured at {where})"
    if not where.is_dir():
        return fail(name, f"{where} is not a folder", "pass a folder as --output-dir")
    if not os.access(where, os.W_OK | os.X_OK):
        return fail(
            name,
            f"{where} is not writable by this user",
            "pick a writable --output-dir, or fix the folder's permissions",
        )
    usage = shutil.disk_usage(where)
    detail = f"{gib(usage.free)} free of {gib(usage.total)} at {shown}"
    if usage.free < MIN_FREE_DISK_GIB * GIB:
        return warn(
            name,
            detail,
            "free some space there, or pick another --output-dir "
            f"(at least {MIN_FREE_DISK_GIB:.0f} GiB free)",
        )
    return ok(name, detail)


# ---- GPUs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    total_bytes: int
    free_bytes: int


@dataclass(frozen=True)
class GpuScan:
    """What NVML said: the GPUs, the driver and the CUDA version it supports; or why nothing."""

    gpus: list[Gpu] = field(default_factory=list)
    driver: str | None = None
    cuda: str | None = None
    error: str | None = None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def cuda_version_text(value: int) -> str:
    """NVML's integer CUDA version (12040) as text (``12.4``)."""
    return f"{value // CUDA_MAJOR_UNIT}.{(value % CUDA_MAJOR_UNIT) // CUDA_MINOR_UNIT}"


def scan_gpus() -> GpuScan:
    """The GPUs NVML sees (NVML initialised and shut down here)."""
    try:
        import pynvml
    except ImportError:
        return GpuScan(error="nvidia-ml-py (module pynvml) is not installed")
    nvml_error: type[Exception] = pynvml.NVMLError
    try:
        pynvml.nvmlInit()
    except nvml_error as exc:
        return GpuScan(error=f"NVML did not initialise: {exc}")
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        cuda = cuda_version_text(int(pynvml.nvmlSystemGetCudaDriverVersion()))
        gpus = []
        for index in range(int(pynvml.nvmlDeviceGetCount())):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            name = _text(pynvml.nvmlDeviceGetName(handle))
            gpus.append(Gpu(index, name, int(memory.total), int(memory.free)))
    except nvml_error as exc:
        return GpuScan(error=f"NVML query failed: {exc}")
    finally:
        with contextlib.suppress(nvml_error):
            pynvml.nvmlShutdown()
    return GpuScan(gpus, driver, cuda)


def torch_cuda_build() -> str | None:
    """The CUDA version torch was built for (None: a CPU build, or torch does not load)."""
    try:
        import torch
    except IMPORT_ERRORS:
        return None
    cuda = getattr(torch.version, "cuda", None)
    return str(cuda) if cuda else None


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def gpus_check(scan: GpuScan, platform: PlatformInfo) -> Check:
    name = "GPUs"
    if not scan.gpus:
        reason = scan.error or "NVML lists no GPU"
        if platform.is_cpu:
            return ok(name, f"none ({reason}); vLLM runs on the CPU")
        if platform.is_gpu:
            return fail(
                name,
                f"none ({reason}), but vLLM's platform is {platform.device_type}",
                f"{DRIVER_FIX}; on a machine without GPU install the CPU build "
                "(`bash scripts/setup.sh` in a fresh venv)",
            )
        return warn(
            name,
            f"none ({reason}); vLLM did not say which platform it uses",
            f"on a GPU machine: {DRIVER_FIX}; on a CPU machine fix vLLM's install first",
        )
    names = ", ".join(f"{g.index}: {g.name}" for g in scan.gpus)
    detail = f"{len(scan.gpus)} ({names})"
    if platform.is_cpu:
        return warn(
            name,
            f"{detail}, but vLLM's platform is cpu (the CPU build is installed)",
            GPU_SETUP_FIX,
        )
    return ok(name, detail)


def driver_check(scan: GpuScan, torch_cuda: str | None) -> Check | None:
    """The driver and the CUDA version it supports, against torch's build (None: no NVML)."""
    if scan.driver is None or scan.cuda is None:
        return None
    name = "NVIDIA driver"
    detail = f"{scan.driver}, supports CUDA up to {scan.cuda}"
    if torch_cuda is None:
        return ok(name, f"{detail}; torch is a CPU build")
    detail += f"; torch is built for CUDA {torch_cuda}"
    if _version_tuple(torch_cuda)[:2] > _version_tuple(scan.cuda)[:2]:
        return fail(
            name,
            detail,
            f"update the NVIDIA driver to one for CUDA {torch_cuda}, or install a torch and vLLM "
            f"built for CUDA {scan.cuda} or older",
        )
    return ok(name, detail)


def gpu_memory_checks(scan: GpuScan) -> list[Check]:
    """Free memory of each GPU against the share vLLM reserves by default."""
    checks = []
    for gpu in scan.gpus:
        name = f"GPU {gpu.index} memory"
        share = gpu.free_bytes / gpu.total_bytes if gpu.total_bytes else 0.0
        detail = f"{gib(gpu.free_bytes)} free of {gib(gpu.total_bytes)} ({share:.0%})"
        if share < GPU_MEMORY_UTILIZATION:
            suggested = max(share - UTILIZATION_MARGIN, MIN_SUGGESTED_UTILIZATION)
            checks.append(
                warn(
                    name,
                    f"{detail}; vLLM reserves {GPU_MEMORY_UTILIZATION:.0%} by default",
                    "stop the processes holding it (`nvidia-smi` lists them), or pass "
                    f"--gpu-memory-utilization {suggested:.2f} or lower",
                )
            )
        else:
            checks.append(ok(name, detail))
    return checks


def system_checks(output_dir: Path, platform: PlatformInfo) -> list[Check]:
    """CPU, RAM, disk, then GPUs, driver and GPU memory."""
    checks = [cpu_check(), ram_check(), disk_check(output_dir)]
    scan = scan_gpus()
    checks.append(gpus_check(scan, platform))
    driver = driver_check(scan, torch_cuda_build())
    if driver is not None:
        checks.append(driver)
    checks.extend(gpu_memory_checks(scan))
    return checks
