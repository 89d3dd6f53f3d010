"""``vlmcap serve --snapshot-port``: the real server's health snapshot on its side port."""

from __future__ import annotations

import time

import httpx

from tests.client.conftest import MONITOR_INTERVAL_S


def test_snapshot_port_serves_json_and_text(server):
    base = f"http://127.0.0.1:{server.snapshot_port}"
    snapshot = httpx.get(base + "/snapshot", timeout=30).json()
    assert snapshot["healthy"] is True
    assert snapshot["requests_running"] == 0 and snapshot["requests_waiting"] == 0
    assert snapshot["kv_cache_usage_pct"] is not None
    assert snapshot["requests_swapped"] is None and snapshot["notes"]["requests_swapped"]
    text = httpx.get(base + "/snapshot.txt", timeout=30)
    assert text.headers["content-type"].startswith("text/plain")
    assert "requests" in text.text and "KV cache" in text.text
    assert httpx.get(base + "/elsewhere", timeout=30).status_code == 404


def test_monitor_interval_logs_the_servers_health(server):
    """``vlmcap serve --monitor-interval``: snapshots of the real server keep coming in its log."""
    marker = "vlmcap.monitor:"
    before = server.log_tail(10**9).count(marker)
    deadline = time.monotonic() + 4 * MONITOR_INTERVAL_S
    while server.log_tail(10**9).count(marker) < before + 2:
        assert time.monotonic() < deadline, server.log_tail()
        time.sleep(0.5)
    log = server.log_tail(10**9)
    last = log[log.rindex(marker) :]
    assert "requests" in last and "KV cache" in last
