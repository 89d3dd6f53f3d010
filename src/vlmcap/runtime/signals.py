"""SIGTERM and SIGINT end a run the way an exception does: through every ``finally`` block.

Python turns SIGINT into ``KeyboardInterrupt``, but SIGTERM, which SLURM, Kubernetes, systemd and
``kill`` send, ends the process on the spot: buffered records are lost, the output folder's lock
stays behind and nobody stops vLLM's engine. Inside ``stop_on_signals()`` both signals are
handled in the main thread instead: during the work (``StopSignals.raising()``) they raise
``Interrupted``, so the run unwinds like on an error (records flushed, lock released, engine shut
down); during the clean-up they are only recorded, so a SIGTERM that arrives while the records are
flushed does not cut the flush short. The command then exits with the shell's status for that
signal, 128 + its number: 143 for SIGTERM, 130 for SIGINT.

A second signal
while the run is already stopping ends the process at once with that status (an impatient
Ctrl-C, a scheduler that insists); the child guard (``guard.py``) then stops the engine processes
that were left.
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


class StopSignals:
    """The handler ``stop_on_signals`` installs: it records the first signal, and raises
    ``Interrupted`` for it inside ``raising()``; a second signal exits at once."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._raising = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            logger.warning("%s while stopping: exiting now", signal.Signals(signum).name)
            os._exit(SIGNAL_STATUS_BASE + signum)
        self.received = signum
        if self._raising:
            raise Interrupted(signum)
        logger.info("%s: stopping once the clean-up is done", signal.Signals(signum).name)

    @contextlib.contextmanager
    def raising(self) -> Iterator[None]:
        """The work: a signal raises ``Interrupted`` here (at once if one came before)."""
        if self.received is not None:
            raise Interrupted(self.received)
        self._raising = True
        try:
            yield
        finally:
            self._raising = False

    def exit_status(self, status: int) -> int:
        """``status``, or the signal's 128 + N once a signal was received."""
        return status if self.received is None else SIGNAL_STATUS_BASE + self.received


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopSignals]:
    """SIGTERM and SIGINT are handled by a ``StopSignals`` in this block (they raise
    ``Interrupted`` inside its ``raising()``, elsewhere they wait for the block's clean-up); the
    previous handlers come back at its end. Outside the main thread, where Python cannot set
    handlers, nothing is installed."""
    handler = StopSignals()
    if threading.current_thread() is not threading.main_thread():
        yield handler
        return
    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield handler
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
