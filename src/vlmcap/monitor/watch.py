"""What a job runs beside its work to watch itself (``--hang-timeout``, ``--on-hang``,
``--log-requests``, ``--monitor-interval``, ``--metrics-port``): one context manager for every
job command.

    with watch_job(live, options, source=...):   # live: the run's vlmcap.core.progress.Progress
        ...the run...

``source`` (``vlmcap.monitor.EngineSource`` offline, ``ServerSource`` through a server) gives
the background monitor its snapshots and the hang report its health block. The monitor runs
with ``--monitor-interval S``, or when the environment switches it on (``VLMCAP_MONITOR=1``,
``ENABLE_VLLM_MONITOR=1``; see ``vlmcap.monitor.background.monitor_from_env``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator

from vlmcap.core.progress import Progress
from vlmcap.monitor.background import BackgroundMonitor, monitor_from_env
from vlmcap.monitor.exporter import MetricsEndpoint
from vlmcap.monitor.source import SnapshotSource
from vlmcap.monitor.watchdog import HangWatchdog
from vlmcap.options.monitor import MonitorOptions

logger = logging.getLogger(__name__)


def live_progress(options: MonitorOptions) -> Progress:
    """A run's ``Progress``, logging request timings at INFO with ``--log-requests``."""
    return Progress(log_level=logging.INFO if options.log_requests else logging.DEBUG)


@contextlib.contextmanager
def watch_job(
    live: Progress,
    options: MonitorOptions,
    *,
    source: SnapshotSource | None = None,
    on_abort: Callable[[], None] | None = None,
) -> Iterator[HangWatchdog | None]:
    """Run the hang watchdog (unless ``--hang-timeout 0``), the background monitor (when
    switched on) and the job's metrics endpoint (``--metrics-port``) around the block.

    ``on_abort``: how to stop the run with ``--on-hang abort`` (the job runner passes
    ``abort_stuck_run``).
    """
    watchdog = None
    describe = (lambda: source.snapshot().summary()) if source is not None else None
    if options.hang_timeout > 0:
        abort = on_abort if options.on_hang == "abort" else None
        watchdog = HangWatchdog(live, options.hang_timeout, on_abort=abort, describe=describe)
    interval = options.health.monitor_interval or monitor_from_env()
    with contextlib.ExitStack() as stack:
        if watchdog is not None:
            stack.enter_context(watchdog)
        if interval is not None and source is not None:
            monitor = BackgroundMonitor(source, interval)
            monitor.start()
            stack.callback(monitor.stop)
        if options.metrics_port is not None:
            endpoint = MetricsEndpoint(
                live,
                options.metrics_host,
                options.metrics_port,
                hangs=lambda: watchdog.fired if watchdog is not None else 0,
            )
            stack.callback(endpoint.start().stop)
        yield watchdog
