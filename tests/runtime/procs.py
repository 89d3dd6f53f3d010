"""Test helpers: watch a process's descendants, and never leave one behind."""

from __future__ import annotations

import contextlib
import time

import psutil

from vlmcap.runtime import processes

POLL_S = 0.1


def snapshot(proc: psutil.Process, into: dict[int, psutil.Process]) -> None:
    """Add ``proc``'s current descendants to ``into`` (pid -> process, identity kept)."""
    for child in processes.descendants(proc):
        into.setdefault(child.pid, child)


def wait_for(condition: object, timeout_s: float, what: str) -> None:
    """Poll ``condition()`` until true; fail with ``what`` after ``timeout_s``."""
    assert callable(condition)
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout_s:.0f} s waiting for {what}"
        time.sleep(POLL_S)


def survivors(procs: dict[int, psutil.Process], timeout_s: float) -> list[psutil.Process]:
    """Those of ``procs`` still running after up to ``timeout_s``."""
    return processes.wait_gone(procs.values(), timeout_s)


def kill_all(procs: dict[int, psutil.Process]) -> None:
    """SIGKILL whatever of ``procs`` still runs (psutil refuses reused pids)."""
    for proc in procs.values():
        if processes.alive(proc):
            with contextlib.suppress(psutil.Error):
                proc.kill()
    processes.wait_gone(procs.values(), processes.KILL_WAIT_S)
