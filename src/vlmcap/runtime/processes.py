"""Processes named by pid *and* creation time, found as descendants, stopped TERM-then-KILL.

A pid alone is not an identity: once a process is gone the kernel hands its number to the next
process started, which may belong to anybody. Everything that signals a process here first checks
that the pid still carries the creation time recorded when it was found, so a reused pid is never
signalled. Used by the child guard's watcher (``watcher.py``) and by the test suite's check that no
vLLM process is left behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass

import psutil

logger = logging.getLogger(__name__)

#: Seconds between two looks at processes that were asked to exit.
EXIT_POLL_S = 0.05
#: Seconds to wait for processes to disappear after SIGKILL (the kernel needs a moment).
KILL_WAIT_S = 5.0
#: Command-line marks of vLLM's own processes: the titles vLLM gives its engine core, workers and
#: API server processes (``VLLM::EngineCore``...), and its server entry points.
VLLM_MARKS = ("VLLM::", "vllm.entrypoints")
#: Whether this kernel lists a thread's children in ``/proc/PID/task/TID/children``.
_CHILDREN_FILES = os.path.exists(f"/proc/self/task/{os.getpid()}/children")


@dataclass(frozen=True)
class ProcessId:
    """One process for as long as it lives: its pid and its creation time."""

    pid: int
    create_time: float

    @classmethod
    def of(cls, proc: psutil.Process) -> ProcessId:
        """Raises ``psutil.Error`` when ``proc`` is already gone."""
        return cls(proc.pid, proc.create_time())

    def live(self) -> psutil.Process | None:
        """The process, if it still runs (not a zombie) and the pid was not reused."""
        try:
            proc = psutil.Process(self.pid)
            if proc.create_time() != self.create_time:
                return None
        except psutil.Error:
            return None
        return proc if alive(proc) else None


def alive(proc: psutil.Process) -> bool:
    """True while ``proc`` runs: a zombie has exited and holds nothing but its pid."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def descendants(proc: psutil.Process) -> list[psutil.Process]:
    """Children, grandchildren... of ``proc`` now; empty when it is gone."""
    try:
        return proc.children(recursive=True)
    except psutil.Error:
        return []


def direct_children(pid: int) -> list[int] | None:
    """Pids of ``pid``'s children from ``/proc/PID/task/*/children``: a few small reads instead
    of psutil's scan of every process, cheap enough to repeat often. None where the kernel does
    not offer these files (then only ``descendants`` can tell)."""
    if not _CHILDREN_FILES:
        return None
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    pids: list[int] = []
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as file:
                pids.extend(int(word) for word in file.read().split())
        except (OSError, ValueError):
            continue  # the thread ended meanwhile
    return pids


def command_line(proc: psutil.Process) -> str:
    """What ``ps`` shows for ``proc`` (its name when the command line cannot be read)."""
    try:
        return " ".join(proc.cmdline()).strip() or proc.name()
    except psutil.Error:
        return "?"


def describe(proc: psutil.Process) -> str:
    """``pid 123 (VLLM::EngineCore)``, for logs and test failures."""
    return f"pid {proc.pid} ({command_line(proc)[:120]})"


def is_vllm(proc: psutil.Process) -> bool:
    """True for vLLM's engine core, workers and API server processes."""
    text = command_line(proc)
    return any(mark in text for mark in VLLM_MARKS)


def wait_gone(procs: Iterable[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    """Wait up to ``timeout_s`` for ``procs`` to exit; those still alive afterwards."""
    left = [p for p in procs if alive(p)]
    deadline = time.monotonic() + timeout_s
    while left and time.monotonic() < deadline:
        time.sleep(EXIT_POLL_S)
        left = [p for p in left if alive(p)]
    return left


def stop(
    procs: Iterable[psutil.Process], grace_s: float, kill_wait_s: float = KILL_WAIT_S
) -> list[psutil.Process]:
    """SIGTERM every process of ``procs``, SIGKILL those still alive after ``grace_s``.

    All get SIGTERM at once (as a terminal's Ctrl-C reaches a whole process group), which vLLM's
    processes answer by shutting down. ``procs`` must come from psutil objects made while the
    processes were known to be the right ones: psutil refuses to signal a pid that was reused since.
    Returns the processes that survived even SIGKILL (normally none).
    """
    targets = [p for p in procs if alive(p)]
    for proc in targets:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    left = wait_gone(targets, grace_s)
    for proc in left:
        logger.warning("%s still running %.0f s after SIGTERM: killing it", describe(proc), grace_s)
        with contextlib.suppress(psutil.Error):
            proc.kill()
    return wait_gone(left, kill_wait_s)


def is_resource_tracker(proc: psutil.Process) -> bool:
    """True for multiprocessing's resource tracker, which exits by itself after its clients."""
    return "multiprocessing.resource_tracker" in command_line(proc)
