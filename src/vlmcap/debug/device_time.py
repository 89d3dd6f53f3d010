"""How busy the accelerator was while the profiler recorded, from a trace's device events.

A worker's torch trace holds its engine steps (``user_annotation`` spans named ``execute_...``,
on the host) and, on a GPU, the kernels, copies and memsets the device ran (on the device's
own streams, on the same clock). Over the window from the first step's start to the last
step's end (or the device events' span when there are no step marks)::

    busy                 the union of the device's work
    idle in steps        the host inside a step while the device has nothing to run: input
                         preparation, launches, the sampler's synchronisation
    idle between steps   neither a step on the host nor work on the device: the worker waits
                         for the scheduler's next batch (the engine core's own CPU time, the
                         transfer of inputs)

A trace without device events (a CPU engine) has no device time: ``device_time`` is None.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from vlmcap.debug.traces import DEVICE_CATEGORIES, PERCENT, US_PER_MS, is_step

Interval = tuple[float, float]

#: An idle stretch of the device at least this long (microseconds) counts as a gap.
GAP_US = 1000.0


def union(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, disjoint intervals covering the same time as ``intervals``."""
    merged: list[Interval] = []
    for start, end in sorted(i for i in intervals if i[1] > i[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def clip(intervals: Sequence[Interval], lo: float, hi: float) -> list[Interval]:
    return [(max(s, lo), min(e, hi)) for s, e in intervals if e > lo and s < hi]


def length(intervals: Iterable[Interval]) -> float:
    return sum(e - s for s, e in intervals)


def gaps(intervals: Sequence[Interval], lo: float, hi: float) -> list[float]:
    """Lengths of the stretches of ``[lo, hi]`` that sorted, disjoint ``intervals`` leave."""
    out: list[float] = []
    at = lo
    for start, end in intervals:
        if start > at:
            out.append(start - at)
        at = max(at, end)
    if hi > at:
        out.append(hi - at)
    return out


@dataclass(frozen=True)
class DeviceTime:
    """The device's busy and idle time over one trace's window (microseconds)."""

    trace: str
    steps: int
    window_us: float
    busy_us: float
    idle_between_steps_us: float
    gaps: int  # idle stretches of at least GAP_US
    longest_gap_us: float

    @property
    def idle_us(self) -> float:
        return self.window_us - self.busy_us

    @property
    def idle_in_steps_us(self) -> float:
        return max(0.0, self.idle_us - self.idle_between_steps_us)

    def share(self, us: float) -> float:
        return us / self.window_us if self.window_us else 0.0

    def line(self) -> str:
        def pct(us: float) -> str:
            return f"{PERCENT * self.share(us):.1f} %"

        def ms(us: float) -> float:
            return us / US_PER_MS

        return (
            f"device busy {pct(self.busy_us)} of {ms(self.window_us):.1f} ms over "
            f"{self.steps} steps ({self.trace}); idle in steps {pct(self.idle_in_steps_us)}, "
            f"between steps {pct(self.idle_between_steps_us)}; {self.gaps} gaps of "
            f"{ms(GAP_US):g} ms or more, the longest {ms(self.longest_gap_us):.1f} ms"
        )


def device_time(events: Iterable[dict[str, Any]], trace: str) -> DeviceTime | None:
    """The device's time in one trace's events (``trace``: its name, for the report); None
    when the trace has no device events."""
    device: list[Interval] = []
    steps: list[Interval] = []
    for event in events:
        if event.get("ph") != "X":
            continue
        try:
            start = float(event["ts"])
            end = start + float(event.get("dur", 0.0))
        except (KeyError, TypeError, ValueError):
            continue
        if event.get("cat") in DEVICE_CATEGORIES:
            device.append((start, end))
        elif is_step(event):
            steps.append((start, end))
    if not device:
        return None
    busy, marked = union(device), union(steps)
    lo, hi = (marked[0][0], marked[-1][1]) if marked else (busy[0][0], busy[-1][1])
    busy = clip(busy, lo, hi)
    idle = gaps(busy, lo, hi)
    return DeviceTime(
        trace=trace,
        steps=len(steps),
        window_us=hi - lo,
        busy_us=length(busy),
        idle_between_steps_us=sum(gaps(union([*busy, *marked]), lo, hi)),
        gaps=sum(1 for g in idle if g >= GAP_US),
        longest_gap_us=max(idle, default=0.0),
    )
