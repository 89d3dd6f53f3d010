"""One memory checkpoint: this process, vLLM's engine processes, the system's RAM, each GPU.

vLLM runs its engine core and workers in other processes, so their memory is read from
outside (psutil for RSS, NVML's per-process figures for GPU memory):
``torch.cuda.memory_allocated()`` in this process counts only this process's own PyTorch
allocations and says nothing about the engine's.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import psutil

from vlmcap.monitor.gpu import per_gpu
from vlmcap.monitor.process import engine_processes
from vlmcap.monitor.snapshot import ProcessMemory

logger = logging.getLogger(__name__)

GIB = 1024**3


@dataclass(frozen=True)
class GpuProcessMemory:
    """GPU memory one of this job's processes holds (``None``: NVML does not say here)."""

    pid: int
    used_bytes: int | None


@dataclass(frozen=True)
class GpuMemory:
    """One GPU: memory used and total, and what this job's processes hold on it.

    ``job_bytes`` is ``None`` when NVML gives no per-process figures (some containers, some
    drivers); ``notes`` then says why.
    """

    index: int
    name: str | None
    used_bytes: int | None
    total_bytes: int | None
    job_bytes: int | None
    processes: list[GpuProcessMemory] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Checkpoint:
    """Memory at one moment of the job; a figure that could not be read is ``None`` with a
    note. ``engine_rss_bytes`` is the sum over ``engine_processes`` (``None`` when vLLM runs in
    another process tree, a server)."""

    label: str
    wall_time: float  # seconds since the epoch
    elapsed_s: float  # since the report was made
    items_done: int
    process_rss_bytes: int | None
    engine_rss_bytes: int | None
    engine_processes: list[ProcessMemory]
    ram_used_bytes: int | None
    ram_available_bytes: int | None
    ram_total_bytes: int | None
    gpus: list[GpuMemory]
    notes: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        """One line: this process, the engine, RAM and GPUs."""
        engine = (
            "n/a (another process tree)"
            if self.engine_rss_bytes is None
            else f"{gib(self.engine_rss_bytes)} GiB ({len(self.engine_processes)} processes)"
        )
        parts = [
            f"this process {gib(self.process_rss_bytes)} GiB",
            f"engine {engine}",
            f"RAM {gib(self.ram_used_bytes)} GiB used, {gib(self.ram_available_bytes)} GiB "
            f"available of {gib(self.ram_total_bytes)} GiB",
        ]
        for gpu in self.gpus:
            job = "" if gpu.job_bytes is None else f" (this job {gib(gpu.job_bytes)} GiB)"
            parts.append(f"GPU{gpu.index} {gib(gpu.used_bytes)}/{gib(gpu.total_bytes)} GiB{job}")
        return "; ".join(parts)


def gpu_memory(pids: set[int]) -> tuple[list[GpuMemory], str | None]:
    """Each GPU's memory and what the processes ``pids`` hold on it, through NVML.

    ``([], why)`` without NVML or GPUs, as ``vlmcap.monitor.gpu.gpu_stats``.
    """
    return per_gpu(lambda nvml, nvml_error, index: _gpu(nvml, nvml_error, index, pids))


def _gpu(nvml: Any, nvml_error: type[BaseException], index: int, pids: set[int]) -> GpuMemory:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    notes: dict[str, str] = {}
    name = memory = running = None
    try:
        name = nvml.nvmlDeviceGetName(handle)
    except nvml_error as exc:
        notes["name"] = f"NVML: {exc}"
    try:
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
    except nvml_error as exc:
        notes["used_bytes"] = notes["total_bytes"] = f"NVML: {exc}"
    try:
        running = nvml.nvmlDeviceGetComputeRunningProcesses(handle)
    except nvml_error as exc:
        notes["job_bytes"] = f"NVML gives no per-process figures: {exc}"
    mine = [
        GpuProcessMemory(int(p.pid), None if p.usedGpuMemory is None else int(p.usedGpuMemory))
        for p in running or []
        if int(p.pid) in pids
    ]
    job_bytes: int | None = None
    if running is not None:
        if any(p.used_bytes is None for p in mine):
            notes["job_bytes"] = "NVML does not give per-process memory on this system"
        else:
            job_bytes = sum(p.used_bytes or 0 for p in mine)
            if not mine and running:
                notes["job_bytes"] = (
                    "none of this job's processes is listed (inside a container NVML may "
                    "list the host's process ids)"
                )
    return GpuMemory(
        index=index,
        name=name.decode() if isinstance(name, bytes) else name,
        used_bytes=None if memory is None else int(memory.used),
        total_bytes=None if memory is None else int(memory.total),
        job_bytes=job_bytes,
        processes=mine,
        notes=notes,
    )


def read_checkpoint(
    label: str, items_done: int, *, engine_children: bool = True, elapsed_s: float = 0.0
) -> Checkpoint:
    """Memory now (see the module docstring); a failed reading is ``None`` with a note."""
    notes: dict[str, str] = {}
    me = psutil.Process()
    rss: int | None = None
    try:
        rss = int(me.memory_info().rss)
    except psutil.Error as exc:
        notes["process_rss_bytes"] = f"psutil failed: {exc}"
    ram_used = ram_available = ram_total = None
    try:
        ram = psutil.virtual_memory()
        ram_total, ram_available = int(ram.total), int(ram.available)
        ram_used = ram_total - ram_available  # what other programs cannot have
    except (psutil.Error, OSError) as exc:
        notes["ram"] = f"psutil failed: {exc}"
    engine: list[ProcessMemory] = []
    engine_rss: int | None = None
    if engine_children:
        engine = engine_processes(me)
        engine_rss = sum(p.rss_bytes for p in engine)
    else:
        notes["engine_rss_bytes"] = "vLLM runs in another process tree (a server)"
    gpus, why = gpu_memory({me.pid, *(p.pid for p in engine)})
    if why is not None:
        notes["gpus"] = why
    return Checkpoint(
        label=label,
        wall_time=time.time(),
        elapsed_s=elapsed_s,
        items_done=items_done,
        process_rss_bytes=rss,
        engine_rss_bytes=engine_rss,
        engine_processes=engine,
        ram_used_bytes=ram_used,
        ram_available_bytes=ram_available,
        ram_total_bytes=ram_total,
        gpus=gpus,
        notes=notes,
    )


def gib(value: int | None) -> str:
    """Bytes as GiB with two decimals; ``n/a`` for a figure not read."""
    return "n/a" if value is None else f"{value / GIB:.2f}"
