"""``vlmcap qa`` killed with SIGKILL mid-run and rerun: every question answered exactly once.

Runs against the session's real ``vlmcap serve`` (the random-weight model: the answers do not
matter here, the rows do), so the client starts in a second and can be killed at once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.client.conftest import API_KEY, MODEL, client_env
from vlmcap.qa.results import metrics_path, results_path
from vlmcap.tiny.qa_set import write_question_set

pytestmark = pytest.mark.engine

TIMEOUT_S = 300


def rows_of(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().split("\n")[:-1]]


def test_a_killed_qa_run_resumes_without_gaps_or_duplicates(server, tmp_path, cache_dir):
    set_path = write_question_set(tmp_path / "set", n_images=30, n_pairs=5, seed=13)
    out = tmp_path / "out"
    records = out / f"qa/{MODEL}/{MODEL}_qa_records.jsonl"
    cmd = [sys.executable, "-m", "vlmcap.cli", "qa", "--questions", str(set_path), "-o", str(out)]
    cmd += ["--server-url", server.url, "--api-key", API_KEY, "--concurrency", "1"]
    cmd += ["--max-output-tokens", "24", "--save-every", "2"]
    env = client_env(cache_dir)
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.monotonic() + TIMEOUT_S
    while len(rows_of(records)) < 5 and proc.poll() is None:
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.02)
    killed = proc.poll() is None
    if killed:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert killed, "the run finished before it could be killed"
    before = len(rows_of(records))
    assert 5 <= before < 40
    again = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
    )
    rows = rows_of(records)
    failed = any(r["status"] == "failed" for r in rows)
    assert again.returncode == (1 if failed else 0), again.stderr[-3000:]
    assert f"resuming: {before}" in " ".join(again.stderr.split())
    qids = sorted(r["key"] for r in rows)
    assert len(qids) == len(set(qids)) == 40  # every question once: no gap, no duplicate
    results = json.loads(results_path(out, MODEL).read_text())
    assert sorted(results) == qids
    metrics = json.loads(metrics_path(out, MODEL).read_text())
    assert metrics["total_questions"] == 40
    assert metrics["correct_answers"] == sum(r["is_correct"] for r in results.values())
    assert not (out / ".vlmcap.lock").exists()
