"""The child guard against real processes (no vLLM: ``tree.py`` builds a tree of sleepers).

The tree is shaped like ``vlmcap serve``'s: the guarded parent's child is a multiprocessing
process (the API server, an engine core), whose own children (workers) are grandchildren of the
parent, out of reach of ``PR_SET_PDEATHSIG``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.runtime.procs import kill_all, snapshot, survivors, wait_for
from vlmcap.runtime import processes
from vlmcap.runtime.watcher import CHILDREN_POLL_S

TREE = Path(__file__).with_name("tree.py")
#: Seconds for the tree to come up (interpreter starts on a busy 2-core machine).
START_TIMEOUT_S = 60.0
#: Seconds within which a killed parent's tree must be gone.
GONE_WITHIN_S = 10.0
#: Seconds a tree that nobody stops is watched to make sure it stays.
STAYS_S = 1.5
#: Processes in a complete tree, the guard's watcher aside: child, ``sleep``, forked grandchild.
TREE_SIZE = 3
#: Base of the sleep time that marks the ``sleep`` of the fork-then-SIGKILL test.
SUICIDE_SLEEP_S = 7000
STRAY_POLL_S = 0.1
#: A program the guarded process starts by fork+exec (multiprocessing's spawn) is seen by the
#: watcher's next look at its children, within ``CHILDREN_POLL_S``: the escape window its
#: docstring names. On a fast machine this tree is up and "ready" inside that window, so the
#: kill waits two looks (an engine start takes seconds, far longer).
WATCHER_LOOKS_S = 2 * CHILDREN_POLL_S


def start_tree(method: str, guard: str, end: str = "wait") -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, str(TREE), method, guard, end],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],  # the repository root: ``tests`` is importable
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "ready", proc.stderr.read() if proc.stderr else ""
    return proc


def tree_of(parent: subprocess.Popen[str]) -> dict[int, psutil.Process]:
    recorded: dict[int, psutil.Process] = {}
    snapshot(psutil.Process(parent.pid), recorded)
    return recorded


def watchers(procs: dict[int, psutil.Process]) -> list[psutil.Process]:
    return [p for p in procs.values() if "vlmcap.runtime.watcher" in processes.command_line(p)]


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_sigkill_of_the_parent_stops_the_whole_tree(method: str) -> None:
    bystander = subprocess.Popen(["sleep", "3600"])  # not a descendant: must survive
    recorded: dict[int, psutil.Process] = {}
    parent = None
    try:
        parent = start_tree(method, "guard")
        recorded = tree_of(parent)
        others = [p for p in recorded.values() if not processes.is_resource_tracker(p)]
        assert len(others) == TREE_SIZE + 1, [processes.describe(p) for p in others]
        assert len(watchers(recorded)) == 1
        time.sleep(WATCHER_LOOKS_S)
        os.kill(parent.pid, signal.SIGKILL)
        start = time.monotonic()
        left = survivors(recorded, GONE_WITHIN_S)
        took = time.monotonic() - start
        _, err = parent.communicate(timeout=GONE_WITHIN_S if not left else 1)
        assert not left, ([processes.describe(p) for p in left], err)
        assert "ended without stopping" in err, err
        assert bystander.poll() is None, "the guard stopped a process that is not a descendant"
        print(f"tree of {len(recorded)} processes gone {took:.2f} s after the SIGKILL")
    finally:
        if parent is not None and parent.poll() is None:
            parent.kill()
        kill_all(recorded)
        bystander.kill()
        bystander.wait()


def test_a_child_forked_just_before_a_sigkill_is_stopped_too() -> None:
    """The fork reports itself to the watcher at once, and the watcher freezes the tree before
    it signals it: neither the child nor what it was starting meanwhile slips through."""
    sleep_s = str(SUICIDE_SLEEP_S + os.getpid() % 1000)  # marks this test's ``sleep``
    parent = subprocess.Popen(
        [sys.executable, str(TREE), "fork", "guard", "suicide"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
        env={**os.environ, "TREE_SLEEP_S": sleep_s},
    )

    def strays() -> list[psutil.Process]:
        found = []
        for proc in psutil.process_iter():
            line = processes.command_line(proc)
            if (line == f"sleep {sleep_s}" or "guard suicide" in line) and processes.alive(proc):
                found.append(proc)
        return [p for p in found if p.pid != parent.pid]

    try:
        assert parent.stdout is not None
        word, _ = parent.stdout.readline().split()
        assert word == "child"
        assert parent.wait(START_TIMEOUT_S) == -signal.SIGKILL
        deadline = time.monotonic() + GONE_WITHIN_S
        while strays() and time.monotonic() < deadline:
            time.sleep(STRAY_POLL_S)
        assert not strays(), [processes.describe(p) for p in strays()]
    finally:
        if parent.poll() is None:
            parent.kill()
        kill_all({p.pid: p for p in strays()})


def test_without_a_guard_the_tree_outlives_a_sigkill() -> None:
    """The problem the guard solves, shown: grandchildren are re-parented and keep running."""
    recorded: dict[int, psutil.Process] = {}
    parent = None
    try:
        parent = start_tree("spawn", "none")
        recorded = tree_of(parent)
        assert not watchers(recorded)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        time.sleep(STAYS_S)
        left = [p for p in recorded.values() if not processes.is_resource_tracker(p)]
        assert all(processes.alive(p) for p in left), [processes.describe(p) for p in left]
    finally:
        if parent is not None and parent.poll() is None:
            parent.kill()
        kill_all(recorded)


def test_a_dismissed_guard_exits_and_stops_nothing() -> None:
    recorded: dict[int, psutil.Process] = {}
    parent = None
    try:
        parent = start_tree("spawn", "dismiss")
        recorded = tree_of(parent)
        assert not watchers(recorded), "the dismissed watcher is still running"
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        time.sleep(STAYS_S)
        left = [p for p in recorded.values() if not processes.is_resource_tracker(p)]
        assert len(left) == TREE_SIZE and all(processes.alive(p) for p in left)
    finally:
        if parent is not None and parent.poll() is None:
            parent.kill()
        kill_all(recorded)


def test_a_parent_that_exits_without_cleaning_up_leaves_nothing() -> None:
    recorded: dict[int, psutil.Process] = {}
    parent = None
    try:
        parent = start_tree("spawn", "guard", end="exit")
        recorded = tree_of(parent)
        time.sleep(WATCHER_LOOKS_S)
        _, err = parent.communicate("exit\n", timeout=GONE_WITHIN_S)
        assert parent.returncode == 0
        assert "ended without stopping" in err, err
        assert not survivors(recorded, GONE_WITHIN_S)
    finally:
        kill_all(recorded)


def test_the_watcher_of_a_clean_process_exits_with_it_silently() -> None:
    code = "from vlmcap.runtime import guard_children; print(guard_children().pid)"
    done = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr
    watcher = int(done.stdout)
    wait_for(lambda: not psutil.pid_exists(watcher) or not _is_watcher(watcher), 5.0, "watcher")
    assert done.stderr == ""


def _is_watcher(pid: int) -> bool:
    try:
        proc = psutil.Process(pid)
        return processes.alive(proc) and "vlmcap.runtime.watcher" in processes.command_line(proc)
    except psutil.Error:
        return False


@pytest.mark.parametrize("children_files", [True, False])
def test_the_child_scanner_sees_a_new_child_with_or_without_proc_children_files(
    children_files: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kernels built without CONFIG_PROC_CHILDREN have no /proc/PID/task/TID/children: the
    scanner then reads the parent of each new pid instead."""
    monkeypatch.setattr(processes, "_CHILDREN_FILES", children_files and processes._CHILDREN_FILES)
    scanner = processes.ChildScanner()
    before = set(scanner.children(os.getpid()))
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert child.pid in set(scanner.children(os.getpid())) - before
    finally:
        child.kill()
        child.wait()
    assert child.pid not in scanner.children(os.getpid())
