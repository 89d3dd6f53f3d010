"""SIGTERM and SIGINT end a run the way an exception does: through every ``finally`` block.

Python turns SIGINT into ``KeyboardInterrupt``, but SIGTERM, which SLURM, Kubernetes, systemd and
``kill`` send, ends the process on the spot: buffered records are lost, the output folder's lock
stays behind and nobody stops vLLM's engine. Inside ``stop_on_signals()`` both signals raise
``Interrupted`` in the main thread instead, so the run unwinds like on an error (records flushed,
lock released, engine shut down) and the command exits with the shell's status for that signal,
128 + its number: 143 for SIGTERM, 130 for SIGINT.

A second signal while the run is already unwinding ends the process at once with that status
(an impatient Ctrl-C, a scheduler that insists); the child guard (``guard.py``) then stops the
engine processes that were left.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType

logger = logging.getLogger(__name__)

#: The signals a run turns into ``Interrupted``.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: Exit status of a process ended by signal N, as shells report it: 128 + N.
SIGNAL_STATUS_BASE = 128


class Interrupted(KeyboardInterrupt):
    """The run was asked to stop by a signal. A ``KeyboardInterrupt``, so code that already
    cleans up after Ctrl-C does the same for SIGTERM, and ``except Exception`` does not swallow
    it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_status(self) -> int:
        return SIGNAL_STATUS_BASE + self.signum


class _Handler:
    """The first signal raises ``Interrupted``; any later one exits at once."""

    def __init__(self) -> None:
        self.received: int | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum
            raise Interrupted(signum)
        logger.warning("%s while stopping: exiting now", signal.Signals(signum).name)
        os._exit(SIGNAL_STATUS_BASE + signum)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGTERM and SIGINT raise ``Interrupted`` inside this block; the previous handlers come
    back at its end. Outside the main thread (where Python cannot set handlers) it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handler = _Handler()
    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
