"""Processes named by pid *and* creation time, found as descendants, stopped TERM-then-KILL.

A pid alone is not an identity: once a process is gone the kernel hands its number to the next
process started, which may belong to anybody. A recorded process is only looked up again through
``ProcessId.live``, which checks that the pid still carries the creation time recorded, and only
signalled through the psutil object made then (psutil refuses to signal a reused pid), so a
reused pid is never signalled. ``stop`` freezes a tree (SIGSTOP) before it signals it, so a
process being started meanwhile cannot slip out. Used by the child guard's watcher
(``watcher.py``) and by the test suite's check that no vLLM process is left behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
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


#: In the title of vLLM's engine-core process (``VLLM::EngineCore``) as ``ps`` shows it.
ENGINE_CORE_MARK = "EngineCore"


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


def engine_cores(root: psutil.Process) -> list[psutil.Process]:
    """vLLM's engine-core processes below ``root`` now (their title holds ``ENGINE_CORE_MARK``)."""
    return [proc for proc in descendants(root) if ENGINE_CORE_MARK in command_line(proc)]


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


class ChildScanner:
    """Pids of a process's children, cheap enough to ask ten times a second on any kernel.

    Where the kernel lists them (``/proc/PID/task/*/children``), those files are read. Where it
    does not (a kernel built without ``CONFIG_PROC_CHILDREN``), ``/proc`` is listed and only the
    pids not seen before have their ``stat`` read, once, for their parent: a new child of the
    watched process is always a new pid, so this finds it at the next look.
    """

    def __init__(self) -> None:
        self._parents: dict[int, int] = {}  # pid -> parent pid, as read when the pid was new

    def children(self, pid: int) -> list[int]:
        listed = direct_children(pid)
        if listed is not None:
            return listed
        try:
            current = {int(name) for name in os.listdir("/proc") if name.isdigit()}
        except OSError:
            return []
        for gone in self._parents.keys() - current:
            del self._parents[gone]
        for new in current - self._parents.keys():
            parent = _parent_of(new)
            if parent is not None:
                self._parents[new] = parent
        return [child for child, parent in self._parents.items() if parent == pid]


def _parent_of(pid: int) -> int | None:
    """The parent pid in ``/proc/PID/stat`` (None when the process is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as file:
            text = file.read()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()  # after "pid (name) ": state, ppid, ...
    return int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None


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


def _signal_all(procs: Iterable[psutil.Process], sig: int) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(sig)


def freeze(procs: Iterable[psutil.Process]) -> list[psutil.Process]:
    """SIGSTOP ``procs`` and everything below them, until no new process appears: a stopped
    process cannot start another, so the list returned is the whole tree (all stopped)."""
    found = {p.pid: p for p in procs if alive(p)}
    fresh = list(found.values())
    while fresh:
        _signal_all(fresh, signal.SIGSTOP)
        fresh = []
        for proc in list(found.values()):
            for child in descendants(proc):
                if child.pid not in found and alive(child):
                    found[child.pid] = child
                    fresh.append(child)
    return list(found.values())


def stop(
    procs: Iterable[psutil.Process], grace_s: float, kill_wait_s: float = KILL_WAIT_S
) -> list[psutil.Process]:
    """Stop ``procs`` and whatever they started: SIGTERM, then SIGKILL after ``grace_s``.

    The trees are frozen first (``freeze``), so no process started in the meantime escapes,
    then all get SIGTERM at once (as a terminal's Ctrl-C reaches a whole process group), which
    vLLM's processes answer by shutting down. multiprocessing's resource trackers are left to end
    by themselves once their clients are gone (they ignore SIGTERM, and they remove the shared
    memory their clients leaked), and are killed only if they outlive the grace too. ``procs``
    must come from psutil objects made while the processes were known to be the right ones:
    psutil refuses to signal a pid reused since. Returns the processes that survived even
    SIGKILL (normally none).
    """
    tree = freeze(procs)
    trackers = [p for p in tree if is_resource_tracker(p)]
    others = [p for p in tree if p not in trackers]
    _signal_all(others, signal.SIGTERM)
    _signal_all(tree, signal.SIGCONT)
    left = wait_gone(others, grace_s)
    if left:
        left = freeze(left)  # with anything they started while stopping
        logger.warning(
            "still running %.0f s after SIGTERM, killing: %s",
            grace_s,
            ", ".join(describe(p) for p in left),
        )
        _signal_all(left, signal.SIGKILL)
    survivors = wait_gone(left, kill_wait_s)
    stuck = wait_gone(trackers, grace_s)
    _signal_all(stuck, signal.SIGKILL)
    return survivors + wait_gone(stuck, kill_wait_s)


def is_resource_tracker(proc: psutil.Process) -> bool:
    """True for multiprocessing's resource tracker, which exits by itself after its clients."""
    return "multiprocessing.resource_tracker" in command_line(proc)
