"""The leak rule of ``--memory-report``: does memory grow steadily with the items done?

A pure function of numbers (``leak_verdict``), so that its rule is tested on series built for
the purpose; ``vlmcap.debug.memory`` applies it to a run's item checkpoints.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

MIB = 1024**2
#: Items per unit of the leak slope.
ITEMS_PER_SLOPE = 1000
#: Leak rule (``leak_verdict``): fewest item checkpoints, least slope, least fitted growth,
#: least share of steps that do not fall, and how far a step may fall and still count as flat.
LEAK_MIN_POINTS = 4
LEAK_SLOPE_MIB_PER_1K_ITEMS = 10.0
LEAK_MIN_GROWTH_MIB = 32.0
LEAK_RISING_FRACTION = 0.75
LEAK_STEP_TOLERANCE_MIB = 1.0


@dataclass(frozen=True)
class LeakVerdict:
    """What ``leak_verdict`` found in one series (``suspected``: "possible leak")."""

    series: str
    suspected: bool
    points: int
    slope_mib_per_1k_items: float | None
    growth_mib: float | None  # last value minus first
    rising_steps: int  # steps that did not fall (beyond the tolerance)
    steps: int
    reason: str

    def summary(self) -> str:
        if self.slope_mib_per_1k_items is None or self.growth_mib is None:
            return f"{self.series}: {self.reason}"
        head = "possible leak" if self.suspected else "no leak"
        return (
            f"{head}: {self.series} grows {self.slope_mib_per_1k_items:+.1f} MiB per "
            f"{ITEMS_PER_SLOPE} items ({self.growth_mib:+.0f} MiB over {self.points} "
            f"checkpoints, {self.rising_steps} of {self.steps} steps not falling)"
            + ("" if self.suspected else f"; {self.reason}")
        )


def leak_verdict(
    items: Sequence[float],
    values_bytes: Sequence[float],
    *,
    series: str = "memory",
    min_points: int = LEAK_MIN_POINTS,
    min_slope_mib_per_1k: float = LEAK_SLOPE_MIB_PER_1K_ITEMS,
    min_growth_mib: float = LEAK_MIN_GROWTH_MIB,
    rising_fraction: float = LEAK_RISING_FRACTION,
    step_tolerance_mib: float = LEAK_STEP_TOLERANCE_MIB,
) -> LeakVerdict:
    """Does memory (``values_bytes``) grow steadily with the items done (``items``)?

    "Possible leak" needs all of:

    * at least ``min_points`` checkpoints (fewer cannot tell a trend from warm-up);
    * a least-squares slope of at least ``min_slope_mib_per_1k`` MiB per 1000 items: the fit
      uses every point, so one spike moves it little;
    * a fitted growth (slope times the items spanned) of at least ``min_growth_mib`` MiB, so a
      steep but tiny rise over a short run (allocator pages, a cache settling) is not flagged;
    * at least ``rising_fraction`` of the steps not falling (a fall of up to
      ``step_tolerance_mib`` counts as flat): a leak only climbs, while a noisy series whose
      fit happens to slope up falls about as often as it rises.

    Callers pass the item checkpoints after the engine has loaded: the load itself and the
    start-up before it are not growth per item.
    """
    pairs = [(float(x), float(y)) for x, y in zip(items, values_bytes, strict=True)]
    if len(pairs) < min_points:
        return _undecided(series, len(pairs), f"{len(pairs)} checkpoints, {min_points} needed")
    xs = [x for x, _ in pairs]
    ys = [y / MIB for _, y in pairs]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0:
        return _undecided(series, len(pairs), "every checkpoint is at the same item count")
    steps = len(pairs) - 1
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread
    slope_1k = slope * ITEMS_PER_SLOPE
    fitted_growth = slope * (max(xs) - min(xs))
    rising = sum(1 for a, b in itertools.pairwise(ys) if b - a >= -step_tolerance_mib)
    growth = ys[-1] - ys[0]
    reasons = []
    if slope_1k < min_slope_mib_per_1k:
        reasons.append(f"slope below {min_slope_mib_per_1k:g} MiB per {ITEMS_PER_SLOPE} items")
    if fitted_growth < min_growth_mib:
        reasons.append(f"fitted growth {fitted_growth:.0f} MiB below {min_growth_mib:g} MiB")
    if rising < rising_fraction * steps:
        reasons.append(f"fewer than {rising_fraction:.0%} of the steps rise (noise)")
    return LeakVerdict(
        series=series,
        suspected=not reasons,
        points=len(pairs),
        slope_mib_per_1k_items=slope_1k,
        growth_mib=growth,
        rising_steps=rising,
        steps=steps,
        reason="; ".join(reasons) or "steady growth",
    )


def _undecided(series: str, points: int, reason: str) -> LeakVerdict:
    return LeakVerdict(
        series=series,
        suspected=False,
        points=points,
        slope_mib_per_1k_items=None,
        growth_mib=None,
        rising_steps=0,
        steps=max(points - 1, 0),
        reason=reason,
    )
