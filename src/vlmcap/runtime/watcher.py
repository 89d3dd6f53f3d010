"""The child guard's watcher process: ``python -m vlmcap.runtime.watcher --parent PID --fd N``.

It runs beside the guarded process (its child, in a session of its own) and does three things:

1. records the guarded process's descendants (pid + creation time, ``processes.ProcessId``),
   often while they change and less often once they are stable;
2. waits for the guarded process to end: the pipe ``--fd`` reaches end-of-file when the last
   holder of its write end (the guarded process) is gone, and the watcher's parent pid changes
   when the guarded process is gone and the watcher was re-parented; either one is enough;
3. then stops the recorded descendants that still run and are still the same processes (plus
   their own descendants, which only they could have started): SIGTERM, SIGKILL after a grace.

It exits after that, or at once, killing nothing, when the guarded process writes ``DISMISS``
into the pipe. Recorded processes are descendants by construction, and a recorded pid is only
signalled while it still carries the recorded creation time, so nothing else is ever touched.
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import signal
import sys
import time

import psutil

from vlmcap.runtime import processes
from vlmcap.runtime.processes import ProcessId

logger = logging.getLogger(__name__)

#: Written by the guarded process into the pipe to let the watcher go without stopping anything.
DISMISS = b"x"
#: Written by the watcher on its stdout once it has recorded the tree for the first time.
READY = b"ready\n"
#: Seconds between two recordings while the process tree changes, and at most once stable.
POLL_MIN_S = 0.1
POLL_MAX_S = 1.0
#: Seconds between two parent checks once the pipe is closed (the parent is exiting).
EXIT_POLL_S = 0.02
#: Seconds recorded processes get to exit after SIGTERM before they are killed.
TERM_GRACE_S = 5.0


class Watch:
    """What the watcher knows of the guarded process's descendants."""

    def __init__(self, parent: psutil.Process) -> None:
        self.parent = parent
        self.known: dict[int, float] = {}  # pid -> creation time
        self._own_pid = os.getpid()

    def parent_gone(self) -> bool:
        """True once the guarded process has ended (this process was re-parented)."""
        return os.getppid() != self.parent.pid

    def record(self) -> bool:
        """Add the current descendants; forget recorded ones that ended. True if anything
        changed."""
        changed = False
        current = set()
        for proc in processes.descendants(self.parent):
            if proc.pid == self._own_pid:
                continue
            try:
                ident = ProcessId.of(proc)
            except psutil.Error:
                continue
            current.add(ident.pid)
            if self.known.get(ident.pid) != ident.create_time:
                self.known[ident.pid] = ident.create_time
                changed = True
        for pid in [p for p in self.known if p not in current]:
            # no longer in the tree: ended, or orphaned by a descendant that ended (then kept)
            if ProcessId(pid, self.known[pid]).live() is None:
                del self.known[pid]
                changed = True
        return changed

    def leftovers(self) -> list[psutil.Process]:
        """Recorded descendants that still run, and whatever they started since."""
        found: dict[int, psutil.Process] = {}
        for pid, created in self.known.items():
            proc = ProcessId(pid, created).live()
            if proc is None:
                continue
            found.setdefault(proc.pid, proc)
            for sub in processes.descendants(proc):
                found.setdefault(sub.pid, sub)
        found.pop(self._own_pid, None)
        return list(found.values())

    def wait_for_parent(self, fd: int) -> bool:
        """Record until the guarded process ends (False) or dismisses the watcher (True)."""
        interval = POLL_MIN_S
        pipe_open = True
        while True:
            if pipe_open:
                readable, _, _ = select.select([fd], [], [], interval)
                if readable:
                    data = os.read(fd, 64)
                    if DISMISS in data:
                        return True
                    if not data:  # the write end is closed: the guarded process is exiting
                        pipe_open = False
            else:
                time.sleep(EXIT_POLL_S)
            if self.parent_gone():
                return False
            changed = self.record()
            interval = POLL_MIN_S if changed else min(POLL_MAX_S, interval * 2)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m vlmcap.runtime.watcher", description=__doc__)
    parser.add_argument("--parent", type=int, required=True, help="pid of the guarded process")
    parser.add_argument("--fd", type=int, required=True, help="read end of the guard's pipe")
    parser.add_argument("--grace", type=float, default=TERM_GRACE_S, help="seconds after SIGTERM")
    return parser.parse_args(argv)


def _announce_ready() -> None:
    """Tell the guarded process the tree is recorded, then let go of its pipe."""
    os.write(sys.stdout.fileno(), READY)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="vlmcap guard: %(levelname)s %(message)s"
    )
    # The terminal's Ctrl-C is for the guarded process; this one must outlive it.
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    if os.getppid() != args.parent:
        logger.error("process %d is not this watcher's parent (gone already?)", args.parent)
        return 1
    try:
        watch = Watch(psutil.Process(args.parent))
    except psutil.Error:
        return 1
    watch.record()
    _announce_ready()
    if watch.wait_for_parent(args.fd):
        return 0
    left = watch.leftovers()
    # multiprocessing's resource tracker ends by itself once its last client is gone (it ignores
    # SIGTERM, and it removes the shared memory its clients leaked): it gets time, no warning.
    trackers = [p for p in left if processes.is_resource_tracker(p)]
    others = [p for p in left if p not in trackers]
    survivors: list[psutil.Process] = []
    if others:
        logger.warning(
            "process %d ended without stopping %d of its processes; stopping %s",
            args.parent,
            len(others),
            ", ".join(processes.describe(p) for p in others),
        )
        survivors = processes.stop(others, args.grace)
    survivors += processes.stop(processes.wait_gone(trackers, args.grace), 0.0)
    if survivors:
        logger.error(
            "still running after SIGKILL: %s", ", ".join(processes.describe(p) for p in survivors)
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
