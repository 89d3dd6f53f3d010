"""vLLM V1's metric names, and the snapshot fields they give.

The same names come from a server's ``/metrics`` and from ``LLM.get_metrics()`` offline. A
metric this vLLM does not expose (renamed, removed, or not there yet) leaves its field ``None``
with a note naming the metric; nothing here raises on a missing metric.
"""

from __future__ import annotations

from vlmcap.monitor.prometheus import Labels, MetricValues
from vlmcap.monitor.snapshot import Readings

REQUESTS_RUNNING = "vllm:num_requests_running"
REQUESTS_WAITING = "vllm:num_requests_waiting"
#: Only vLLM V0 swapped requests out to CPU memory; V1 has no such metric.
REQUESTS_SWAPPED = "vllm:num_requests_swapped"
#: A fraction (1.0 = full), despite the name.
KV_CACHE_USAGE = "vllm:kv_cache_usage_perc"
PREFIX_CACHE_QUERIES = "vllm:prefix_cache_queries"
PREFIX_CACHE_HITS = "vllm:prefix_cache_hits"
PREEMPTIONS = "vllm:num_preemptions"
GENERATION_TOKENS = "vllm:generation_tokens"
#: Finished requests, labelled by ``finished_reason``.
REQUEST_SUCCESS = "vllm:request_success"
TIME_TO_FIRST_TOKEN = "vllm:time_to_first_token_seconds"
E2E_LATENCY = "vllm:e2e_request_latency_seconds"
QUEUE_TIME = "vllm:request_queue_time_seconds"
INTER_TOKEN_LATENCY = "vllm:inter_token_latency_seconds"
#: ``finished_reason`` values of ``vllm:request_success`` that mean the request failed.
FAILED_REASONS = frozenset({"abort", "error"})
FINISH_REASON_LABEL = "finished_reason"

#: Snapshot field -> histogram whose mean it is.
LATENCY_MEANS = {
    "mean_time_to_first_token_s": TIME_TO_FIRST_TOKEN,
    "mean_e2e_latency_s": E2E_LATENCY,
    "mean_queue_time_s": QUEUE_TIME,
    "mean_inter_token_latency_s": INTER_TOKEN_LATENCY,
}
#: Fields that come from vLLM's metrics (``None`` with one note when there are none).
ENGINE_FIELDS = (
    "requests_running",
    "requests_waiting",
    "requests_swapped",
    "kv_cache_usage_pct",
    "prefix_cache_hit_rate",
    "preemptions",
    *LATENCY_MEANS,
)


def not_exposed(name: str) -> str:
    return f"this vLLM does not expose {name}"


def engine_readings(metrics: MetricValues) -> Readings:
    """The snapshot fields vLLM's metrics give (see the module docstring)."""
    readings = Readings()
    for field_name, metric in (
        ("requests_running", REQUESTS_RUNNING),
        ("requests_waiting", REQUESTS_WAITING),
        ("preemptions", PREEMPTIONS),
    ):
        value = metrics.total(metric)
        readings.put(field_name, None if value is None else round(value), not_exposed(metric))
    swapped = metrics.total(REQUESTS_SWAPPED)
    readings.put(
        "requests_swapped",
        None if swapped is None else round(swapped),
        "vLLM V1 does not swap requests out (no such metric)",
    )
    usage = metrics.total(KV_CACHE_USAGE)
    readings.put(
        "kv_cache_usage_pct", None if usage is None else 100.0 * usage, not_exposed(KV_CACHE_USAGE)
    )
    _prefix_hit_rate(metrics, readings)
    for field_name, histogram in LATENCY_MEANS.items():
        totals = metrics.histogram_totals(histogram)
        if totals is None:
            readings.put(field_name, None, not_exposed(histogram))
        elif totals[0] <= 0:
            readings.put(field_name, None, f"no observations in {histogram} yet")
        else:
            readings.put(field_name, totals[1] / totals[0], "")
    return readings


def finished_requests(metrics: MetricValues) -> tuple[float, float] | None:
    """``(succeeded, failed)`` requests over the engine's life; ``None`` if not exposed."""
    done = metrics.total(REQUEST_SUCCESS, lambda labels: not _failed(labels))
    failed = metrics.total(REQUEST_SUCCESS, _failed)
    if done is None or failed is None:
        return None
    return done, failed


def _failed(labels: Labels) -> bool:
    return labels.get(FINISH_REASON_LABEL) in FAILED_REASONS


def _prefix_hit_rate(metrics: MetricValues, readings: Readings) -> None:
    queries = metrics.total(PREFIX_CACHE_QUERIES)
    hits = metrics.total(PREFIX_CACHE_HITS)
    if queries is None or hits is None:
        missing = PREFIX_CACHE_QUERIES if queries is None else PREFIX_CACHE_HITS
        readings.put("prefix_cache_hit_rate", None, not_exposed(missing))
    elif queries <= 0:
        readings.put("prefix_cache_hit_rate", None, "no prefix-cache lookups yet")
    else:
        readings.put("prefix_cache_hit_rate", hits / queries, "")
