"""``HealthSnapshot``: every missing figure carries a note, JSON and text views."""

from __future__ import annotations

import json

import pytest

from vlmcap.monitor import GpuStats, HealthSnapshot, LocalSource, ProcessMemory
from vlmcap.monitor.snapshot import NOT_AVAILABLE, UNREPORTED, Readings


def test_a_field_left_out_is_none_with_a_note():
    readings = Readings()
    readings.put("requests_running", 3, "")
    readings.put("kv_cache_usage_pct", None, "this vLLM does not expose vllm:kv_cache_usage_perc")
    snap = HealthSnapshot.from_readings("test", readings, timestamp=1.0)
    assert snap.requests_running == 3 and "requests_running" not in snap.notes
    assert snap.kv_cache_usage_pct is None
    assert "vllm:kv_cache_usage_perc" in snap.notes["kv_cache_usage_pct"]
    assert snap.requests_waiting is None and snap.notes["requests_waiting"] == UNREPORTED
    assert set(snap.missing()) <= set(snap.notes)
    assert snap.gpus == [] and snap.notes["gpus"]


def test_unknown_field_names_are_refused():
    readings = Readings()
    readings.put("requests_runing", 1, "")
    with pytest.raises(ValueError, match="requests_runing"):
        HealthSnapshot.from_readings("test", readings)


def test_a_real_local_snapshot_has_a_note_for_every_missing_figure():
    snap = LocalSource().snapshot()
    assert snap.ram_used_bytes is not None and snap.ram_total_bytes is not None
    assert 0 < snap.ram_used_bytes <= snap.ram_total_bytes
    assert snap.process_rss_bytes is not None and snap.process_rss_bytes > 0
    assert snap.threads is not None and snap.python_threads is not None
    assert snap.threads >= snap.python_threads >= 1
    missing = snap.missing()
    assert "requests_running" in missing  # no vLLM attached
    for name in missing:
        assert snap.notes.get(name), name


def test_json_and_text_views():
    readings = Readings()
    readings.put("requests_running", 2, "")
    readings.put("kv_cache_usage_pct", 12.5, "")
    readings.put("prefix_cache_hit_rate", 0.25, "")
    readings.put("engine_processes", [ProcessMemory(10, "VLLM::EngineCore", 2 * 1024**3)], "")
    readings.values["gpus"] = [
        GpuStats(0, "H200", 3 * 1024**3, 140 * 1024**3, 55.0, 61.0, 300.5, {}),
    ]
    snap = HealthSnapshot.from_readings("engine", readings, timestamp=1_700_000_000.0)
    data = json.loads(json.dumps(snap.to_dict()))
    assert data["requests_running"] == 2 and data["requests_waiting"] is None
    assert data["gpus"][0]["memory_total_bytes"] == 140 * 1024**3
    assert data["engine_rss_bytes"] == 2 * 1024**3
    assert data["notes"]["requests_waiting"] == UNREPORTED
    assert "gpus" not in data["notes"]  # there are readings
    text = snap.summary()
    assert "2 running" in text and f"{NOT_AVAILABLE} waiting" in text
    assert "KV cache 12.5%" in text and "prefix hits 25.0%" in text
    assert "GPU0 3.0/140.0 GiB" in text and "2.00 GiB (1 process)" in text
    labels = {label: (value, note) for label, value, note in snap.rows()}
    assert labels["requests waiting"] == (NOT_AVAILABLE, UNREPORTED)
    assert labels["KV cache used"] == ("12.5%", "")
