"""A daemon thread that logs a health snapshot every ``interval`` seconds.

    from vlmcap.monitor import EngineSource, start_background_logging, stop_background_logging

    start_background_logging(30, EngineSource(llm, progress))
    ...
    stop_background_logging()

Each snapshot's ``summary()`` goes to the ``vlmcap.monitor`` logger at INFO. The thread only
reads (metrics, psutil, NVML, an HTTP scrape), so it never blocks an engine step; an error in a
source is logged once per distinct message (repeats at DEBUG) and the thread goes on.

Switched on from the environment (``monitor_from_env``): ``VLMCAP_MONITOR=1`` with
``VLMCAP_MONITOR_INTERVAL`` seconds, or the names existing deployments use,
``ENABLE_VLLM_MONITOR`` / ``VLLM_MONITOR_INTERVAL``. A ``VLMCAP_*`` name that is set wins over
its older counterpart, also to switch it off (``VLMCAP_MONITOR=0``); an interval alone does
not switch the monitor on.
"""

from __future__ import annotations

import logging
import math
import threading

from vlmcap import envs
from vlmcap.monitor.snapshot import HealthSnapshot
from vlmcap.monitor.source import LocalSource, SnapshotSource

#: The logger snapshots go to (``logging.getLogger(__name__)`` is ``vlmcap.monitor.background``).
logger = logging.getLogger("vlmcap.monitor")

#: Seconds between snapshots when the environment names no interval.
DEFAULT_INTERVAL_S = 30.0
#: Seconds ``stop`` waits for the thread (one snapshot in progress, e.g. an HTTP timeout).
STOP_TIMEOUT_S = 10.0
SWITCHES = ("VLMCAP_MONITOR", "ENABLE_VLLM_MONITOR")
INTERVALS = ("VLMCAP_MONITOR_INTERVAL", "VLLM_MONITOR_INTERVAL")
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})


class BackgroundMonitor:
    """Logs ``source.snapshot().summary()`` every ``interval_s`` seconds on a daemon thread."""

    def __init__(self, source: SnapshotSource, interval_s: float) -> None:
        if interval_s <= 0:
            raise ValueError(f"the monitor interval must be > 0 s, got {interval_s}")
        self.source = source
        self.interval_s = interval_s
        self.last: HealthSnapshot | None = None
        self.snapshots = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._errors_seen: set[str] = set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="vlmcap-monitor", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stop and join the thread (it finishes the snapshot it may be taking)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)
            if thread.is_alive():
                logger.warning("health monitor still busy after %.0f s; left to exit", timeout_s)

    def tick(self) -> HealthSnapshot | None:
        """Take and log one snapshot; ``None`` (and logged) when the source failed."""
        try:
            snapshot = self.source.snapshot()
        except Exception as exc:  # a monitor must never stop the job it watches
            message = f"{type(exc).__name__}: {exc}"
            if message in self._errors_seen:
                logger.debug("health snapshot failed again: %s", message)
            else:
                self._errors_seen.add(message)
                logger.warning("health snapshot failed: %s", message, exc_info=True)
            return None
        self.last = snapshot
        self.snapshots += 1
        logger.info("%s", snapshot.summary())
        return snapshot

    def _run(self) -> None:
        while not self._stop.is_set():
            self.tick()
            if self._stop.wait(self.interval_s):
                return


_lock = threading.Lock()
_current: BackgroundMonitor | None = None


def start_background_logging(
    interval: float | None = None, source: SnapshotSource | None = None
) -> BackgroundMonitor:
    """Start the process's background monitor (a running one is stopped and replaced).

    ``interval`` defaults to the environment's (``monitor_from_env``) or 30 s; ``source`` to a
    ``LocalSource`` (this process and machine only).
    """
    global _current
    seconds = interval if interval is not None else (monitor_from_env() or DEFAULT_INTERVAL_S)
    monitor = BackgroundMonitor(source if source is not None else LocalSource(), seconds)
    with _lock:
        previous, _current = _current, monitor
    if previous is not None:
        previous.stop()
    monitor.start()
    logger.debug("health monitor started: every %.1f s", seconds)
    return monitor


def stop_background_logging(timeout_s: float = STOP_TIMEOUT_S) -> None:
    """Stop the process's background monitor, if one runs."""
    global _current
    with _lock:
        monitor, _current = _current, None
    if monitor is not None:
        monitor.stop(timeout_s)


def start_from_env(source: SnapshotSource | None = None) -> BackgroundMonitor | None:
    """Start the monitor when the environment switches it on; ``None`` when it does not."""
    interval = monitor_from_env()
    return None if interval is None else start_background_logging(interval, source)


def monitor_from_env() -> float | None:
    """Seconds between snapshots when the environment switches the monitor on, else ``None``.

    Precedence: ``VLMCAP_MONITOR`` when set (non-empty), else ``ENABLE_VLLM_MONITOR``, decides
    on/off; ``VLMCAP_MONITOR_INTERVAL`` when set, else ``VLLM_MONITOR_INTERVAL``, else 30 s gives
    the interval. An interval that is not a number > 0 is logged and replaced by 30 s.
    """
    switch = _first_set(SWITCHES)
    if switch is None or switch[1].strip().lower() not in TRUE_WORDS:
        return None
    given = _first_set(INTERVALS)
    if given is None:
        return DEFAULT_INTERVAL_S
    name, text = given
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not (math.isfinite(seconds) and seconds > 0):
        logger.warning(
            "%s=%r is not a number of seconds > 0; using %.0f s", name, text, DEFAULT_INTERVAL_S
        )
        return DEFAULT_INTERVAL_S
    return seconds


def _first_set(names: tuple[str, ...]) -> tuple[str, str] | None:
    for name in names:
        value = envs.get(name).strip()
        if value:
            return name, value
    return None
