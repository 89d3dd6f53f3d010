"""``bench/server_load.py`` against the session's real ``vlmcap serve``: two client processes
at once over 200 fresh pictures lose and duplicate nothing, and the latencies it reports are
ordered. (The full load, 2,000 requests from 4 clients, is ``bench/server_load.py`` itself.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.client.conftest import API_KEY, client_env

ROOT = Path(__file__).resolve().parents[2]
LOAD_REQUESTS = 200
CLIENTS = 2
#: Seconds the whole load may take on 2 cores (the clients' start-up included).
LOAD_TIMEOUT_S = 900


def test_two_client_processes_lose_and_duplicate_nothing(server, tmp_path, cache_dir):
    out = tmp_path / "server_load.json"
    cmd = [sys.executable, "server_load.py", "--server-url", server.url, "--api-key", API_KEY,
           "--requests", str(LOAD_REQUESTS), "--clients", str(CLIENTS), "--concurrency", "16",
           "--out", str(out)]  # fmt: skip
    proc = subprocess.run(
        cmd,
        cwd=ROOT / "bench",
        env=client_env(cache_dir),
        capture_output=True,
        text=True,
        timeout=LOAD_TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    load = json.loads(out.read_text())
    assert load["requests"] == LOAD_REQUESTS and load["client_exit_statuses"] == [0] * CLIENTS
    assert load["lost"] == 0 and load["duplicated"] == 0 and load["failed"] == 0
    assert 0 < load["latency_s"]["p50"] <= load["latency_s"]["p95"] <= load["latency_s"]["p99"]
    assert load["requests_per_s"] > 0 and load["server_start_s"] is None  # no server of its own


def test_a_load_aimed_off_this_machine_is_refused(tmp_path):
    proc = subprocess.run(
        [sys.executable, "server_load.py", "--server-url", "http://192.0.2.1:8000"],
        cwd=ROOT / "bench",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2 and "127.0.0.1" in proc.stderr
