"""This machine and this process through psutil: RAM, RSS, vLLM's engine processes, threads.

vLLM's engine processes are this process's descendants that vLLM named (``VLLM::EngineCore``,
``VLLM::Worker``...) or that run its server entry points, reached through vLLM processes only:
a ``vlmcap serve`` child (not itself vLLM) and what it started are another job's.
"""

from __future__ import annotations

import asyncio
import logging
import threading

import psutil

from vlmcap.monitor.snapshot import ProcessMemory, Readings
from vlmcap.runtime.processes import command_line, is_vllm

logger = logging.getLogger(__name__)

#: Command-line marks of vLLM's engine processes beyond ``vlmcap.runtime.processes``' own.
ENGINE_MARKS = ("EngineCore",)
PROCESS_FIELDS = (
    "ram_used_bytes",
    "ram_total_bytes",
    "process_rss_bytes",
    "engine_processes",
    "threads",
    "python_threads",
    "asyncio_tasks",
)


def is_engine_process(proc: psutil.Process) -> bool:
    """True for a vLLM process (engine core, worker, API server)."""
    return is_vllm(proc) or any(mark in command_line(proc) for mark in ENGINE_MARKS)


def engine_processes(root: psutil.Process | None = None) -> list[ProcessMemory]:
    """RSS of ``root``'s (this process's) vLLM descendants (see the module docstring)."""
    root = root if root is not None else psutil.Process()
    found: list[ProcessMemory] = []
    todo = _children(root)
    while todo:
        proc = todo.pop()
        try:
            if not is_engine_process(proc):
                continue
            found.append(ProcessMemory(proc.pid, _title(proc), proc.memory_info().rss))
        except psutil.Error:
            continue  # gone meanwhile
        todo.extend(_children(proc))
    return sorted(found, key=lambda p: p.pid)


def pending_tasks(loop: asyncio.AbstractEventLoop) -> int:
    """Tasks of ``loop`` not done yet (safe to call from another thread)."""
    return sum(1 for task in asyncio.all_tasks(loop) if not task.done())


def process_readings(
    loop: asyncio.AbstractEventLoop | None = None, *, engine_children: bool = True
) -> Readings:
    """RAM used/total, RSS, vLLM processes (when ``engine_children``), threads, asyncio tasks.

    RAM used is total minus available (what other programs cannot have), not psutil's ``used``.
    """
    readings = Readings()
    try:
        memory = psutil.virtual_memory()
        readings.put("ram_used_bytes", int(memory.total - memory.available), "")
        readings.put("ram_total_bytes", int(memory.total), "")
    except (psutil.Error, OSError) as exc:
        readings.absent(("ram_used_bytes", "ram_total_bytes"), f"psutil failed: {exc}")
    me = psutil.Process()
    try:
        with me.oneshot():
            readings.put("process_rss_bytes", int(me.memory_info().rss), "")
            readings.put("threads", int(me.num_threads()), "")
    except psutil.Error as exc:
        readings.absent(("process_rss_bytes", "threads"), f"psutil failed: {exc}")
    readings.put("python_threads", threading.active_count(), "")
    if engine_children:
        readings.put("engine_processes", engine_processes(me), "")
    else:
        readings.put("engine_processes", None, "vLLM runs in another process tree (a server)")
    if loop is None:
        readings.put("asyncio_tasks", None, "no asyncio loop attached")
    elif loop.is_closed():
        readings.put("asyncio_tasks", None, "the attached asyncio loop is closed")
    else:
        try:
            readings.put("asyncio_tasks", pending_tasks(loop), "")
        except RuntimeError as exc:  # the loop's task set changed size while being read
            readings.put("asyncio_tasks", None, f"could not count tasks: {exc}")
    return readings


def _children(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return proc.children()
    except psutil.Error:
        return []


def _title(proc: psutil.Process) -> str:
    text = command_line(proc)
    return text.split(" ", 1)[0] if text.startswith("VLLM::") else text[:80]
