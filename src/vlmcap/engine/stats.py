"""Where the time of one engine-loop run went: engine steps vs waiting for input."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class LoopStats:
    """Filled in by the engine loops as they run; read by the pipeline and the benchmarks.

    ``busy_s`` is wall time inside the engine with requests in it (``engine.step`` in the
    in-flight loop, ``LLM.generate`` in fixed batches); ``input_wait_s`` is time the loop sat
    blocked on its item source with the engine empty (decode not keeping up).
    """

    started: float = field(default_factory=time.perf_counter)
    finished: float | None = None
    steps: int = 0
    busy_s: float = 0.0
    input_wait_s: float = 0.0
    requests: int = 0  # engine requests submitted (stage 1 + stage 2)
    peak_inflight: int = 0

    @property
    def wall_s(self) -> float:
        end = self.finished if self.finished is not None else time.perf_counter()
        return max(end - self.started, 1e-9)

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
        }
