"""Nothing a run starts outlives it, even when the run is killed with SIGKILL.

Why this exists: vLLM 0.32 starts its engine core (``VLLM::EngineCore``) as a daemonic
multiprocessing child (spawn on CPU and once CUDA is up, fork otherwise) and the engine core
starts its workers (``VLLM::Worker``) the same way. The workers watch a death pipe held by the
engine core and leave when it dies, but the engine core only waits on ZMQ sockets: nothing tells
it that the process owning the ``vllm.LLM`` (or the API server) is gone. Multiprocessing's daemon
flag and vLLM's finalizers act only on a normal exit, so SIGKILL (a SLURM time limit, the OOM
killer, ``kill -9``) leaves the engine core and its workers running, re-parented to init, holding
gigabytes of memory (or a GPU) for good. ``prctl(PR_SET_PDEATHSIG)`` does not solve it: it only
reaches a direct child, it fires when the *thread* that started the child exits, and it is
cleared when a set-uid program is executed. ``vlmcap serve`` sets it on its API server child,
yet an API server still starting up only logs that SIGTERM and keeps running, engine core and
all.

So ``guard_children()`` starts one small watcher process (``watcher.py``) beside this process. The
watcher records this process's descendants (pid and creation time) and holds the read end of a pipe
whose write end only this process holds (closed in forked children, never inherited by executed
ones). Whatever way this process ends, the kernel closes that write end; the watcher then SIGTERMs
the descendants still running (a grace later, SIGKILLs them) and exits. A child forked just before
the end is not missed: it reports its pid from an at-fork hook at once; the direct children are
looked at ten times a second, the whole tree less often. The watcher lives in its own session, so a
terminal's Ctrl-C or a kill of the job's process group does not take it first, while this process
keeps its own process group. It needs nothing from the platform but pipes and ``/proc`` (through
psutil), so it works the same on GPU nodes.

One guard per process: ``guard_children()`` starts it on first use and returns the running one
afterwards (``vlmcap.plugins.base.VLMPlugin.build_llm``, through ``engine.before_engine_start``,
and ``vlmcap serve`` call it before vLLM starts anything).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import subprocess
import sys
import threading

from vlmcap.runtime.protocol import DISMISS, PID_FORMAT, READY

logger = logging.getLogger(__name__)

#: The watcher's module (``python -m``).
WATCHER_MODULE = "vlmcap.runtime.watcher"
#: Seconds to wait for the watcher's first recording (an interpreter start on a busy machine).
READY_TIMEOUT_S = 30.0
#: Seconds to wait for a dismissed watcher to exit.
STOP_TIMEOUT_S = 5.0
#: Seconds the recorded processes get between SIGTERM and SIGKILL once this process is gone.
TERM_GRACE_S = 5.0


class ChildGuard:
    """A watcher process that stops this process's descendants once this process is gone."""

    def __init__(self, term_grace_s: float = TERM_GRACE_S) -> None:
        self.term_grace_s = term_grace_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._life_fd: int | None = None  # write ends; the watcher holds the read ends
        self._fork_fd: int | None = None
        self._owner = os.getpid()

    @property
    def pid(self) -> int | None:
        """The watcher's pid (None before ``start``)."""
        return self._proc.pid if self._proc is not None else None

    @property
    def active(self) -> bool:
        """True while the watcher guards this process."""
        return (
            self._proc is not None
            and self._life_fd is not None
            and self._owner == os.getpid()
            and self._proc.poll() is None
        )

    def start(self) -> bool:
        """Start the watcher and wait for its first recording; False (logged) if it could not."""
        life_r, life_w = os.pipe()  # all four close on exec: only pass_fds reach the watcher
        fork_r, fork_w = os.pipe()
        os.set_blocking(fork_w, False)  # a forked child never waits on a full pipe
        command = [sys.executable, "-m", WATCHER_MODULE, "--parent", str(os.getpid())]
        command += ["--life-fd", str(life_r), "--fork-fd", str(fork_r)]
        command += ["--grace", str(self.term_grace_s)]
        try:
            proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                pass_fds=(life_r, fork_r),
                start_new_session=True,  # out of reach of the terminal's signals
            )
        except OSError as exc:
            _close(life_w, fork_w)
            logger.warning("cannot start the child guard (%s): processes may outlive a kill", exc)
            return False
        finally:
            _close(life_r, fork_r)
        if not _read_ready(proc):
            with contextlib.suppress(OSError):
                proc.kill()
            proc.wait()
            _close(life_w, fork_w)
            logger.warning("the child guard did not start: processes may outlive a kill")
            return False
        self._proc, self._life_fd, self._fork_fd = proc, life_w, fork_w
        self._owner = os.getpid()
        logger.debug("child guard %d watches process %d", proc.pid, self._owner)
        return True

    def stop(self) -> None:
        """Let the watcher go without stopping anything (this process stays responsible)."""
        if self._life_fd is None or self._proc is None:
            return
        with contextlib.suppress(OSError):
            os.write(self._life_fd, DISMISS)
        self._close_fds()
        try:
            self._proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def _close_fds(self) -> None:
        _close(*(fd for fd in (self._life_fd, self._fork_fd) if fd is not None))
        self._life_fd = self._fork_fd = None

    def _report_fork(self) -> None:
        """In a child just forked: tell the watcher, and drop the child's copies of the pipes
        (the guard and its life pipe are the parent's)."""
        if self._fork_fd is not None:
            with contextlib.suppress(OSError):
                os.write(self._fork_fd, PID_FORMAT.pack(os.getpid()))
        self._close_fds()
        self._proc = None


def _close(*fds: int) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def _read_ready(proc: subprocess.Popen[bytes]) -> bool:
    """True once the watcher has written ``READY``; closes our end of its stdout either way."""
    assert proc.stdout is not None
    try:
        readable, _, _ = select.select([proc.stdout], [], [], READY_TIMEOUT_S)
        return bool(readable) and proc.stdout.read(len(READY)) == READY
    except (OSError, ValueError):
        return False
    finally:
        proc.stdout.close()


class _ProcessGuard:
    """This process's one guard (a forked child starts without one)."""

    def __init__(self) -> None:
        self.guard: ChildGuard | None = None
        self.lock = threading.Lock()

    def ensure(self) -> ChildGuard | None:
        with self.lock:
            if self.guard is not None and self.guard.active:
                return self.guard
            guard = ChildGuard()
            self.guard = guard if guard.start() else None
            return self.guard

    def after_fork_in_child(self) -> None:
        self.lock = threading.Lock()  # another thread may have held it at the fork
        if self.guard is not None:
            self.guard._report_fork()
            self.guard = None


_this_process = _ProcessGuard()
os.register_at_fork(after_in_child=_this_process.after_fork_in_child)


def guard_children() -> ChildGuard | None:
    """Make sure a watcher guards this process (started once); None if it cannot start."""
    return _this_process.ensure()
