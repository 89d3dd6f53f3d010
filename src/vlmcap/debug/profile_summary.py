"""What one profiling session left, put together: its traces, the engine steps they hold, the
top operators and, on a GPU, how busy the device was (``vlmcap.debug.device_time``).

Usable alone on any folder of traces (``summarise(DIR, prefix)``); ``vlmcap.debug.profiler``
and ``vlmcap.debug.server_profiler`` call it once a profile has stopped. Each trace is read
once.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from vlmcap.debug.device_time import DeviceTime, device_time
from vlmcap.debug.traces import (
    DEFAULT_TOP,
    OpStat,
    TraceError,
    find_traces,
    format_operators,
    is_step,
    operators_in,
    trace_events,
)

__all__ = ["ProfileSummary", "log_summary", "summarise"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProfileSummary:
    """One profiling session: its traces, the steps they hold, the top operators and the
    device's time in each trace that has device events."""

    directory: Path
    traces: tuple[Path, ...]
    steps: int
    ops: tuple[OpStat, ...]
    errors: tuple[str, ...] = ()  # traces that did not load
    device: tuple[DeviceTime, ...] = ()

    def table(self) -> str:
        names = ", ".join(p.name for p in self.traces)
        title = (
            f"top {len(self.ops)} operators by self time over {self.steps} profiled engine "
            f"steps ({names} in {self.directory}):"
        )
        lines = [format_operators(self.ops, title), *(d.line() for d in self.device)]
        return "\n".join(lines)


def summarise(
    directory: str | os.PathLike[str], prefix: str | None = None, n: int = DEFAULT_TOP
) -> ProfileSummary:
    """The traces in ``directory`` named ``prefix...``: loaded, counted and summarised; a trace
    that does not load is named in ``errors`` (and left out) rather than raised."""
    folder = Path(directory)
    good: list[Path] = []
    loaded: list[list[dict[str, object]]] = []
    errors: list[str] = []
    for path in find_traces(folder, prefix):
        try:
            events = trace_events(path)
        except (TraceError, OSError) as exc:
            errors.append(str(exc))
            continue
        good.append(path)
        loaded.append(events)
    ops = operators_in(loaded, n)
    steps = sum(1 for events in loaded for event in events if is_step(event))
    device = [device_time(events, path.name) for path, events in zip(good, loaded, strict=True)]
    return ProfileSummary(
        folder,
        tuple(good),
        steps,
        tuple(ops),
        tuple(errors),
        tuple(d for d in device if d is not None),
    )


def log_summary(summary: ProfileSummary) -> None:
    for error in summary.errors:
        logger.warning("profile: %s", error)
    if not summary.traces:
        logger.warning("profile: no trace in %s", summary.directory)
        return
    logger.info("%s", summary.table())
