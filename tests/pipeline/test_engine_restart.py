"""The real engine dies mid-run: it is restarted, and nothing is lost or written twice.

The death is real: vLLM's EngineCore process gets SIGKILL, and vLLM's own client notices the
dead process and raises from ``step()``, as it does when the engine crashes on a CUDA error or
the host's out-of-memory killer takes it. An item that kills the engine every time (a poison
item) is tested on the real engine inside a Ray engine actor, which runs this same backend and
restarts (``tests/distributed/test_ray.py``), and with a scripted transport in
``tests/core/test_recovery.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil

from tests.runtime.procs import kill_all, snapshot, survivors, wait_for
from vlmcap.media.inputs import discover
from vlmcap.runtime.processes import engine_cores
from vlmcap.tiny.synthetic import make_dataset

#: Seconds a whole run (two engine starts on a 2-core machine) may take.
RUN_TIMEOUT_S = 420


def rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_killed_engine_is_restarted_and_the_job_finishes_every_item_once(tmp_path, cache_dir):
    src = tmp_path / "src"
    make_dataset(src, n_images=40, n_videos=0, seed=11)
    (src / "ground_truth.jsonl").unlink()
    keys = sorted(f.key for f in discover([src]))
    out = tmp_path / "out"
    env = {**os.environ, "VLMCAP_CACHE_DIR": str(cache_dir), "VLLM_LOGGING_LEVEL": "WARNING"}
    cmd = [sys.executable, "-m", "vlmcap.cli", "caption", str(src), "-o", str(out),
           "--model", "tiny-random-qwen2.5-vl", "--max-output-tokens", "8", "--enforce-eager",
           "--save-every", "1", "--max-inflight", "8", "--engine-restarts", "2"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    job = psutil.Process(proc.pid)
    seen: dict[int, psutil.Process] = {}
    try:
        wait_for(lambda: len(rows(out / "records.jsonl")) >= 3, RUN_TIMEOUT_S, "first rows")
        snapshot(job, seen)
        cores = engine_cores(job)
        assert len(cores) == 1, f"one engine process expected, found {cores}"
        cores[0].send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=RUN_TIMEOUT_S)
        snapshot_after = {p.pid for p in survivors(seen, 10)}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        kill_all(seen)
    log = err.decode(errors="replace")
    assert proc.returncode == 0, log[-3000:]
    written = rows(out / "records.jsonl")
    assert sorted(r["key"] for r in written) == keys  # every item exactly once
    assert all(r["status"] == "ok" for r in written)
    run_logs = "".join(p.read_text(errors="replace") for p in (out / "logs").glob("*.log"))
    assert "restarting the engine (restart 1 of 2)" in log + run_logs
    assert not snapshot_after, f"processes of the first engine left: {snapshot_after}"
