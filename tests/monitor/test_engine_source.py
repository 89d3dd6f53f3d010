"""Snapshots of the session's real offline engine (``LLM.get_metrics()``), taken between steps."""

from __future__ import annotations

from typing import Any

import pytest
from vllm import SamplingParams

from vlmcap.core.progress import Progress
from vlmcap.core.request import Completion
from vlmcap.monitor import EngineSource, HealthSnapshot
from vlmcap.monitor.engine_source import STATS_OFF, read_engine_metrics
from vlmcap.monitor.vllm_metrics import (
    E2E_LATENCY,
    GENERATION_TOKENS,
    KV_CACHE_USAGE,
    REQUESTS_RUNNING,
    REQUESTS_SWAPPED,
    REQUESTS_WAITING,
    TIME_TO_FIRST_TOKEN,
)

pytestmark = pytest.mark.engine

BATCH = 8
MAX_TOKENS = 48


@pytest.fixture
def engine(engine: tuple[Any, Any]) -> tuple[Any, Any]:
    """The session engine, while vLLM's metrics registry in this process is still its own."""
    metrics, why = read_engine_metrics(engine[1])
    if metrics is None and "another engine" in why:
        pytest.fail(
            f"an LLM started earlier in the run than these tests owns vLLM's metrics: {why}. "
            "A test module that starts its own offline engine must sort after tests/monitor "
            "(e.g. under tests/plugins/), so these tests see the session engine's metrics"
        )
    return engine


def run_batch(llm: Any, progress: Progress, source: EngineSource) -> list[HealthSnapshot]:
    """Add a batch and step it to its end, with a snapshot after each step but the last.

    ``add_request`` hands requests to the engine core process asynchronously, so the first
    steps may see only part of the batch.
    """
    core = llm.llm_engine
    params = SamplingParams(max_tokens=MAX_TOKENS, ignore_eos=True, temperature=0.0)
    ids = [f"monitor-{i}" for i in range(BATCH)]
    left = set(ids)
    snapshots = []

    def settle(outputs: list[Any]) -> None:
        for out in outputs:
            if out.finished and out.request_id in left:
                left.discard(out.request_id)
                tokens = len(out.outputs[0].token_ids)
                progress.finished(out.request_id, Completion(text="x", output_tokens=tokens))
                progress.item_done(True)

    try:
        for request_id in ids:
            core.add_request(request_id, {"prompt": "a red circle on a blue square"}, params)
            progress.submitted(request_id, request_id, "stage1")
        while left and core.has_unfinished_requests():
            settle(core.step())
            if left:
                snapshots.append(source.snapshot())
    finally:
        if left:
            core.abort_request(list(left))
    assert not left
    return snapshots


def busiest(snapshots: list[HealthSnapshot]) -> HealthSnapshot:
    """The snapshot with the most requests inside, before any had finished."""
    early = [s for s in snapshots if s.items_done == 0]
    assert early
    return max(early, key=lambda s: (s.requests_running or 0) + (s.requests_waiting or 0))


def test_snapshot_while_a_batch_is_in_flight(engine):
    _, llm = engine
    progress = Progress()
    source = EngineSource(llm, progress)
    before = source.snapshot()
    during = busiest(run_batch(llm, progress, source))
    after = source.snapshot()

    assert during.requests_running is not None and during.requests_waiting is not None
    assert during.requests_running + during.requests_waiting >= BATCH // 2, during.summary()
    assert during.kv_cache_usage_pct is not None and during.kv_cache_usage_pct > 0
    assert during.oldest_inflight_age_s is not None and during.oldest_inflight_age_s > 0
    assert during.items_done == 0 and during.items_failed == 0
    assert during.items_per_s == 0.0  # measured since the previous snapshot: none finished

    assert after.items_done == BATCH and after.items_failed == 0
    assert after.oldest_inflight_age_s is None
    assert "no request in flight" in after.notes["oldest_inflight_age_s"]
    assert after.items_per_s is not None and after.items_per_s > 0
    assert after.output_tokens_per_s is not None and after.output_tokens_per_s > 0
    assert after.mean_time_to_first_token_s is not None and after.mean_time_to_first_token_s > 0
    assert after.mean_e2e_latency_s is not None
    assert after.requests_swapped is None and "V1" in after.notes["requests_swapped"]
    assert after.healthy is None and after.notes["healthy"]
    assert after.engine_processes and after.engine_rss_bytes
    assert before.items_per_s is None  # the first snapshot has nothing to compare with


def test_vllm_counters_stand_in_without_job_progress(engine):
    _, llm = engine
    source = EngineSource(llm)
    first = source.snapshot()
    run_batch(llm, Progress(), source)
    second = source.snapshot()
    assert first.items_done is not None and second.items_done is not None
    assert second.items_done - first.items_done == BATCH  # vllm:request_success
    assert second.output_tokens_per_s is not None and second.output_tokens_per_s > 0
    assert "vllm:request_success" in second.notes["items"]
    assert second.oldest_inflight_age_s is None
    assert "no job progress" in second.notes["oldest_inflight_age_s"]


def test_the_cpu_engine_exposes_the_v1_metric_names(engine):
    _, llm = engine
    metrics, why = read_engine_metrics(llm)
    assert metrics is not None, why
    names = metrics.names()
    for name in (REQUESTS_RUNNING, REQUESTS_WAITING, KV_CACHE_USAGE, GENERATION_TOKENS):
        assert name in names
    assert {TIME_TO_FIRST_TOKEN, E2E_LATENCY} <= set(metrics.histograms)
    assert REQUESTS_SWAPPED not in names


def test_stats_logging_off_gives_none_with_the_fix_in_the_note(engine, monkeypatch):
    _, llm = engine
    monkeypatch.setattr(llm.llm_engine, "log_stats", False)  # as LLM(...) builds it by default
    snap = EngineSource(llm).snapshot()
    for name in ("requests_running", "requests_waiting", "kv_cache_usage_pct"):
        assert getattr(snap, name) is None
        assert snap.notes[name] == STATS_OFF
    assert "disable_log_stats=False" in STATS_OFF
    assert snap.process_rss_bytes is not None  # the rest is still measured


def test_metrics_of_another_engine_are_not_taken_for_this_one(engine, monkeypatch):
    _, llm = engine
    real_name = llm.llm_engine.model_config.served_model_name
    monkeypatch.setattr(llm.llm_engine.model_config, "served_model_name", "another-model")
    snap = EngineSource(llm).snapshot()
    assert snap.requests_running is None
    note = snap.notes["requests_running"]
    assert "another engine's" in note and real_name in note
