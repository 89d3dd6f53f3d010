"""``vlmcap caption`` killed with SIGKILL mid-run, then resumed: no gaps, no duplicates.

The first kill takes the CLI alone (the OOM killer): its child guard must stop vLLM's engine
processes within seconds. The second kills the whole process group (the CLI and vLLM's engine
processes), as a scheduler kills a job. Each next run must take over the dead job's lock and
finish exactly the missing items.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from tests.runtime.procs import kill_all, snapshot, survivors
from vlmcap.media.inputs import discover
from vlmcap.runtime import processes
from vlmcap.tiny.synthetic import make_dataset

#: Seconds within which the engine of a killed CLI must be gone (the guard's SIGTERM grace is
#: 5 s; then SIGKILL).
ENGINE_GONE_S = 20.0


def complete_lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")[:-1]  # a torn last line (no newline yet) is not a row
    return [json.loads(line) for line in lines]


def start(src: Path, config: Path, out: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "vlmcap.cli", "caption", str(src), "-c", str(config)]
    cmd += ["-o", str(out), "--save-every", "2", "--workers", "2"]
    return subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: killed together like a batch job
    )


def kill_the_cli_alone(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the CLI only, as the OOM killer takes it: its child guard must stop the engine
    core and its workers within ``ENGINE_GONE_S``."""
    seen: dict[int, psutil.Process] = {}
    snapshot(psutil.Process(proc.pid), seen)
    assert any(processes.is_vllm(p) for p in seen.values()), "no engine process seen"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    left = survivors(seen, ENGINE_GONE_S)
    kill_all(seen)
    assert not left, [processes.describe(p) for p in left]


def test_killed_runs_resume_without_gaps_or_duplicates(tmp_path, tiny_model_path, cache_dir):
    rng = random.Random(20261123)
    src = tmp_path / "src"
    make_dataset(src, n_images=16, n_videos=4, seed=5, seconds=1.0, fps=8)
    (src / "ground_truth.jsonl").unlink()
    keys = sorted(f.key for f in discover([src]))
    config = tmp_path / "run.yaml"
    config.write_text(
        f"model: tiny-qwen2.5-vl\nmodel_path: {tiny_model_path}\nmax_output_tokens: 24\n"
        "enforce_eager: true\nmax_inflight: 2\n"
    )
    out = tmp_path / "out"
    records = out / "records.jsonl"
    env = {**os.environ, "VLMCAP_CACHE_DIR": str(cache_dir), "VLLM_LOGGING_LEVEL": "WARNING"}
    kills = 0
    for _ in range(2):
        before = len(complete_lines(records))
        target = before + rng.randint(1, 4)
        proc = start(src, config, out, env)
        deadline = time.monotonic() + 300
        while len(complete_lines(records)) < target and proc.poll() is None:
            assert time.monotonic() < deadline, "no progress"
            time.sleep(0.05)
        time.sleep(rng.uniform(0, 0.5))  # a random instant after the target
        if proc.poll() is None:
            if kills == 0:
                kill_the_cli_alone(proc)
            else:
                os.killpg(proc.pid, signal.SIGKILL)  # the whole job, as a scheduler kills it
            kills += 1
        proc.wait(timeout=60)
        # valid files after the kill: complete lines parse; the map holds only written rows
        rows = complete_lines(records)
        ok = {r["key"]: r["caption"] for r in rows if r["status"] == "ok"}
        cmap_path = out / "captions/tiny-qwen2.5-vl/tiny-qwen2.5-vl_default.json"
        if cmap_path.exists():
            cmap = json.loads(cmap_path.read_text())
            assert set(cmap) <= set(ok)
            assert all(ok[k] == v for k, v in cmap.items())
    assert kills >= 1
    final = start(src, config, out, env)
    _, stderr = final.communicate(timeout=600)
    rows = complete_lines(records)
    failed = any(r["status"] == "failed" for r in rows)
    assert final.returncode == (1 if failed else 0), stderr.decode()[-3000:]
    written = [r["key"] for r in rows]
    assert sorted(written) == keys  # every file exactly once: no gap, no duplicate
    cmap = json.loads((out / "captions/tiny-qwen2.5-vl/tiny-qwen2.5-vl_default.json").read_text())
    assert cmap == {r["key"]: r["caption"] for r in rows if r["status"] == "ok"}
    assert not (out / ".vlmcap.lock").exists()
