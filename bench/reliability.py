"""Reliability figures: the bad-input corpus through ``vlmcap caption``, and SIGKILL trials.

    .venv/bin/python bench/reliability.py [--kill-trials 20] [--seed 20261202]

1. **Corpus**: ``vlmcap caption`` (a subprocess, the built-in random tiny model) over the
   media area of ``vlmcap.testing.corpus``; each kind's outcome against the one it must give.
2. **SIGKILL trials**: one output folder, a dataset of pictures and clips; each trial starts
   ``vlmcap caption`` (resuming what the earlier trials left), waits until a seeded number of
   new rows are written, then kills its whole process group at a seeded instant, as a batch
   scheduler does. After each kill: every complete line parses, no key is written twice, and no
   process of the killed job is left. A last run finishes the job; lost and duplicated items
   are counted over the whole dataset.

Writes ``bench/results/reliability.json``. The tests run the same corpus and a two-kill trial
(``tests/testing/test_corpus.py``, ``tests/pipeline/test_kill_resume.py``); this runs more.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil

from common import machine_info, write_result
from vlmcap.media.inputs import discover
from vlmcap.testing.corpus import media_outcome, write_corpus
from vlmcap.tiny.synthetic import make_dataset

MODEL = "tiny-random-qwen2.5-vl"
#: Seconds one run may take before the trial counts as hung.
RUN_TIMEOUT_S = 600
#: Seconds the killed job's processes get to be gone.
GONE_S = 10.0
#: New rows a trial waits for before it kills, at most (at least one).
MAX_ROWS_PER_TRIAL = 3
#: Seconds of random delay after those rows, at most.
MAX_KILL_DELAY_S = 0.2
#: The SIGKILL trials' dataset: enough items that every trial is killed mid-run.
KILL_IMAGES = 700
KILL_CLIPS = 12


def caption_cmd(src: Path, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "vlmcap.cli", "caption", str(src), "-o", str(out),
        "--model", MODEL, "--max-output-tokens", "8", "--enforce-eager",
        "--save-every", "1", "--workers", "2",
    ]  # fmt: skip


def rows_of(out: Path) -> list[dict[str, Any]]:
    path = out / "records.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().split("\n")[:-1]]


def corpus_part(work: Path, env: dict[str, str]) -> dict[str, Any]:
    cases = write_corpus(work / "corpus")
    media = work / "corpus" / "media"
    out = work / "corpus-out"
    proc = subprocess.run(
        caption_cmd(media, out),
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    rows = {r["key"]: r for r in rows_of(out)}
    problems = {
        Path(p.path).relative_to(media).as_posix(): p.cause for p in discover([media]).problems
    }
    outcomes = [
        {
            "kind": c.kind,
            "name": c.name,
            "expected": c.expect,
            "got": media_outcome(c, rows, problems),
        }
        for c in cases
        if c.area == "media"
    ]
    wrong = [o for o in outcomes if o["got"].startswith("wrong")]
    return {
        "kinds_tried": len(outcomes),
        "as_expected": len(outcomes) - len(wrong),
        "outcomes": dict(Counter(o["expected"] for o in outcomes)),
        "exit_code": proc.returncode,  # 1: some items failed, as they must
        "wrong": wrong,
        "cases": outcomes,
    }


def left_behind(pgid: int) -> list[str]:
    """Live processes still in the killed job's process group."""
    out = []
    for proc in psutil.process_iter(["pid", "name", "status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(f"{proc.pid} {proc.name()}")
        except (ProcessLookupError, psutil.Error, PermissionError):
            continue
    return out


def kill_part(work: Path, env: dict[str, str], trials: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    src = work / "kill-src"
    make_dataset(
        src, n_images=KILL_IMAGES, n_videos=KILL_CLIPS, seed=seed % 1000, seconds=1.0, fps=8
    )
    (src / "ground_truth.jsonl").unlink()
    keys = sorted(f.key for f in discover([src]))
    out = work / "kill-out"
    kills, runs, hung, duplicates_seen, leftovers, bad_lines = 0, 0, 0, 0, [], 0
    for _ in range(trials):
        before = len(rows_of(out))
        if before >= len(keys):
            break  # the job is done: the trials left would have nothing to kill
        runs += 1
        target = before + rng.randint(1, MAX_ROWS_PER_TRIAL)
        proc = subprocess.Popen(
            caption_cmd(src, out),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + RUN_TIMEOUT_S
        try:
            while proc.poll() is None and len(rows_of(out)) < target:
                if time.monotonic() > deadline:
                    hung += 1
                    break
                time.sleep(0.05)
        except json.JSONDecodeError:
            bad_lines += 1
        time.sleep(rng.uniform(0, MAX_KILL_DELAY_S))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
        time.sleep(GONE_S / 10)
        deadline = time.monotonic() + GONE_S
        while left_behind(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        leftovers += left_behind(proc.pid)
        try:
            written = [r["key"] for r in rows_of(out)]
        except json.JSONDecodeError:
            bad_lines += 1
            continue
        duplicates_seen += len(written) - len(set(written))
    final = subprocess.run(
        caption_cmd(src, out),
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    written = [r["key"] for r in rows_of(out)]
    return {
        "trials_asked": trials,
        "runs_started": runs,
        "kills": kills,  # runs killed mid-job (the others finished before the kill came)
        "items": len(keys),
        "lost": len(set(keys) - set(written)),
        "duplicated": len(written) - len(set(written)),
        "duplicates_seen_after_a_kill": duplicates_seen,
        "unparsable_lines": bad_lines,
        "processes_left_behind": len(leftovers),
        "left_behind": leftovers,
        "hung_runs": hung,
        "final_exit_code": final.returncode,
        "lock_left": (out / ".vlmcap.lock").exists(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kill-trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=20261202)
    parser.add_argument(
        "--out", type=Path, default=None, help="result file (default: bench/results)"
    )
    args = parser.parse_args()
    env = {**os.environ, "VLLM_LOGGING_LEVEL": "WARNING"}
    with tempfile.TemporaryDirectory(prefix="vlmcap-reliability-") as tmp:
        work = Path(tmp)
        t0 = time.monotonic()
        corpus = corpus_part(work, env)
        t1 = time.monotonic()
        kills = kill_part(work, env, args.kill_trials, args.seed)
        t2 = time.monotonic()
    result = {
        "machine": machine_info(),
        "command": " ".join(["bench/reliability.py", *sys.argv[1:]]),
        "seed": args.seed,
        "corpus": corpus,
        "corpus_seconds": round(t1 - t0, 1),
        "sigkill": kills,
        "sigkill_seconds": round(t2 - t1, 1),
        "not_measured_yet": [
            "SIGINT / SIGTERM exit status and flush",
            "server killed and restarted (tested in tests/client/test_server_restart.py)",
            "disk full",
            "engine raising during a step",
            "load on the server (2,000 requests, 4 clients)",
        ],
    }
    path = write_result("reliability", result, args.out)
    brief = {k: v for k, v in result.items() if k != "machine"}
    brief["corpus"] = {k: v for k, v in corpus.items() if k != "cases"}
    print(json.dumps(brief, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
