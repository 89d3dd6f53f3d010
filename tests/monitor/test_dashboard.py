"""The shipped Grafana board asks only for metrics that exist: the job endpoint's and those the
real vLLM engine of this test run exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from vlmcap.core.progress import Progress
from vlmcap.core.request import Completion
from vlmcap.monitor.exporter import MetricsEndpoint

BOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "vlmcap_dashboard.json"
METRIC = re.compile(r"\b(vlmcap_[a-z_]+|vllm:[a-z_:]+)")


def sample_names(text: str) -> set[str]:
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def board_metrics() -> set[str]:
    board = json.loads(BOARD.read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
    assert exprs
    return {m for e in exprs for m in METRIC.findall(e)}


def test_every_metric_on_the_board_exists(engine):
    live = Progress()
    live.submitted("r", "a.png", "stage1")
    live.finished("r", Completion(text="x", output_tokens=3))
    endpoint = MetricsEndpoint(live, "127.0.0.1", 0).start()
    try:
        ours = sample_names(httpx.get(endpoint.url, timeout=10).text)
    finally:
        endpoint.stop()
    vllm = sample_names(generate_latest(REGISTRY).decode())  # the session engine's metrics
    wanted = board_metrics()
    assert {m for m in wanted if m.startswith("vlmcap_")} <= ours
    assert {m for m in wanted if m.startswith("vllm:")} <= vllm
    assert len(wanted) >= 10
