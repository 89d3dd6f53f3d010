"""The real engine dies mid-run: with no restart left the job stops (exit 75) and keeps its
rows; with restarts it is restarted, and nothing is lost or written twice.

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
from vlmcap.cli.job import ENGINE_LOST_STATUS
from vlmcap.media.inputs import discover
from vlmcap.runtime.processes import engine_cores
from vlmcap.tiny.synthetic import make_dataset

#: Seconds one run (up to two engine starts on a 2-core machine) may take.
RUN_TIMEOUT_S = 420


def rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def kill_engine_after(
    proc: subprocess.Popen[bytes], records: Path, n_rows: int, seen: dict[int, psutil.Process]
) -> None:
    """SIGKILL the job's one engine process once ``records`` holds ``n_rows`` rows."""
    job = psutil.Process(proc.pid)
    wait_for(lambda: len(rows(records)) >= n_rows, RUN_TIMEOUT_S, f"{n_rows} rows")
    snapshot(job, seen)
    cores = engine_cores(job)
    assert len(cores) == 1, f"one engine process expected, found {cores}"
    cores[0].send_signal(signal.SIGKILL)


def test_an_engine_death_stops_a_job_with_no_restart_left_and_a_restart_finishes_the_rerun(
    tmp_path, cache_dir
):
    """First run, ``--engine-restarts 0``: its engine is killed, the job stops by itself with
    exit status 75 and keeps its rows. The rerun resumes with restarts allowed; its engine is
    killed too, restarted, and the job finishes every item exactly once."""
    src = tmp_path / "src"
    make_dataset(src, n_images=40, n_videos=0, seed=11)
    (src / "ground_truth.jsonl").unlink()
    keys = sorted(f.key for f in discover([src]))
    out = tmp_path / "out"
    records = out / "records.jsonl"
    env = {**os.environ, "VLMCAP_CACHE_DIR": str(cache_dir), "VLLM_LOGGING_LEVEL": "WARNING"}
    cmd = [sys.executable, "-m", "vlmcap.cli", "caption", str(src), "-o", str(out),
           "--model", "tiny-random-qwen2.5-vl", "--max-output-tokens", "8", "--enforce-eager",
           "--save-every", "1", "--max-inflight", "8"]  # fmt: skip
    seen: dict[int, psutil.Process] = {}

    def start(restarts: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [*cmd, "--engine-restarts", str(restarts)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )

    first = start(0)
    try:
        kill_engine_after(first, records, 3, seen)
        _, err = first.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
    log = err.decode(errors="replace")
    assert first.returncode == ENGINE_LOST_STATUS, log[-3000:]
    kept = rows(records)
    assert 3 <= len(kept) < len(keys)
    assert len({r["key"] for r in kept}) == len(kept)
    assert not (out / ".vlmcap.lock").exists()

    second = start(2)
    try:
        kill_engine_after(second, records, len(kept) + 3, seen)
        _, err = second.communicate(timeout=RUN_TIMEOUT_S)
        left = {p.pid for p in survivors(seen, 10)}
    finally:
        if second.poll() is None:
            os.killpg(second.pid, signal.SIGKILL)
            second.wait()
        kill_all(seen)
    log = err.decode(errors="replace")
    assert second.returncode == 0, log[-3000:]
    written = rows(records)
    assert sorted(r["key"] for r in written) == keys  # every item exactly once
    assert all(r["status"] == "ok" for r in written)
    run_logs = "".join(p.read_text(errors="replace") for p in (out / "logs").glob("*.log"))
    assert "restarting the engine (restart 1 of 2)" in log + run_logs
    assert not left, f"processes of the killed engines left: {left}"
