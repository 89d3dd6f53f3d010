"""What a job runs beside its work to watch itself (``--hang-timeout``, ``--on-hang``,
``--log-requests``, ``--monitor-interval``): one context manager for every job command.

    with watch_job(live, options):   # live: the run's vlmcap.core.progress.Progress
        ...the run...
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator

from vlmcap.core.progress import Progress
from vlmcap.monitor.exporter import MetricsEndpoint
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
    describe: Callable[[], str] | None = None,
    on_abort: Callable[[], None] | None = None,
) -> Iterator[HangWatchdog | None]:
    """Run the hang watchdog (unless ``--hang-timeout 0``) and, with ``--metrics-port``, the
    job's metrics endpoint around the block.

    ``describe``: the health snapshot's text, for the hang report. ``on_abort``: how to stop
    the run with ``--on-hang abort`` (the job runner passes ``abort_stuck_run``).
    """
    watchdog = None
    if options.hang_timeout > 0:
        abort = on_abort if options.on_hang == "abort" else None
        watchdog = HangWatchdog(live, options.hang_timeout, on_abort=abort, describe=describe)
    with contextlib.ExitStack() as stack:
        if watchdog is not None:
            stack.enter_context(watchdog)
        if options.metrics_port is not None:
            endpoint = MetricsEndpoint(
                live,
                options.metrics_host,
                options.metrics_port,
                hangs=lambda: watchdog.fired if watchdog is not None else 0,
            )
            stack.callback(endpoint.start().stop)
        yield watchdog
