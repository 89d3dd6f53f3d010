"""What ``vlmcap caption`` shows and logs, on the real engine: a quiet terminal by default
(vLLM's and PyTorch's output in the run log, their warnings listed once), JSON records in
``--log-file``, everything on the terminal with ``--log-preset development``. One engine start
per run (about a minute on a 2-core CPU)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from vlmcap.debug.log_digest import parse_line
from vlmcap.tiny.synthetic import make_dataset

RUN_TIMEOUT_S = 600
N_IMAGES = 4
#: What only vLLM's, PyTorch's and the loaders' own output contains.
RAW_MARKS = ("(EngineCore", "(MainProcess", "Loading safetensors", "[W1")


@dataclass
class CaptionRun:
    status: int
    stdout: str
    stderr: str
    out: Path

    @property
    def terminal(self) -> str:
        return self.stdout + self.stderr

    def run_logs(self) -> list[Path]:
        return sorted((self.out / "logs").glob("caption-*.log"))


def caption(tmp: Path, model: Path, cache: Path, *extra: str) -> CaptionRun:
    src = tmp / "src"
    make_dataset(src, n_images=N_IMAGES, n_videos=0, seed=5)
    (src / "ground_truth.jsonl").unlink()
    out = tmp / "out"
    cmd = [sys.executable, "-m", "vlmcap.cli", "caption", str(src), "-o", str(out)]
    cmd += ["--model", "tiny-qwen2.5-vl", "--model-path", str(model), "--enforce-eager"]
    cmd += ["--max-model-len", "2048", "--max-output-tokens", "8", *extra]
    env = {**os.environ, "VLMCAP_CACHE_DIR": str(cache), "VLLM_LOGGING_LEVEL": "INFO"}
    proc = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False
    )
    return CaptionRun(proc.returncode, proc.stdout, proc.stderr, out)


@pytest.fixture(scope="module")
def quiet(tmp_path_factory, tiny_model_path: Path, cache_dir: Path) -> CaptionRun:
    tmp = tmp_path_factory.mktemp("quiet")
    return caption(
        tmp, tiny_model_path, cache_dir,
        "--log-file", str(tmp / "records.jsonl"), "--log-json", "--log-steps",
    )  # fmt: skip


def test_the_terminal_holds_no_vllm_or_pytorch_lines(quiet: CaptionRun):
    assert quiet.status == 0, quiet.stderr[-3000:]
    raw = [
        line
        for line in quiet.terminal.splitlines()
        if parse_line(line) is not None or any(mark in line for mark in RAW_MARKS)
    ]
    assert not raw, raw
    assert "records:" in quiet.stdout  # the run's own summary is still there


def test_the_run_log_has_every_process_output_and_is_named_at_the_end(quiet: CaptionRun):
    (log,) = quiet.run_logs()
    assert quiet.stderr.rstrip().endswith(f"log: {log}")
    text = log.read_text(encoding="utf-8")
    assert "(EngineCore" in text  # the engine process's vLLM records
    assert " INFO vlmcap." in text  # and ours, in the same file
    assert any(parse_line(line) for line in text.splitlines())  # the warnings themselves


def test_warnings_are_summarised_once_on_the_terminal(quiet: CaptionRun):
    (log,) = quiet.run_logs()
    assert f"from vLLM/PyTorch (full text in {log})" in " ".join(quiet.stderr.split())
    listed = [
        line.strip() for line in quiet.stderr.splitlines() if re.match(r"\s+(vLLM|PyTorch) ", line)
    ]
    assert listed, quiet.stderr
    texts = [line.split(": ", 1)[1] for line in listed]
    assert len(texts) == len(set(texts))  # each notice once, whichever process said it


def test_log_file_json_holds_our_records_and_vllms(quiet: CaptionRun, tmp_path_factory):
    path = quiet.out.parent / "records.jsonl"
    entries = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert entries and {"time", "level", "logger", "message", "pid"} <= set(entries[0])
    loggers = {e["logger"] for e in entries}
    assert any(name.startswith("vllm") for name in loggers)  # vLLM's records routed here
    steps = [e["message"] for e in entries if e["logger"] == "vlmcap.steps"]
    assert steps and steps[0].startswith("step 1: ")  # --log-steps
    assert re.fullmatch(r"step \d+: \d+ inside, \d+ finished, \d+ tokens, [\d.]+ ms", steps[-1])
    finished = sum(int(re.search(r"(\d+) finished", s)[1]) for s in steps)  # type: ignore[index]
    assert finished == N_IMAGES


def test_development_preset_shows_everything_with_file_and_line(
    tmp_path: Path, tiny_model_path: Path, cache_dir: Path
):
    run = caption(tmp_path, tiny_model_path, cache_dir, "--log-preset", "development")
    assert run.status == 0, run.stderr[-3000:]
    assert "(EngineCore" in run.terminal  # nothing redirected
    assert re.search(r" DEBUG vlmcap\.\S+ \w+\.py:\d+: ", run.stderr)  # DEBUG, with file:line
    (log,) = run.run_logs()  # the run log still holds vlmcap's records
    assert " vlmcap." in log.read_text(encoding="utf-8")
