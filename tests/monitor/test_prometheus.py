"""Prometheus text parsing, on the real exposition of the session engine's vLLM metrics."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY, generate_latest

from vlmcap.monitor.engine_source import metric_values
from vlmcap.monitor.prometheus import parse_text
from vlmcap.monitor.vllm_metrics import (
    E2E_LATENCY,
    GENERATION_TOKENS,
    KV_CACHE_USAGE,
    REQUEST_SUCCESS,
    REQUESTS_RUNNING,
    REQUESTS_WAITING,
    TIME_TO_FIRST_TOKEN,
    engine_readings,
    not_exposed,
)


@pytest.fixture
def vllm_text(engine) -> str:
    """vLLM's metrics in the text format a server's /metrics serves (same registry code)."""
    text = generate_latest(REGISTRY).decode()
    assert "vllm:num_requests_running" in text
    return text


@pytest.mark.engine
def test_text_and_get_metrics_agree(engine, vllm_text):
    _, llm = engine
    parsed, offline = parse_text(vllm_text), metric_values(llm.get_metrics())
    for name in (REQUESTS_RUNNING, REQUESTS_WAITING, KV_CACHE_USAGE, GENERATION_TOKENS):
        assert parsed.total(name) == offline.total(name), name
    assert parsed.total(REQUEST_SUCCESS) == offline.total(REQUEST_SUCCESS)
    for name in (TIME_TO_FIRST_TOKEN, E2E_LATENCY):
        assert parsed.histogram_totals(name) == offline.histogram_totals(name), name
    # counters are named without _total, as get_metrics() names them
    assert parsed.total(GENERATION_TOKENS + "_total") == parsed.total(GENERATION_TOKENS)


@pytest.mark.engine
def test_a_renamed_metric_becomes_none_with_a_note(vllm_text):
    renamed = vllm_text.replace(REQUESTS_WAITING + "{", "vllm:num_requests_queued{").replace(
        f" {REQUESTS_WAITING} ", " vllm:num_requests_queued "
    )
    assert REQUESTS_WAITING + "{" not in renamed
    readings = engine_readings(parse_text(renamed))
    assert readings.values["requests_waiting"] is None
    assert readings.notes["requests_waiting"] == not_exposed(REQUESTS_WAITING)
    assert readings.values["requests_running"] is not None  # the others still read
    assert readings.values["kv_cache_usage_pct"] is not None


def test_sums_over_label_sets_and_histogram_means():
    text = """\
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0"} 3.0
vllm:num_requests_running{engine="1"} 4.0
# TYPE vllm:request_success counter
vllm:request_success_total{finished_reason="stop"} 5.0
vllm:request_success_total{finished_reason="length"} 2.0
vllm:request_success_total{finished_reason="abort"} 1.0
vllm:request_success_created{finished_reason="stop"} 1.7e9
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{le="0.1"} 1.0
vllm:time_to_first_token_seconds_bucket{le="+Inf"} 4.0
vllm:time_to_first_token_seconds_count 4.0
vllm:time_to_first_token_seconds_sum 2.0
# TYPE vllm:e2e_request_latency_seconds histogram
vllm:e2e_request_latency_seconds_bucket{le="+Inf"} 0.0
vllm:e2e_request_latency_seconds_count 0.0
vllm:e2e_request_latency_seconds_sum 0.0
"""
    metrics = parse_text(text)
    assert metrics.total(REQUESTS_RUNNING) == 7.0
    assert metrics.total(REQUEST_SUCCESS) == 8.0  # _created samples are not counted
    readings = engine_readings(metrics)
    assert readings.values["requests_running"] == 7
    assert readings.values["mean_time_to_first_token_s"] == 0.5
    assert readings.values["mean_e2e_latency_s"] is None
    assert "no observations" in readings.notes["mean_e2e_latency_s"]
    assert readings.values["kv_cache_usage_pct"] is None
    assert readings.notes["kv_cache_usage_pct"] == not_exposed(KV_CACHE_USAGE)


def test_malformed_text_is_a_value_error():
    with pytest.raises(ValueError):
        parse_text("vllm:num_requests_running{ 3")
