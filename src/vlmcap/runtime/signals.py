"""SIGTERM and SIGINT end a run the way an exception does: through every ``finally`` block.

Python turns SIGINT into ``KeyboardInterrupt`` but SIGTERM, which SLURM, Kubernetes, systemd and
``kill`` send, ends the process on the spot: buffered records are lost, the output folder's lock
stays behind and nobody stops vLLM's engine. Inside ``stop_on_signals()`` both signals raise
``Interrupted`` in the main thread instead, so the run unwinds like on an error (records flushed,
lock released, engine shut down) and the command exits with the shell's status for that signal,
128 + its number: 143 for SIGTERM, 130 for SIGINT. Clean-up code can run in
``StopSignals.shield()``, where a first signal is only recorded, so a SIGTERM that arrives while
the records are flushed does not cut the flush short.

The hang watchdog (``vlmcap.monitor.watchdog``, ``--on-hang abort``) stops a stuck run the same
way: ``abort_stuck_run()`` sends ``HANG_SIGNAL`` to the main thread, whatever it is blocked in,
which raises ``HangAbort`` there; the command exits with ``HANG_EXIT_STATUS`` (124, as
``timeout`` does), every unfinished item left for the next run.

A second signal while the run is already stopping ends the process at once with that status (an
impatient Ctrl-C, a scheduler that insists); the child guard (``guard.py``) then stops the engine
processes that were left.
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
#: What the hang watchdog sends the main thread to stop a stuck run.
HANG_SIGNAL = signal.SIGUSR1
#: Exit status of a run the hang watchdog stopped (``timeout``'s status for a time-out).
HANG_EXIT_STATUS = 124


def exit_status_for(signum: int) -> int:
    """The exit status of a run stopped by ``signum``."""
    return HANG_EXIT_STATUS if signum == HANG_SIGNAL else SIGNAL_STATUS_BASE + signum


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
        return exit_status_for(self.signum)


class HangAbort(Interrupted):
    """The hang watchdog stopped the run (``--on-hang abort``)."""

    def __init__(self) -> None:
        super().__init__(HANG_SIGNAL)

    @property
    def name(self) -> str:
        return "hang watchdog"


def abort_stuck_run() -> None:
    """Raise ``HangAbort`` in the main thread (from any thread), inside ``stop_on_signals``.

    A signal aimed at the main thread interrupts whatever system call it is blocked in, which a
    flag or an exception set from another thread could not."""
    main = threading.main_thread().ident
    if main is not None:
        signal.pthread_kill(main, HANG_SIGNAL)


class StopSignals:
    """The handler ``stop_on_signals`` installs: the first signal raises ``Interrupted`` (inside
    ``shield()`` it is only recorded, to be raised by the next ``raising()``); a second signal
    exits at once."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._raising = True

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            if signum == HANG_SIGNAL:
                return  # the run is already stopping
            logger.warning("%s while stopping: exiting now", signal.Signals(signum).name)
            os._exit(SIGNAL_STATUS_BASE + signum)
        self.received = signum
        if self._raising:
            raise HangAbort() if signum == HANG_SIGNAL else Interrupted(signum)
        logger.info("%s: stopping once the clean-up is done", signal.Signals(signum).name)

    @contextlib.contextmanager
    def shield(self) -> Iterator[None]:
        """Clean-up code: a first signal is only recorded here, so the clean-up runs to its end."""
        with self._mode(raising=False):
            yield

    @contextlib.contextmanager
    def raising(self) -> Iterator[None]:
        """The work, inside a ``shield()``: a signal raises ``Interrupted`` here, at once if one
        came before. Wrapping the whole of a command in ``shield()`` and its work in ``raising()``
        leaves no instant at which a signal could skip the clean-up."""
        if self.received is not None:
            raise HangAbort() if self.received == HANG_SIGNAL else Interrupted(self.received)
        with self._mode(raising=True):
            yield

    @contextlib.contextmanager
    def _mode(self, *, raising: bool) -> Iterator[None]:
        previous, self._raising = self._raising, raising
        try:
            yield
        finally:
            self._raising = previous

    def exit_status(self, status: int) -> int:
        """``status``, or the signal's 128 + N once a signal was received."""
        return status if self.received is None else exit_status_for(self.received)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopSignals]:
    """SIGTERM and SIGINT raise ``Interrupted`` in this block, ``HANG_SIGNAL`` ``HangAbort``
    (see ``StopSignals`` for clean-up code); the previous handlers come back at its end.
    Outside the main thread, where Python cannot set handlers, nothing is installed."""
    handler = StopSignals()
    if threading.current_thread() is not threading.main_thread():
        yield handler
        return
    previous = {sig: signal.signal(sig, handler) for sig in (*STOP_SIGNALS, HANG_SIGNAL)}
    try:
        yield handler
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
