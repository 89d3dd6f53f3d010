"""Where the time of one engine-loop run went: engine steps vs waiting for input."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class LoopStats:
    """Filled in by the engine loops as they run; read by the pipeline and the benchmarks.

    ``busy_s`` is wall time with at least one request inside the engine: vLLM's engine core
    works through its requests on its own, whatever the loop is doing meanwhile (building the
    next requests, writing outputs). ``inflight_s`` integrates the number of requests inside
    over time, so ``mean_inflight`` tells a starved engine from a full one. ``input_wait_s`` is
    time the loop sat blocked on its item source with the engine empty (decode not keeping up).
    """

    started: float = field(default_factory=time.perf_counter)
    finished: float | None = None
    steps: int = 0
    busy_s: float = 0.0
    input_wait_s: float = 0.0
    requests: int = 0  # engine requests submitted (stage 1 + stage 2)
    peak_inflight: int = 0
    inflight_s: float = 0.0  # integral of requests inside the engine over time
    _mark: float | None = field(default=None, repr=False)
    _inside: int = field(default=0, repr=False)

    def mark(self, inside: int) -> None:
        """Note that ``inside`` requests are in the engine from now on (busy/occupancy)."""
        now = time.perf_counter()
        if self._mark is not None:
            dt = now - self._mark
            if self._inside > 0:
                self.busy_s += dt
            self.inflight_s += self._inside * dt
        self._mark, self._inside = now, inside
        self.peak_inflight = max(self.peak_inflight, inside)

    @property
    def wall_s(self) -> float:
        end = self.finished if self.finished is not None else time.perf_counter()
        return max(end - self.started, 1e-9)

    @property
    def mean_inflight(self) -> float:
        """Average number of requests inside the engine over the run."""
        return self.inflight_s / self.wall_s

    @property
    def busy_fraction(self) -> float:
        """Share of the run's wall time the engine was working on requests."""
        return min(1.0, self.busy_s / self.wall_s)

    def to_dict(self) -> dict[str, float | int]:
        return {
            "wall_s": round(self.wall_s, 4),
            "busy_s": round(self.busy_s, 4),
            "busy_fraction": round(self.busy_fraction, 4),
            "input_wait_s": round(self.input_wait_s, 4),
            "steps": self.steps,
            "requests": self.requests,
            "peak_inflight": self.peak_inflight,
            "mean_inflight": round(self.mean_inflight, 2),
        }
