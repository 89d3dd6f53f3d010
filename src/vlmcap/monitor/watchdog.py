"""The hang watchdog: a job with requests inside that makes no progress says so, loudly.

A thread looks at the run's ``Progress`` (``vlmcap.core.progress``) a few times per timeout.
When requests are inside and none has finished, and no new token was seen, for ``timeout_s``
seconds, it logs one WARNING block on ``vlmcap.monitor.watchdog``::

    HANG: no request finished and no token came for 301 s; 12 requests inside
    <the health snapshot, when the job gave a way to take one>
    oldest requests inside:
      clip_0042.mp4 stage1 for 301.2 s (id 5e1f-42)
    threads of this process:
      <every thread's stack (faulthandler)>
    engine processes:
      <each engine process's stacks, with py-spy where it is installed>

then either carries on (``--on-hang warn``: the block comes again only after progress and a
new stall) or calls ``on_abort`` (``--on-hang abort``: the job runner passes
``vlmcap.runtime.abort_stuck_run``, the run stops with exit status 124 and resumes later).
Reading ``Progress`` takes its lock for a moment; the watchdog never touches the engine.
"""

from __future__ import annotations

import faulthandler
import logging
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from vlmcap.core.progress import Progress, ProgressView
from vlmcap.monitor.process import engine_processes

logger = logging.getLogger(__name__)

#: Checks per timeout: a hang is reported at most a quarter of the timeout late.
CHECKS_PER_TIMEOUT = 4
#: Longest wait between two checks, whatever the timeout.
MAX_CHECK_S = 5.0
#: Seconds allowed for ``py-spy dump`` of one engine process.
PY_SPY_TIMEOUT_S = 20.0


def py_spy() -> str | None:
    """The ``py-spy`` executable, next to this Python or on ``PATH``."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def process_stacks(pid: int) -> str:
    """Python stacks of process ``pid`` (``py-spy dump``), or why they cannot be had."""
    tool = py_spy()
    if tool is None:
        return "(stacks need py-spy: pip install py-spy)"
    try:
        done = subprocess.run(
            [tool, "dump", "--pid", str(pid)],
            capture_output=True,
            text=True,
            timeout=PY_SPY_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"(py-spy failed: {exc})"
    if done.returncode != 0:
        return f"(py-spy failed: {done.stderr.strip() or done.returncode})"
    return done.stdout.rstrip()


def thread_stacks() -> str:
    """Every thread's stack in this process, as ``faulthandler`` writes them."""
    with tempfile.TemporaryFile(mode="w+") as out:
        faulthandler.dump_traceback(out, all_threads=True)
        out.seek(0)
        return out.read().rstrip()


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


class HangWatchdog:
    """Reports (and optionally aborts) a run stuck for ``timeout_s`` seconds; see the module."""

    def __init__(
        self,
        progress: Progress,
        timeout_s: float,
        *,
        on_abort: Callable[[], None] | None = None,
        describe: Callable[[], str] | None = None,
        engine_stacks: bool = True,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError(f"hang timeout must be > 0 seconds, got {timeout_s}")
        self.progress = progress
        self.timeout_s = timeout_s
        self.on_abort = on_abort
        self.describe = describe
        self.engine_stacks = engine_stacks
        self.fired = 0
        self._reported: float | None = None  # last_progress of the stall already reported
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def check_every_s(self) -> float:
        return min(self.timeout_s / CHECKS_PER_TIMEOUT, MAX_CHECK_S)

    def start(self) -> HangWatchdog:
        self._thread = threading.Thread(target=self._run, name="vlmcap-watchdog", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> HangWatchdog:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.wait(self.check_every_s):
            try:
                self.check()
            except Exception:
                logger.exception("hang watchdog check failed")

    def check(self) -> bool:
        """Report a hang if there is one not yet reported; True when it did."""
        view = self.progress.view()
        if view.stalled_s < self.timeout_s or view.last_progress == self._reported:
            return False
        self._reported = view.last_progress
        self.fired += 1
        logger.warning("%s", self.report(view))
        if self.on_abort is not None:
            logger.warning("hang watchdog: stopping the run (--on-hang abort); rerun to resume")
            self.on_abort()
        return True

    def report(self, view: ProgressView) -> str:
        """The WARNING block for ``view`` (see the module docstring)."""
        lines = [
            f"HANG: no request finished and no token came for {view.stalled_s:.0f} s; "
            f"{view.inflight} request{'s' if view.inflight != 1 else ''} inside "
            f"(--hang-timeout {self.timeout_s:g})"
        ]
        if self.describe is not None:
            try:
                lines.append(self.describe())
            except Exception as exc:  # noqa: BLE001 - a failing snapshot must not hide the rest
                lines.append(f"(no health snapshot: {type(exc).__name__}: {exc})")
        lines.append("oldest requests inside:")
        lines += [
            f"  {e.key} {e.stage} for {e.age(view.at):.1f} s (id {e.request_id})"
            for e in view.oldest
        ]
        lines += ["threads of this process:", _indent(thread_stacks())]
        if self.engine_stacks:
            engines = engine_processes()
            lines.append("engine processes:" if engines else "engine processes: none here")
            for proc in engines:
                lines += [
                    f"  {proc.name} (pid {proc.pid}):",
                    _indent(_indent(process_stacks(proc.pid))),
                ]
        return "\n".join(lines)
