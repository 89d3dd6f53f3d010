"""Where the time of one loop run went, measured the same way on every transport."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from vlmcap.core.progress import Progress


@dataclass
class LoopStats:
    """Filled in by the loop driver as it runs; read by the pipeline and the benchmarks.

    ``busy_s`` is wall time with at least one request inside the transport (vLLM's engine core,
    or a server, works through its requests whatever the loop is doing meanwhile).
    ``inflight_s`` integrates the number of requests inside over time, so ``mean_inflight``
    tells a starved engine from a full one. ``input_wait_s`` is time the loop sat blocked on
    its item source with nothing inside (decode not keeping up). ``requests`` counts requests
    submitted (stage 1 + stage 2), ``replies`` requests finished; ``engine_steps`` counts
    ``engine.step()`` calls and stays ``None`` on a transport without steps (a server).
    ``progress`` is the live view other threads read while the run goes on.
    """

    started: float = field(default_factory=time.perf_counter)
    finished: float | None = None
    busy_s: float = 0.0
    input_wait_s: float = 0.0
    requests: int = 0
    replies: int = 0
    engine_steps: int | None = None
    peak_inflight: int = 0
    inflight_s: float = 0.0  # integral of requests inside over time
    progress: Progress = field(default_factory=Progress, repr=False, compare=False)
    _mark: float | None = field(default=None, repr=False)
    _inside: int = field(default=0, repr=False)

    def mark(self, inside: int) -> None:
        """Note that ``inside`` requests are inside the transport from now on."""
        now = time.perf_counter()
        if self._mark is not None:
            dt = now - self._mark
            if self._inside > 0:
                self.busy_s += dt
            self.inflight_s += self._inside * dt
        self._mark, self._inside = now, inside
        self.peak_inflight = max(self.peak_inflight, inside)

    def stop(self) -> None:
        """The run is over: close the open interval and fix the wall time."""
        self.mark(0)
        self.finished = time.perf_counter()

    @property
    def wall_s(self) -> float:
        end = self.finished if self.finished is not None else time.perf_counter()
        return max(end - self.started, 1e-9)

    @property
    def mean_inflight(self) -> float:
        """Average number of requests inside the transport over the run."""
        return self.inflight_s / self.wall_s

    @property
    def busy_fraction(self) -> float:
        """Share of the run's wall time with requests inside the transport."""
        return min(1.0, self.busy_s / self.wall_s)

    def to_dict(self) -> dict[str, float | int | None]:
        return {
            "wall_s": round(self.wall_s, 4),
            "busy_s": round(self.busy_s, 4),
            "busy_fraction": round(self.busy_fraction, 4),
            "input_wait_s": round(self.input_wait_s, 4),
            "requests": self.requests,
            "replies": self.replies,
            "engine_steps": self.engine_steps,
            "peak_inflight": self.peak_inflight,
            "mean_inflight": round(self.mean_inflight, 2),
        }
