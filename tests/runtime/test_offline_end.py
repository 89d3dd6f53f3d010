"""How an offline ``vlmcap caption`` ends, against its real vLLM engine processes.

- SIGTERM mid-run (``kill``, a scheduler's stop): exit status 143, intact records, lock
  released, no process left;
- SIGINT mid-run of the rerun that resumes it (Ctrl-C): the same, with exit status 130, and
  nothing written twice;
- a normal end (the last rerun): every item once, the engine shut down explicitly, without
  vLLM's shutdown warnings.

SIGKILL of the CLI alone after its engine started (a SLURM time limit, the OOM killer), where
the child guard must stop the engine core and its workers within seconds, is the first kill of
``tests/pipeline/test_kill_resume.py``. Each run starts one engine (about 45 s on a 2-core CPU
machine), three in all.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.runtime.procs import kill_all, snapshot, survivors
from vlmcap.runtime import processes
from vlmcap.tiny.synthetic import make_dataset

#: Seconds for the engine to start (tiny model, CPU, shared machine).
START_TIMEOUT_S = 300.0
#: Seconds within which every process of a killed run must be gone (the guard's SIGTERM grace
#: is 5 s; then SIGKILL).
GONE_WITHIN_S = 20.0
#: Seconds for a signalled or finishing run to exit (the engine's shutdown takes about 6 s).
EXIT_TIMEOUT_S = 120.0
#: Images captioned, one request inside the engine at a time: a run that lasts long enough to
#: be stopped in the middle.
N_IMAGES = 24
POLL_S = 0.1
#: vLLM's shutdown warnings: "[shutdown] Process manager: force killing remaining process
#: EngineCore", "[shutdown] MPClient: engine core exited unexpectedly; starting cleanup", ...
SHUTDOWN_MARK = "[shutdown]"
QUIET_END_MARK = "[shutdown] MPClient: complete"


@pytest.fixture
def images(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    make_dataset(src, n_images=N_IMAGES, n_videos=0, seed=11)
    (src / "ground_truth.jsonl").unlink()
    return src


class Run:
    """One ``python -m vlmcap.cli caption`` and every process seen below it."""

    def __init__(self, src: Path, out: Path, model: Path, cache: Path, log: Path) -> None:
        cmd = [sys.executable, "-m", "vlmcap.cli", "caption", str(src), "-o", str(out)]
        cmd += ["--model", "tiny-random-qwen2.5-vl", "--model-path", str(model)]
        cmd += ["--enforce-eager", "--max-model-len", "2048", "--max-output-tokens", "16"]
        cmd += ["--max-inflight", "1", "--save-every", "1", "--workers", "1"]
        env = {**os.environ, "VLMCAP_CACHE_DIR": str(cache), "VLLM_LOGGING_LEVEL": "INFO"}
        self.log = log
        self._log_file = log.open("w")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._log_file, stderr=subprocess.STDOUT)
        self.seen: dict[int, psutil.Process] = {}
        self.records = out / "records.jsonl"
        self.logs = out / "logs"
        self.lock = out / ".vlmcap.lock"
        self._earlier_logs = set(self.logs.glob("*.log"))  # an earlier run's, in the same folder

    def look(self) -> None:
        if self.proc.poll() is None:
            snapshot(psutil.Process(self.proc.pid), self.seen)

    def has(self, mark: str) -> bool:
        return any(mark in processes.command_line(p) for p in self.seen.values())

    def wait_until(self, condition: object, what: str) -> None:
        assert callable(condition)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not condition():
            assert self.proc.poll() is None, f"the run ended first:\n{self.output()[-3000:]}"
            assert time.monotonic() < deadline, f"no {what} after {START_TIMEOUT_S:.0f} s"
            self.look()
            time.sleep(POLL_S)
        self.look()

    def wait_exit(self) -> int:
        deadline = time.monotonic() + EXIT_TIMEOUT_S
        while self.proc.poll() is None:
            assert time.monotonic() < deadline, "the run did not exit"
            self.look()
            time.sleep(POLL_S)
        return self.proc.returncode

    def rows(self) -> list[dict]:
        text = self.records.read_text(encoding="utf-8") if self.records.exists() else ""
        return [json.loads(line) for line in text.split("\n")[:-1]]

    def output(self) -> str:
        """What the run printed, then its run logs (vLLM's and the child guard's lines)."""
        self._log_file.flush()
        text = self.log.read_text(encoding="utf-8", errors="replace")
        for path in sorted(set(self.logs.glob("*.log")) - self._earlier_logs):
            text += path.read_text(encoding="utf-8", errors="replace")
        return text

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        kill_all(self.seen)
        self._log_file.close()


def start(tmp_path: Path, src: Path, model: Path, cache: Path, name: str = "run") -> Run:
    return Run(src, tmp_path / "out", model, cache, tmp_path / f"{name}.log")


def stop_mid_run(run: Run, sig: signal.Signals, status: int, done_before: int) -> list[dict]:
    """Send ``sig`` once the run has written a row of its own; what must hold after it."""
    run.wait_until(lambda: len(run.rows()) > done_before, "record")
    run.proc.send_signal(sig)
    assert run.wait_exit() == status, run.output()[-3000:]
    text = run.records.read_text(encoding="utf-8")
    assert text.endswith("\n")  # no torn last line
    rows = run.rows()
    keys = [r["key"] for r in rows]
    assert done_before < len(rows) < N_IMAGES, "the signal arrived after the run's end"
    assert len(set(keys)) == len(keys)  # what the earlier run wrote is not written again
    assert not run.lock.exists()
    assert f"{sig.name}: stopped" in run.output()
    # Whether the run's own shutdown or the child guard stopped the last engine process
    # depends on timing under load (both were seen); what must hold: nothing survives.
    assert not survivors(run.seen, GONE_WITHIN_S)
    return rows


def test_sigterm_then_sigint_stop_runs_cleanly_and_the_last_rerun_ends_quietly(
    tmp_path: Path, images: Path, tiny_model_path: Path, cache_dir: Path
) -> None:
    done = 0
    for name, sig, status in (("run", signal.SIGTERM, 143), ("rerun", signal.SIGINT, 130)):
        run = start(tmp_path, images, tiny_model_path, cache_dir, name=name)
        try:
            done = len(stop_mid_run(run, sig, status, done))
        finally:
            run.cleanup()

    rerun = start(tmp_path, images, tiny_model_path, cache_dir, name="last")
    try:
        assert rerun.wait_exit() == 0, rerun.output()[-3000:]
        out = rerun.output()
        assert QUIET_END_MARK in out  # the engine was shut down explicitly...
        noisy = [line for line in out.splitlines() if SHUTDOWN_MARK in line and "WARNING" in line]
        assert not noisy, noisy  # ...and quietly
        assert "exited unexpectedly" not in out
        assert "vlmcap guard" not in out
        rows = rerun.rows()
        assert sorted(r["key"] for r in rows) == sorted({r["key"] for r in rows})
        assert len(rows) == N_IMAGES
        assert not survivors(rerun.seen, GONE_WITHIN_S)
    finally:
        rerun.cleanup()
