"""Load on one ``vlmcap serve``: many requests from several client processes at once.

    .venv/bin/python bench/server_load.py [--requests 2000] [--clients 4] [--concurrency 64]
                                          [--server-url URL --api-key KEY]

One ``vlmcap serve`` (the random tiny model, on 127.0.0.1 with an API key) and ``--clients``
``vlmcap caption --server-url`` processes started together, each over its own folder of
``requests / clients`` fresh pictures with ``concurrency / clients`` requests in flight. Then,
from the rows the clients wrote: items lost and written twice (both must be 0), failed items,
retries (requests sent beyond one per item: the rows' ``attempts``), the latency of a request
from submission to reply (p50 / p95 / p99 over every ok row) and the throughput over the wall
time of the whole load (from the clients' start to the last one's exit, their start-up
included). With ``--server-url`` the load goes to that running server instead (loopback
only), which is how the tests run it against their session's server. Every run is bounded
(``RUN_TIMEOUT_S``).
Result: ``bench/results/server_load.json``; ``bench/reliability.py`` runs it too.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from common import machine_info, write_result
from vlmcap.media.inputs import discover
from vlmcap.server.process import health_ok
from vlmcap.tiny.synthetic import make_dataset

MODEL = "tiny-random-qwen2.5-vl"
API_KEY = "sk-load-test-local"
#: Seconds the server gets to start, and each client to finish.
START_TIMEOUT_S = 600
RUN_TIMEOUT_S = 900
#: Output tokens per request: the load is on the server's request handling, not decoding.
MAX_OUTPUT_TOKENS = 8
#: Latency percentiles reported.
PERCENTILES = (50, 95, 99)


def loopback(url: str) -> bool:
    from urllib.parse import urlsplit

    return urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    started_s: float


@contextmanager
def served(work: Path, env: dict[str, str], model: str = MODEL) -> Iterator[Server]:
    """A ``vlmcap serve`` subprocess on a free loopback port, stopped (SIGTERM, then SIGKILL of
    its process group) on the way out."""
    port = free_port()
    url_file = work / "server.url"
    cmd = [sys.executable, "-m", "vlmcap.cli", "serve", "--model", model, "--port", str(port),
           "--max-model-len", "2048", "--enforce-eager", "--api-key", API_KEY,
           "--url-file", str(url_file), "--startup-timeout", str(START_TIMEOUT_S)]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    t0 = time.monotonic()
    with (work / "serve.log").open("ab") as log:
        proc = subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        while not (url_file.exists() and health_ok(url)):
            if proc.poll() is not None:
                raise RuntimeError(f"vlmcap serve exited with {proc.returncode}; see {log.name}")
            if time.monotonic() - t0 > START_TIMEOUT_S:
                raise RuntimeError("vlmcap serve did not come up in time")
            time.sleep(0.5)
        yield Server(url, proc, time.monotonic() - t0)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=90)
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def client_cmd(
    src: Path, out: Path, url: str, concurrency: int, api_key: str = API_KEY
) -> list[str]:
    return [sys.executable, "-m", "vlmcap.cli", "caption", str(src), "-o", str(out),
            "--server-url", url, "--api-key", api_key, "--concurrency", str(concurrency),
            "--max-output-tokens", str(MAX_OUTPUT_TOKENS), "--save-every", "50"]  # fmt: skip


def rows_of(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n")[:-1]]


def load(
    work: Path,
    env: dict[str, str],
    url: str,
    *,
    requests: int,
    clients: int,
    concurrency: int,
    api_key: str = API_KEY,
) -> dict[str, Any]:
    """``requests`` items over ``clients`` client processes against the server at ``url``."""
    per_client = requests // clients
    jobs = []
    for i in range(clients):
        src = work / f"load-src{i}"
        make_dataset(src, n_images=per_client, n_videos=0, seed=1000 + i, image_size=(64, 64))
        (src / "ground_truth.jsonl").unlink()
        jobs.append((src, work / f"load-out{i}", sorted(f.key for f in discover([src]))))
    t0 = time.monotonic()
    procs = [
        subprocess.Popen(
            client_cmd(src, out, url, concurrency // clients, api_key),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(work / f"client{i}.log").open("wb"),
        )
        for i, (src, out, _) in enumerate(jobs)
    ]
    statuses = []
    for proc in procs:
        try:
            statuses.append(proc.wait(timeout=RUN_TIMEOUT_S))
        except subprocess.TimeoutExpired:
            proc.kill()
            statuses.append(proc.wait())
    wall = time.monotonic() - t0
    lost = duplicated = failed = retries = 0
    latencies: list[float] = []
    for _, out, keys in jobs:
        rows = rows_of(out / "records.jsonl")
        written = [r["key"] for r in rows]
        lost += len(set(keys) - set(written))
        duplicated += len(written) - len(set(written))
        failed += sum(r["status"] != "ok" for r in rows)
        retries += sum(max(r.get("attempts", 1) - 1, 0) for r in rows)
        latencies += [r["latency_s"] for r in rows if r["status"] == "ok" and r["latency_s"]]
    quantiles = np.percentile(latencies, PERCENTILES) if latencies else [None] * 3
    return {
        "requests": per_client * clients,
        "clients": clients,
        "concurrency": concurrency,
        "client_exit_statuses": statuses,
        "lost": lost,
        "duplicated": duplicated,
        "failed": failed,
        "retries": retries,
        "latency_s": {
            f"p{p}": round(float(q), 4) if q is not None else None
            for p, q in zip(PERCENTILES, quantiles, strict=True)
        },
        "wall_s": round(wall, 2),
        "requests_per_s": round(per_client * clients / wall, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--out", type=Path, default=None, help="result file")
    parser.add_argument(
        "--server-url", default=None, help="load this running server (loopback) instead"
    )
    parser.add_argument("--api-key", default=API_KEY, help="that server's key")
    args = parser.parse_args()
    if args.server_url is not None and not loopback(args.server_url):
        parser.error("--server-url: load tests target 127.0.0.1 / localhost only")
    env = {**os.environ, "VLLM_LOGGING_LEVEL": "WARNING"}
    env.pop("OPENAI_API_KEY", None)
    started_s: float | None = None
    with tempfile.TemporaryDirectory(prefix="vlmcap-load-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        url = args.server_url
        if url is None:
            server = stack.enter_context(served(work, env))
            url, started_s = server.url, server.started_s
        figures = load(
            work,
            env,
            url,
            requests=args.requests,
            clients=args.clients,
            concurrency=args.concurrency,
            api_key=args.api_key,
        )
    result = {
        "machine": machine_info(),
        "command": " ".join(["bench/server_load.py", *sys.argv[1:]]),
        "model": MODEL if args.server_url is None else "the server's",
        "server_start_s": None if started_s is None else round(started_s, 1),
        **figures,
    }
    path = write_result("server_load", result, args.out)
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
