"""The job's Prometheus endpoint, scraped for real while a run on the real engine is inside a
stalled request, and parsed with ``prometheus_client``'s own parser."""

from __future__ import annotations

import threading
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import engine_config
from tests.monitor.test_watchdog import STALL_S, images, stalling
from vlmcap.core.stats import LoopStats
from vlmcap.engine import iter_records
from vlmcap.monitor.exporter import MetricsEndpoint
from vlmcap.monitor.watch import watch_job
from vlmcap.options import MonitorOptions


def scrape(url: str) -> dict[str, float]:
    text = httpx.get(url, timeout=10).text
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return values


def test_metrics_scraped_during_and_after_a_run(engine, tiny_model_path):
    plugin, llm = engine
    stats = LoopStats()
    endpoint = MetricsEndpoint(stats.progress, "127.0.0.1", 0).start()
    during: dict[str, float] = {}

    def scrape_in_the_stall() -> None:
        time.sleep(STALL_S / 2)  # the second request is being built, the first is inside
        during.update(scrape(endpoint.url))

    scraper = threading.Thread(target=scrape_in_the_stall)
    try:
        scraper.start()
        slow = stalling(plugin, 2)
        # built on the loop's thread: the stall holds the loop with exactly one request inside
        config = engine_config(tiny_model_path, prepare_threads=0)
        records = list(iter_records(images(3), llm, slow, config, stats))
        scraper.join()
        after = scrape(endpoint.url)
    finally:
        endpoint.stop()
    assert during["vlmcap_requests_in_flight"] == 1
    assert during["vlmcap_stalled_seconds"] > 0
    assert during["vlmcap_oldest_request_age_seconds"] > 0
    assert after["vlmcap_requests_in_flight"] == 0
    assert after["vlmcap_items_total{outcome=ok}"] == 3
    assert after["vlmcap_requests_total"] == 3
    assert after["vlmcap_output_tokens_total"] == sum(r.output_tokens for r in records)
    assert after["vlmcap_request_seconds_count"] == 3
    assert after["vlmcap_request_seconds_bucket{le=+Inf}"] == 3
    assert after["vlmcap_request_seconds_sum"] > 0


def test_watch_job_serves_metrics_and_stops_them():
    from vlmcap.core.progress import Progress

    live = Progress()
    options = MonitorOptions(metrics_port=_free_port(), hang_timeout=0)
    url = f"http://127.0.0.1:{options.metrics_port}/metrics"
    with watch_job(live, options) as watchdog:
        assert watchdog is None  # --hang-timeout 0: no watchdog
        assert scrape(url)["vlmcap_hangs_total"] == 0
    try:
        httpx.get(url, timeout=2)
    except httpx.ConnectError:
        pass
    else:
        raise AssertionError("the metrics endpoint outlived the job")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
