"""A job's progress in a snapshot: the run's live ``Progress`` (``vlmcap.core.progress``, which
the loop driver updates) and rates between two snapshots.

Without a ``Progress`` a source falls back to vLLM's own finished-request and generated-token
counters (server-wide, not one job's).
"""

from __future__ import annotations

import time

from vlmcap.core.progress import Progress
from vlmcap.monitor.prometheus import MetricValues
from vlmcap.monitor.snapshot import Readings
from vlmcap.monitor.vllm_metrics import GENERATION_TOKENS, REQUEST_SUCCESS, finished_requests

PROGRESS_FIELDS = (
    "items_done",
    "items_failed",
    "items_per_s",
    "output_tokens_per_s",
    "oldest_inflight_age_s",
)
#: Note of a rate on a source's first snapshot (or after its counters went back).
FIRST_SNAPSHOT = "no previous snapshot to compare with (first one, or the counters were reset)"
NO_COUNTERS = "no job progress attached (only a running job has one)"


class RateMeter:
    """Items/s and tokens/s between one call and the previous."""

    def __init__(self) -> None:
        self._previous: tuple[float, float, float] | None = None

    def rates(self, now: float, items: float, tokens: float) -> tuple[float | None, float | None]:
        """Rates since the previous call (``None, None`` on the first one, or a reset)."""
        previous, self._previous = self._previous, (now, items, tokens)
        if previous is None:
            return None, None
        dt = now - previous[0]
        if dt <= 0 or items < previous[1] or tokens < previous[2]:
            return None, None  # the same instant, or counters went back (a restarted server)
        return (items - previous[1]) / dt, (tokens - previous[2]) / dt


def progress_readings(
    progress: Progress | None,
    metrics: MetricValues | None,
    meter: RateMeter,
    now: float | None = None,
) -> Readings:
    """Progress fields from the job's ``progress``, else from vLLM's counters in ``metrics``.

    ``now`` (the ``progress`` clock's time) stands in for the moment of the view, in tests."""
    readings = Readings()
    if progress is not None:
        view = progress.view()
        readings.put("items_done", view.items_ok, "")
        readings.put("items_failed", view.items_failed, "")
        readings.put("oldest_inflight_age_s", view.oldest_age_s, "no request in flight")
        items: float = view.items_ok + view.items_failed
        tokens: float = view.output_tokens
        at = view.at if now is None else now
    else:
        readings.put("oldest_inflight_age_s", None, NO_COUNTERS)
        finished = finished_requests(metrics) if metrics is not None else None
        generated = metrics.total(GENERATION_TOKENS) if metrics is not None else None
        if finished is None or generated is None:
            why = NO_COUNTERS + (
                ""
                if metrics is None
                else f", and this vLLM lacks {REQUEST_SUCCESS} or {GENERATION_TOKENS}"
            )
            readings.absent(PROGRESS_FIELDS, why)
            return readings
        readings.put("items_done", round(finished[0]), "")
        readings.put("items_failed", round(finished[1]), "")
        readings.notes["items"] = f"vLLM's finished requests ({REQUEST_SUCCESS}), not one job's"
        items, tokens = finished[0] + finished[1], generated
        at = time.monotonic() if now is None else now
    items_rate, tokens_rate = meter.rates(at, items, tokens)
    readings.put("items_per_s", items_rate, FIRST_SNAPSHOT)
    readings.put("output_tokens_per_s", tokens_rate, FIRST_SNAPSHOT)
    return readings
