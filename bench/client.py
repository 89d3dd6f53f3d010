"""Server mode vs the offline engine: the caption pipeline through ``vlmcap serve`` at several
client concurrencies, and in-process.

    python bench/client.py [--items 200] [--repeats 3] [--quick]

One process, one dataset (mostly small images, some short clips, ``make_dataset``), the same
config for both sides (vLLM's prefix and multimodal caches off, same token limit, same seed):

    client-N   ``caption_files`` with ``ServerBackend`` at concurrency N (1 = sequential; 256
               = the offline loop's default ``max_inflight``, the like-for-like point) against a
               vLLM server started here as a child process (``vlmcap.server.process``)
    offline    ``caption_files`` with ``OfflineBackend`` on a ``vllm.LLM`` in this process

Both engines stay loaded for the whole run and the contenders alternate (``run_alternating``:
a warm-up each, then the order changes every repeat). While one side works the other is idle;
the CPU seconds the idle side used are recorded to show it. Each run writes into a fresh
output folder. Targets: client-16 >= 3x client-1; best client >= 0.8x offline (on a CPU, where
server and offline engine share the cores; ``--offline-target 0.9`` on a GPU).
Result: ``bench/results/client.json``.

On a GPU (``bench/gpu/run_on_gpu.sh serve``) both sides get the same ``--engine-arg`` values,
e.g. ``load_format=dummy`` for random weights, ``enforce_eager=false`` and
``gpu_memory_utilization=0.42`` so the server's engine and the offline one fit side by side.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from common import machine_info, ratio, run_alternating, summarize, write_result
from served import cpu_s, start_server, tree
from workload import add_engine_arg, bench_config, parse_size, read_args

logger = logging.getLogger("bench.client")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--items", type=int, default=None, help="dataset size [200; 40 quick]")
    p.add_argument("--videos", type=float, default=0.15, help="share of clips [0.15]")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats [3; 1 quick]")
    p.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        default=[1, 4, 16, 64, 256],
        help="client concurrencies [1 4 16 64 256; 256 = the offline loop's max_inflight]",
    )
    p.add_argument("--quick", action="store_true", help="a small smoke run")
    # random weights: every caption runs to the token limit
    p.add_argument("--model", default="tiny-random-qwen2.5-vl")
    p.add_argument("--model-path", default=None, help="weights [the plugin's]")
    p.add_argument("--max-output-tokens", type=int, default=32)
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    add_engine_arg(p)  # both sides get them (the server too)
    p.add_argument("--image-size", default="160x120", help="picture WxH in px [160x120]")
    p.add_argument("--video-size", default="160x120", help="clip frame WxH in px [160x120]")
    p.add_argument("--seconds", type=float, default=1.0, help="clip length [1 s]")
    p.add_argument("--fps", type=float, default=8.0, help="clip frame rate on disk [8]")
    p.add_argument(
        "--offline-target",
        type=float,
        default=0.8,
        help="the best client's target share of offline items/s [0.8; the GPU run asks 0.9]",
    )
    p.add_argument("--out", default=None, help="result file [bench/results/client.json]")
    args = p.parse_args(argv)
    read_args(args, p)
    args.image_size = parse_size(args.image_size, "--image-size", p)
    args.video_size = parse_size(args.video_size, "--video-size", p)
    return args


def make_files(root: Path, n: int, videos: int, args: argparse.Namespace) -> list[Any]:
    from vlmcap.media.inputs import discover
    from vlmcap.tiny.synthetic import make_dataset

    make_dataset(
        root, n_images=n - videos, n_videos=videos, seed=17, image_size=args.image_size,
        video_size=args.video_size, seconds=args.seconds, fps=args.fps,
    )  # fmt: skip
    (root / "ground_truth.jsonl").unlink()
    return list(discover([root]).files)


def both_sides_config(args: argparse.Namespace) -> Any:
    """The one config both sides use: caches off, the same token limit and seed, and the
    ``--engine-arg`` values (a server started from it gets the same engine arguments)."""
    return bench_config(
        args.engine_overrides,
        model=args.model,
        model_path=args.model_path,
        max_output_tokens=args.max_output_tokens,
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    n = args.items or (40 if args.quick else 200)
    repeats = args.repeats or (1 if args.quick else 3)
    videos = round(n * args.videos)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name in ("httpx", "httpx2", "openai", "vlmcap"):  # one line per request otherwise
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")

    from vlmcap.client.connect import connect
    from vlmcap.client.openai_client import ClientConfig
    from vlmcap.engine import load_engine
    from vlmcap.pipeline.backend import Backend, OfflineBackend, ServerBackend
    from vlmcap.pipeline.caption import RunOptions

    work = Path(tempfile.mkdtemp(prefix="vlmcap-bench-client-"))
    server = None
    load_before = os.getloadavg()
    try:
        files = make_files(work / "data", n, videos, args)
        config = both_sides_config(args)
        plugin, llm = load_engine(config)
        server, opts, command = start_server(plugin, config, work / "server.log")
        server_procs = tree(server.pid)
        # the offline engine's work runs in vLLM's engine-core process(es), children of ours
        theirs = {p.pid for p in server_procs}
        engine_procs = [p for p in tree(os.getpid())[1:] if p.pid not in theirs]
        me = psutil.Process()
        run = RunOptions(workers=args.workers)
        counter = {"n": 0}

        def contender(make: Callable[[], Backend], idle: list[psutil.Process]) -> Callable[[], Any]:
            def go() -> dict[str, Any]:
                counter["n"] += 1
                out = work / f"out{counter['n']}"
                sides = {"here": [me], "server": server_procs, "engine": engine_procs}
                return measure(
                    make(), files, plugin=plugin, config=config, out=out, run=run,
                    idle=idle, sides=sides,
                )  # fmt: skip

            return go

        def client(c: int) -> Callable[[], Backend]:
            settings = connect(ClientConfig(url=opts.local_url, concurrency=c), config)
            return lambda: ServerBackend(settings, plugin, config)

        contenders = {f"client-{c}": contender(client(c), engine_procs) for c in args.concurrency}
        contenders["offline"] = contender(lambda: OfflineBackend(llm, plugin, config), server_procs)
        samples = run_alternating(contenders, repeats, pause_s=2.0, on_sample=show)
        result = report(samples, args, n=n, videos=videos, repeats=repeats, config=config, run=run)
        result.update(
            load_average_before=load_before,
            load_average_after=os.getloadavg(),
            server_command=command,
            idle_side_processes={"server": len(server_procs), "offline": len(engine_procs)},
        )
        path = write_result("client", result, args.out)
        for line in result["summary"]:
            logger.info("%s", line)
        logger.info("wrote %s", path)
        llm.llm_engine.engine_core.shutdown()
    finally:
        if server is not None:
            server.stop(60)
        shutil.rmtree(work, ignore_errors=True)


def measure(
    backend: Any,
    files: list[Any],
    *,
    plugin: Any,
    config: Any,
    out: Path,
    run: Any,
    idle: list[psutil.Process],
    sides: dict[str, list[psutil.Process]],
) -> dict[str, Any]:
    """One timed pipeline run: counts, the idle side's CPU, and CPU per item of each side."""
    from vlmcap.pipeline.caption import caption_files

    before = {side: cpu_s(procs) for side, procs in sides.items()}
    idle0 = cpu_s(idle)
    summary = caption_files(files, backend, plugin, config, out, run=run)
    idle_s = cpu_s(idle) - idle0
    used = {side: cpu_s(procs) - before[side] for side, procs in sides.items()}
    shutil.rmtree(out)
    return {
        "items": summary.rows,
        "ok": summary.ok,
        "output_tokens": summary.output_tokens,
        "idle_side_cpu_s": round(idle_s, 3),
        # CPU ms per item of this process (pipeline, client or offline front end), of the
        # server's processes, and of the offline engine's core process
        "cpu_ms_per_item": {
            side: round(1000 * v / max(summary.rows, 1), 2) for side, v in used.items()
        },
    }


