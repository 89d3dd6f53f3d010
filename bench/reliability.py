"""Reliability figures: bad inputs, faults and load, each through real ``vlmcap`` jobs.

    .venv/bin/python bench/reliability.py [--kill-trials 20] [--signal-trials 5] [--seed N]

Each part runs ``vlmcap`` commands as subprocesses on the built-in random tiny model:

    corpus          ``vlmcap caption`` over the media area of ``vlmcap.testing.corpus``; each
                    kind's outcome against the one it must give
    sigkill         SIGKILL trials of an offline ``vlmcap caption`` (``fault_trials``): one
                    output folder, each trial resumes what the earlier ones left, is killed
                    (whole process group) at a seeded moment; lost / duplicated items over
                    the whole dataset, processes left behind, lines that do not parse
    sigint/sigterm  the signal to the job's main process: exit 130 / 143 by itself, lock
                    released, rows whole; the rerun resumes
    engine_deaths   the vLLM engine process of a running job killed ``--engine-kills``
                    times: restarted each time, every item once, exit 0
    engine_lost     the same with ``--engine-restarts 0``: exit 75, rows kept, rerun resumes
    qa_sigkill      SIGKILL trials of ``vlmcap qa``
    client_sigkill  SIGKILL trials of ``vlmcap caption --server-url`` against one
                    ``vlmcap serve`` (which stays up)
    server_load     ``bench/server_load.py`` against the same server: 2,000 requests from 4
                    client processes at concurrency 64

Writes ``bench/results/reliability.json``. CI runs one short trial of each fault in the tests
(README's Reliability section names them) and the corpus (``tests/testing/test_corpus.py``);
this runs many.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from common import machine_info, write_result
from fault_trials import RUN_TIMEOUT_S, Job, engine_deaths, engine_lost, kill_trials, signal_trials
from server_load import API_KEY, load, served
from vlmcap.media.inputs import discover
from vlmcap.sinks.lock import LOCK_NAME
from vlmcap.testing.corpus import media_outcome, write_corpus
from vlmcap.tiny.qa_set import write_question_set
from vlmcap.tiny.synthetic import make_dataset

MODEL = "tiny-random-qwen2.5-vl"
#: The fault trials' dataset: enough items that every trial is stopped mid-run.
KILL_IMAGES = 700
#: One clip per this many pictures.
IMAGES_PER_CLIP = 60
#: The parts, in the order they run.
PARTS = ("corpus", "sigkill", "sigint", "sigterm", "engine_deaths", "engine_lost", "qa_sigkill",
         "client_sigkill", "server_load")  # fmt: skip
#: The parts that need the one ``vlmcap serve``.
SERVER_PARTS = frozenset({"client_sigkill", "server_load"})
#: The QA SIGKILL trials' question set, per picture of the caption jobs: one question per
#: image, two per pair of images.
QA_IMAGES_SHARE = 0.4
QA_PAIRS_SHARE = 0.15


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


def caption_job(
    work: Path, name: str, seed: int, extra: list[str] | None = None, images: int = KILL_IMAGES
) -> Job:
    """``vlmcap caption`` over a dataset of ``images`` pictures and a few clips for ``name``."""
    src = work / f"{name}-src"
    clips = max(1, images // IMAGES_PER_CLIP)
    make_dataset(src, n_images=images, n_videos=clips, seed=seed % 1000, seconds=1.0, fps=8)
    (src / "ground_truth.jsonl").unlink()
    out = work / f"{name}-out"
    return Job(
        name,
        [*caption_cmd(src, out), *(extra or [])],
        out / "records.jsonl",
        sorted(f.key for f in discover([src])),
        out / LOCK_NAME,
        work / f"{name}.log",
    )


def qa_job(work: Path, seed: int, images: int = KILL_IMAGES) -> Job:
    """``vlmcap qa`` over a question set of one- and two-image questions."""
    root = work / "qa-set"
    questions = write_question_set(
        root,
        n_images=round(images * QA_IMAGES_SHARE),
        n_pairs=round(images * QA_PAIRS_SHARE),
        seed=seed % 1000,
    )
    qids = pq.read_table(questions, columns=["qid"]).column("qid").to_pylist()
    out = work / "qa-out"
    cmd = [sys.executable, "-m", "vlmcap.cli", "qa", "-q", str(questions),
           "-o", str(out), "--model", MODEL, "--max-output-tokens", "8", "--enforce-eager",
           "--save-every", "1"]  # fmt: skip
    rows_file = out / "qa" / MODEL / f"{MODEL}_qa_records.jsonl"
    return Job("qa", cmd, rows_file, sorted(qids), out / LOCK_NAME, work / "qa.log")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kill-trials", type=int, default=20, help="SIGKILLs per job kind")
    parser.add_argument("--signal-trials", type=int, default=5, help="SIGINTs and SIGTERMs")
    parser.add_argument("--engine-kills", type=int, default=3, help="engine deaths in one run")
    parser.add_argument("--load-requests", type=int, default=2000)
    parser.add_argument("--load-clients", type=int, default=4)
    parser.add_argument("--load-concurrency", type=int, default=64)
    parser.add_argument(
        "--parts", default=",".join(PARTS), help=f"comma-separated, of: {', '.join(PARTS)}"
    )
    parser.add_argument(
        "--images", type=int, default=KILL_IMAGES, help="pictures per fault trials' dataset"
    )
    parser.add_argument("--seed", type=int, default=20261202)
    parser.add_argument(
        "--out", type=Path, default=None, help="result file (default: bench/results)"
    )
    args = parser.parse_args()
    wanted = set(args.parts.split(","))
    if wanted - set(PARTS):
        parser.error(f"unknown parts: {', '.join(sorted(wanted - set(PARTS)))}")
    env = {**os.environ, "VLLM_LOGGING_LEVEL": "WARNING"}
    env.pop("OPENAI_API_KEY", None)
    seed = args.seed
    parts: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="vlmcap-reliability-") as tmp:
        work = Path(tmp)
        server: list[str] = []  # --server-url URL --api-key KEY of the one server, once up
        kills, stops, n = args.kill_trials, args.signal_trials, args.images

        def job(name: str, offset: int = 0, extra: list[str] | None = None) -> Job:
            return caption_job(work, name, seed + offset, extra, images=n)

        def server_load() -> dict[str, Any]:
            return load(work, env, server[1], requests=args.load_requests,
                        clients=args.load_clients, concurrency=args.load_concurrency)  # fmt: skip

        runs: dict[str, Callable[[], dict[str, Any]]] = {
            "corpus": lambda: corpus_part(work, env),
            "sigkill": lambda: kill_trials(job("kill"), env, kills, seed),
            "sigint": lambda: signal_trials(job("sigint", 1), env, signal.SIGINT, stops, seed),
            "sigterm": lambda: signal_trials(job("sigterm", 2), env, signal.SIGTERM, stops, seed),
            "engine_deaths": lambda: engine_deaths(job("engine"), env, args.engine_kills, seed),
            "engine_lost": lambda: engine_lost(job("lost", 1), env, seed),
            "qa_sigkill": lambda: kill_trials(qa_job(work, seed, n), env, kills, seed),
            "client_sigkill": lambda: kill_trials(job("client", 2, server), env, kills, seed),
            "server_load": server_load,
        }
        with contextlib.ExitStack() as stack:
            for name in (p for p in PARTS if p in wanted):
                if name in SERVER_PARTS and not server:
                    url = stack.enter_context(served(work, env)).url
                    server += ["--server-url", url, "--api-key", API_KEY]
                t0 = time.monotonic()
                parts[name] = runs[name]()
                seconds[name] = round(time.monotonic() - t0, 1)
                brief = {k: v for k, v in parts[name].items() if k != "cases"}
                print(f"{name} ({seconds[name]} s): {json.dumps(brief)}", flush=True)
    result = {
        "machine": machine_info(),
        "command": " ".join(["bench/reliability.py", *sys.argv[1:]]),
        "seed": seed,
        **parts,
        "seconds": seconds,
        "tested_elsewhere": {
            "server killed and restarted": "tests/client/test_server_restart.py",
            "disk full": "tests/sinks/test_disk_full.py",
            "poison item (kills the engine every time)": "tests/distributed/test_ray.py",
        },
    }
    path = write_result("reliability", result, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
