"""``vlmcap serve --snapshot-port``: the real server's health snapshot on its side port."""

from __future__ import annotations

import httpx


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