def show(name: str, sample: Any) -> None:
    tag = "warm-up" if sample.repeat < 0 else f"repeat {sample.repeat}"
    rate = sample.value["items"] / sample.seconds
    logger.info(
        "%-8s %-10s %6.2f s %6.1f items/s  %s", tag, name, sample.seconds, rate, sample.value
    )


def report(
    samples: dict[str, list[Any]],
    args: argparse.Namespace,
    *,
    n: int,
    videos: int,
    repeats: int,
    config: Any,
    run: Any,
) -> dict[str, Any]:
    rate = {name: [s.value["items"] / s.seconds for s in ss] for name, ss in samples.items()}
    clients = [name for name in rate if name.startswith("client-")]
    best = max(clients, key=lambda name: summarize(rate[name])["median"])
    speedup_16 = (
        ratio(rate["client-16"], rate["client-1"])
        if "client-16" in rate and "client-1" in rate
        else None
    )
    vs_offline = ratio(rate[best], rate["offline"])
    lines = [
        f"{name:>10}: {summarize(r)['median']:.2f} items/s (min {min(r):.2f}, max {max(r):.2f})"
        for name, r in rate.items()
    ]
    if speedup_16 is not None:
        lines.append(f"client-16 / client-1: {speedup_16['ratio_of_medians']:.2f}x (target >= 3)")
    goal = args.offline_target
    share = vs_offline["ratio_of_medians"]
    met = share is not None and share >= goal
    lines.append(
        f"{best} / offline: {share or 0:.2f}x (target >= {goal}: {'met' if met else 'missed'})"
    )
    return {
        "name": "client",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "note": "Client, server and offline engine share this machine's CPUs; cpu_ms_per_item "
        "(medians) shows where each contender's CPU time went: here = this process (the "
        "pipeline plus the HTTP client, or the offline front end), server = vlmcap serve's "
        "processes, engine = the offline engine core.",
        "workload": {
            "items": n,
            "images": n - videos,
            "videos": videos,
            "image": "{}x{} PNG".format(*args.image_size),
            "video": "{} s, {} fps, {}x{} H.264, sampled at {} fps".format(
                args.seconds, args.fps, *args.video_size, run.media.video_fps
            ),
            "max_output_tokens": args.max_output_tokens,
            "decode_threads": args.workers,
        },
        "config": config.model_dump(),
        "repeats": repeats,
        "items_per_s": {name: summarize(r) for name, r in rate.items()},
        "seconds": {n_: summarize([s.seconds for s in ss]) for n_, ss in samples.items()},
        "output_tokens": {n_: [s.value["output_tokens"] for s in ss] for n_, ss in samples.items()},
        "ok": {n_: [s.value["ok"] for s in ss] for n_, ss in samples.items()},
        "idle_side_cpu_s": {
            n_: [s.value["idle_side_cpu_s"] for s in ss] for n_, ss in samples.items()
        },
        "cpu_ms_per_item": {
            n_: {
                side: summarize([s.value["cpu_ms_per_item"][side] for s in ss])["median"]
                for side in ("here", "server", "engine")
            }
            for n_, ss in samples.items()
        },
        "speedup_client16_over_client1": speedup_16,
        "best_client": best,
        "ratio_best_client_over_offline": vs_offline,
        "targets": {"client-16 / client-1": ">= 3", "best client / offline": f">= {goal}"},
        "best_client_target_met": met,
        "summary": lines,
    }


if __name__ == "__main__":
    _t0 = time.perf_counter()
    main()
    logging.getLogger("bench.client").info("total %.0f s", time.perf_counter() - _t0)
