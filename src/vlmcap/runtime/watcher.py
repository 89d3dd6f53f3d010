"""The child guard's watcher process (``python -m vlmcap.runtime.watcher``; see ``guard.py``).

It runs beside the guarded process (as its child, in a session of its own) and:

1. records the guarded process's descendants (pid + creation time, ``processes.ProcessId``):
   its direct children ten times a second (a few reads in ``/proc``, on every kernel:
   ``processes.ChildScanner``), the whole tree often while
   it changes and less often once it is stable, and every child the guarded process forks the
   moment that child reports itself on the fork pipe;
2. waits for the guarded process to end: its life pipe reaches end-of-file when the kernel
   closes the guarded process's files, and the watcher's parent pid changes when it was
   re-parented; either one is enough;
3. then stops the recorded descendants still running (those whose pid still carries the recorded
   creation time) and whatever these started since (``processes.stop``: the tree frozen, then
   SIGTERM, SIGKILL after a grace).

It exits after that, or at once, killing nothing, when the guarded process dismisses it. Only
processes seen below the guarded process (or reported from its forks) are ever signalled, and
only while their pid still names the same process. What can escape: a program the guarded
process executes (not forks) less than one fast poll (0.1 s) before it is killed.
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
from vlmcap.runtime.protocol import DISMISS, PID_FORMAT, READY

logger = logging.getLogger(__name__)

#: Seconds between two looks at the guarded process's direct children.
CHILDREN_POLL_S = 0.1
#: Seconds between two recordings of the whole tree while it changes, and at most once stable.
TREE_POLL_MIN_S = 0.1
TREE_POLL_MAX_S = 1.0
#: Seconds between two parent checks once the life pipe is closed (the parent is exiting).
EXIT_POLL_S = 0.02
#: Seconds recorded processes get to exit after SIGTERM before they are killed.
TERM_GRACE_S = 5.0
#: Bytes read from a pipe at once (a whole number of packed pids).
READ_SIZE = 64 * PID_FORMAT.size


class Watch:
    """What the watcher knows of the guarded process's descendants."""

    def __init__(self, parent: psutil.Process) -> None:
        self.parent = parent
        self.known: dict[int, float] = {}  # pid -> creation time
        self._own_pid = os.getpid()
        self._partial = b""
        self._scanner = processes.ChildScanner()

    def parent_gone(self) -> bool:
        """True once the guarded process has ended (this process was re-parented)."""
        return os.getppid() != self.parent.pid

    def add(self, proc: psutil.Process) -> bool:
        """Record one descendant; True if it is new."""
        if proc.pid == self._own_pid:
            return False
        try:
            ident = ProcessId.of(proc)
        except psutil.Error:
            return False
        if self.known.get(ident.pid) == ident.create_time:
            return False
        self.known[ident.pid] = ident.create_time
        return True

    def record_children(self) -> bool:
        """Add the guarded process's new direct children (the fast look); True if any."""
        pids = self._scanner.children(self.parent.pid)
        changed = False
        for pid in pids or ():
            if pid not in self.known:
                try:
                    changed |= self.add(psutil.Process(pid))
                except psutil.Error:
                    continue
        return changed

    def record(self) -> bool:
        """Add the current descendants; forget recorded ones that ended. True on a change."""
        tree = processes.descendants(self.parent)
        changed = False
        for proc in tree:
            changed |= self.add(proc)
        current = {proc.pid for proc in tree}
        for pid in [p for p in self.known if p not in current]:
            # out of the tree: ended, or orphaned by a descendant that ended (then kept)
            if ProcessId(pid, self.known[pid]).live() is None:
                del self.known[pid]
                changed = True
        return changed

    def read_forks(self, data: bytes) -> None:
        """Record the children that reported their pid on the fork pipe."""
        data = self._partial + data
        whole = len(data) - len(data) % PID_FORMAT.size
        self._partial = data[whole:]
        for (pid,) in PID_FORMAT.iter_unpack(data[:whole]):
            try:
                self.add(psutil.Process(pid))
            except psutil.Error:
                continue  # already gone

    def leftovers(self) -> list[psutil.Process]:
        """The guarded process's descendants that still run (see the module's docstring)."""
        roots: dict[int, psutil.Process] = {}
        for pid, created in self.known.items():
            proc = ProcessId(pid, created).live()
            if proc is not None:
                roots[pid] = proc
        found = dict(roots)
        for proc in roots.values():
            for sub in processes.descendants(proc):
                found.setdefault(sub.pid, sub)
        found.pop(self._own_pid, None)
        return list(found.values())

    def wait_for_parent(self, life_fd: int, fork_fd: int | None) -> bool:
        """Record until the guarded process ends (False) or dismisses the watcher (True)."""
        open_fds = {life_fd} | ({fork_fd} if fork_fd is not None else set())
        tree_interval = TREE_POLL_MIN_S
        next_tree = time.monotonic() + tree_interval
        while True:
            changed = False
            if life_fd in open_fds:
                readable, _, _ = select.select(list(open_fds), [], [], CHILDREN_POLL_S)
                for fd in readable:
                    data = os.read(fd, READ_SIZE)
                    if not data:
                        open_fds.discard(fd)  # life pipe: the guarded process is exiting
                    elif fd == life_fd and DISMISS in data:
                        return True
                    elif fd == fork_fd:
                        self.read_forks(data)
                        changed = True
            else:
                time.sleep(EXIT_POLL_S)
            if self.parent_gone():
                return False
            changed |= self.record_children()
            if changed or time.monotonic() >= next_tree:
                tree_changed = self.record()
                tree_interval = (
                    TREE_POLL_MIN_S
                    if changed or tree_changed
                    else min(TREE_POLL_MAX_S, tree_interval * 2)
                )
                next_tree = time.monotonic() + tree_interval


def stop_leftovers(watch: Watch, grace_s: float) -> bool:
    """Stop what the ended guarded process left running; False if something survived."""
    left = watch.leftovers()
    noted = [p for p in left if not processes.is_resource_tracker(p)]  # trackers end by themselves
    if noted:
        logger.warning(
            "process %d ended without stopping %d of its processes; stopping %s",
            watch.parent.pid,
            len(noted),
            ", ".join(processes.describe(p) for p in noted),
        )
    survivors = processes.stop(left, grace_s)
    if survivors:
        logger.error(
            "still running after SIGKILL: %s", ", ".join(processes.describe(p) for p in survivors)
        )
    return not survivors


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m vlmcap.runtime.watcher")
    parser.add_argument("--parent", type=int, required=True, help="pid of the guarded process")
    parser.add_argument("--life-fd", type=int, required=True, help="read end of the life pipe")
    parser.add_argument("--fork-fd", type=int, default=None, help="read end of the fork pipe")
    parser.add_argument("--grace", type=float, default=TERM_GRACE_S, help="seconds after SIGTERM")
    return parser.parse_args(argv)


def _announce_ready() -> None:
    """Tell the guarded process the tree is recorded, then let go of that pipe."""
    os.write(sys.stdout.fileno(), READY)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="vlmcap guard: %(levelname)s %(message)s"
    )
    # The terminal's Ctrl-C and hang-up are for the guarded process; this one must outlive it.
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
    if watch.wait_for_parent(args.life_fd, args.fork_fd):
        return 0
    return 0 if stop_leftovers(watch, args.grace) else 1


if __name__ == "__main__":
    sys.exit(main())
