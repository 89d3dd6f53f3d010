"""This machine and this process through psutil: RAM, RSS, vLLM's engine processes, threads.

vLLM's engine processes are this process's descendants that vLLM named (``VLLM::EngineCore``,
``VLLM::Worker``...) or that run its server entry points, reached through vLLM processes only:
a ``vlmcap serve`` child (not itself vLLM) and what it started are another job's.

Finding them walks the process table (psutil reads every process's parent), which costs more
than the rest of a snapshot; the engine processes found are kept and the walk is redone only
when one of them is gone or ``RESCAN_S`` has passed (a walk that found none is not kept).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field

import psutil

from vlmcap.monitor.snapshot import ProcessMemory, Readings
from vlmcap.runtime.processes import ENGINE_CORE_MARK, command_line, is_vllm

logger = logging.getLogger(__name__)

#: Command-line marks of vLLM's engine processes beyond ``vlmcap.runtime.processes``' own.
ENGINE_MARKS = (ENGINE_CORE_MARK,)
#: Seconds an engine-process list found by a walk of the process table is reused.
RESCAN_S = 30.0
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


@dataclass
class _Found:
    """Engine processes below one root, as the last walk found them."""

    at: float
    processes: list[tuple[psutil.Process, str]] = field(default_factory=list)


_found: dict[int, _Found] = {}
_found_lock = threading.Lock()


def _walk(root: psutil.Process) -> list[tuple[psutil.Process, str]]:
    found: list[tuple[psutil.Process, str]] = []
    todo = _children(root)
    while todo:
        proc = todo.pop()
        try:
            if not is_engine_process(proc):
                continue
            found.append((proc, _title(proc)))
        except psutil.Error:
            continue  # gone meanwhile
        todo.extend(_children(proc))
    return found


def engine_processes(root: psutil.Process | None = None) -> list[ProcessMemory]:
    """RSS of ``root``'s (this process's) vLLM descendants (see the module docstring)."""
    root = root if root is not None else psutil.Process()
    now = time.monotonic()
    with _found_lock:
        known = _found.get(root.pid)
        if known is None or now - known.at > RESCAN_S:
            known = _Found(now, _walk(root))
            if known.processes:  # none yet: look again next time (an engine may be starting)
                _found[root.pid] = known
        listed = list(known.processes)
    found: list[ProcessMemory] = []
    for proc, title in listed:
        try:
            found.append(ProcessMemory(proc.pid, title, proc.memory_info().rss))
        except psutil.Error:  # one of them is gone: walk again next time
            with _found_lock:
                _found.pop(root.pid, None)
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
