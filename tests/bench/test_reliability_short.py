"""The short version of ``bench/reliability.py``, run in CI: the parts no other test covers.

SIGINT to a running ``vlmcap caption`` (exit 130 by itself, lock released, rows whole), an
engine death with no restart left (exit 75, rows kept), a SIGKILL trial of
``vlmcap caption --server-url`` against one ``vlmcap serve``, and a small load on that server
from two client processes. Each resumes to every item exactly once with no process left.
SIGTERM, SIGKILL of the offline job and of ``vlmcap qa`` (on Ray, through the same store),
engine restarts and the corpus have their own tests (``tests/runtime/test_offline_end.py``,
``tests/pipeline/test_kill_resume.py``, ``tests/distributed/test_ray.py``,
``tests/pipeline/test_engine_restart.py``, ``tests/testing/test_corpus.py``); the full bench
(``bench/reliability.py``) runs 20 SIGKILL trials of each job kind, offline ``vlmcap qa``
among them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PARTS = ("sigint", "engine_lost", "client_sigkill", "server_load")
#: Seconds the whole short suite may take (about 6 minutes on 2 cores).
SUITE_TIMEOUT_S = 1800
LOAD_REQUESTS = 200
#: Pictures of each fault trial's dataset: enough for a few rows before each fault.
IMAGES = 60


def test_short_reliability_suite_loses_and_duplicates_nothing(tmp_path, cache_dir):
    out = tmp_path / "reliability.json"
    cmd = [sys.executable, "reliability.py", "--parts", ",".join(PARTS), "--kill-trials", "1",
           "--signal-trials", "1", "--images", str(IMAGES), "--load-clients", "2",
           "--load-requests", str(LOAD_REQUESTS), "--load-concurrency", "16",
           "--out", str(out)]  # fmt: skip
    env = {**os.environ, "VLMCAP_CACHE_DIR": str(cache_dir), "VLLM_LOGGING_LEVEL": "WARNING"}
    env.pop("OPENAI_API_KEY", None)
    proc = subprocess.run(
        cmd,
        cwd=ROOT / "bench",
        env=env,
        capture_output=True,
        text=True,
        timeout=SUITE_TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    for name in PARTS:
        part = result[name]
        assert part["lost"] == 0 and part["duplicated"] == 0, (name, part)
        assert part.get("failed", 0) == 0, (name, part)
        if name == "server_load":
            continue
        assert part["faults"] >= 1, (name, part)  # the fault did reach a running job
        assert part["processes_left_behind"] == 0, (name, part)
        assert part["unparsable_lines"] == 0 and part["duplicates_seen_after_a_fault"] == 0
        assert part["hung_runs"] == 0 and not part["lock_left"], (name, part)
        assert part["final_exit_code"] == 0, (name, part)
    sigint = result["sigint"]
    assert sigint["exit_statuses"] == [130] and sigint["lock_left_after_stop"] == 0
    lost = result["engine_lost"]
    assert lost["exit_status"] == lost["expected_exit_status"] == 75
    assert lost["rows_kept_at_stop"] >= 1
    load = result["server_load"]
    assert load["requests"] == LOAD_REQUESTS and load["client_exit_statuses"] == [0, 0]
    assert 0 < load["latency_s"]["p50"] <= load["latency_s"]["p95"] <= load["latency_s"]["p99"]
