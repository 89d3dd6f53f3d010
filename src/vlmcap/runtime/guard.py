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
cleared when a set-uid program is executed.

So ``guard_children()`` starts one small watcher process (``watcher.py``) beside this process. The
watcher records this process's descendants (pid and creation time) and holds the read end of a
pipe whose write end only this process holds (it is closed in forked children, and never
inherited by executed ones). Whatever way this process ends, the kernel closes that write end; the
watcher then SIGTERMs the recorded descendants that are still running (a grace later, SIGKILLs
them) and exits. It lives in its own session, so a terminal's Ctrl-C or a kill of the job's process
group does not take it first, while this process keeps its own process group. It needs nothing
from the platform but a pipe and ``/proc`` (through psutil), so it works the same on GPU nodes.

One guard per process: ``guard_children()`` starts it on first use and returns the running one
afterwards (``vlmcap.plugins.base.VLMPlugin.build_llm`` and ``vlmcap serve`` call it before vLLM
starts anything).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import subprocess
import sys
import threading

logger = logging.getLogger(__name__)

#: The watcher's module (``python -m``).
WATCHER_MODULE = "vlmcap.runtime.watcher"
#: Must match ``watcher.DISMISS`` and ``watcher.READY`` (kept here so that starting the guard
#: does not import psutil into this process).
DISMISS = b"x"
READY = b"ready\n"
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
        self._write_fd: int | None = None
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
            and self._write_fd is not None
            and self._owner == os.getpid()
            and self._proc.poll() is None
        )

    def start(self) -> bool:
        """Start the watcher and wait for its first recording; False (logged) if it could not."""
        read_fd, write_fd = os.pipe()  # both close on exec: only pass_fds reaches the watcher
        command = [
            sys.executable,
            "-m",
            WATCHER_MODULE,
            "--parent",
            str(os.getpid()),
            "--fd",
            str(read_fd),
            "--grace",
            str(self.term_grace_s),
        ]
        try:
            proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                pass_fds=(read_fd,),
                start_new_session=True,  # out of reach of the terminal's signals
            )
        except OSError as exc:
            os.close(write_fd)
            logger.warning("cannot start the child guard (%s): processes may outlive a kill", exc)
            return False
        finally:
            os.close(read_fd)
        if not _read_ready(proc):
            with contextlib.suppress(OSError):
                proc.kill()
            proc.wait()
            os.close(write_fd)
            logger.warning("the child guard did not start: processes may outlive a kill")
            return False
        self._proc, self._write_fd, self._owner = proc, write_fd, os.getpid()
        logger.debug("child guard %d watches process %d", proc.pid, self._owner)
        return True

    def stop(self) -> None:
        """Let the watcher go without stopping anything (this process stays responsible)."""
        if self._write_fd is None or self._proc is None:
            return
        with contextlib.suppress(OSError):
            os.write(self._write_fd, DISMISS)
        self._close_fd()
        try:
            self._proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def _close_fd(self) -> None:
        if self._write_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._write_fd)
            self._write_fd = None

    def _forget(self) -> None:
        """In a forked child: this guard is the parent's; drop the child's copy of the pipe."""
        self._close_fd()
        self._proc = None


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
            self.guard._forget()
            self.guard = None


_this_process = _ProcessGuard()
os.register_at_fork(after_in_child=_this_process.after_fork_in_child)


def guard_children() -> ChildGuard | None:
    """Make sure a watcher guards this process (started once); None if it cannot start."""
    return _this_process.ensure()
