"""A guarded parent with a process tree shaped like ``vlmcap serve``'s, without vLLM.

``python tree.py METHOD GUARD END``: the parent starts a child with multiprocessing (``METHOD``:
spawn or fork), like the API server or an engine core; the child starts two grandchildren, a
``sleep`` program and a forked Python process, like an engine core's workers. ``GUARD`` is
``guard`` (``guard_children()`` first), ``dismiss`` (a guard dismissed once the tree is up) or
``none``. ``END`` is ``wait`` (sleep until killed), ``exit`` (exit, leaving the tree running,
once a line arrives on stdin) or ``suicide`` (SIGKILL itself right after starting the child,
before any recording of the watcher could have seen it). The parent prints ``ready`` once the
tree is complete, ``child PID`` in the ``suicide`` case. ``$TREE_SLEEP_S`` (default ``LONG_S``)
is how long the sleepers sleep: a test can pick a value that marks its own ``sleep``.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time

import psutil

from vlmcap.runtime import guard_children

#: Seconds the processes of the tree sleep: far longer than any test.
LONG_S = int(os.environ.get("TREE_SLEEP_S", "3600"))
#: Processes under the child: the ``sleep`` program and the forked grandchild.
GRANDCHILDREN = 2
POLL_S = 0.05


def _sleep() -> None:
    time.sleep(LONG_S)


def _child() -> None:
    subprocess.Popen(["sleep", str(LONG_S)])
    mp.get_context("fork").Process(target=_sleep).start()
    time.sleep(LONG_S)


def main() -> None:
    method, guard_mode, end = sys.argv[1:4]
    guard = guard_children() if guard_mode in ("guard", "dismiss") else None
    if guard_mode != "none":
        assert guard is not None and guard.active
    child = mp.get_context(method).Process(target=_child)
    child.start()
    assert child.pid is not None
    if end == "suicide":
        print(f"child {child.pid}", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    while len(psutil.Process(child.pid).children()) < GRANDCHILDREN:
        time.sleep(POLL_S)
    if guard is not None and guard_mode == "dismiss":
        guard.stop()
    print("ready", flush=True)
    if end == "wait":
        time.sleep(LONG_S)
    else:
        sys.stdin.readline()
        os._exit(0)  # no multiprocessing clean-up: the tree is left running


if __name__ == "__main__":
    main()
