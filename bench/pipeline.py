"""Does decoding keep the engine busy? The whole caption pipeline vs the engine loop alone.

    python bench/pipeline.py [--clips 200] [--repeats 3] [--quick]
                             [--model tiny-qwen2.5-vl] [--model-path P] [--engine-arg K=V ...]
                             [--seconds 3 | --seconds 4-8] [--fps 30] [--video-size 320x240]
                             [--gen-procs N] [--clips-dir DIR [--make-clips-only]]

On a GPU with a real-size model folder and random weights, e.g. (bench/gpu/run_on_gpu.sh):

    python bench/pipeline.py --model qwen2.5-vl --model-path DIR --engine-arg load_format=dummy \
        --engine-arg enforce_eager=false --seconds 4-8 --video-size 640x360 --workers 8 \
        --gen-procs 16 --predecode-threads 8 --max-output-tokens 64

Contenders, same engine, same clips, one process:

    pipeline   ``caption_files``: decode threads + engine loop + resumable output store, into a
               fresh output folder each run (what ``vlmcap caption`` runs)
    engine     ``caption_items`` on the same clips decoded beforehand (outside the timed
               region): the ceiling the pipeline can reach

Reports items/s of both, their ratio (target: pipeline >= 0.9 x engine) and the fraction of
wall time the engine was busy during the pipeline run. vLLM's multimodal and prefix caches
are off, so no run reuses another's work. Result: ``bench/results/pipeline.json``.

``--seconds A-B`` spreads clip lengths evenly over A..B in steps of half a second (at the
2 fps sampling: 2A..2B frames per clip). ``--engine-arg KEY=VALUE`` as in engine_loop.py.
"""

from __future__ import annotations

import argparse
import logging
import math
import multiprocessing
import os
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common import machine_info, ratio, run_alternating, summarize, write_result
from workload import add_engine_arg, bench_config, parse_size, read_args

logger = logging.getLogger("bench.pipeline")

VIDEO_SIZE = (320, 240)


def clip_lengths(spec: str, n: int) -> list[float]:
    """``"3"`` -> n times 3.0; ``"4-8"`` -> 4.0, 4.5, ... 8.0 in turn (n values)."""
    lo, sep, hi = spec.partition("-")
    if not sep:
        return [float(spec)] * n
    steps = max(0, round((float(hi) - float(lo)) * 2))
    values = [float(lo) + k / 2 for k in range(steps + 1)]
    return [values[i % len(values)] for i in range(n)]


def _make_group(task: tuple[str, int, int, float, float, tuple[int, int]]) -> None:
    from vlmcap.tiny.synthetic import make_dataset

    root, n, seed, seconds, fps, size = task
    make_dataset(root, n_images=0, n_videos=n, seed=seed, seconds=seconds, fps=fps, video_size=size)
    (Path(root) / "ground_truth.jsonl").unlink()


def make_clips(
    root: Path,
    n: int,
    seconds: float | str,
    fps: float,
    *,
    size: tuple[int, int] = VIDEO_SIZE,
    procs: int = 1,
) -> None:
    """``n`` synthetic clips under ``root``. One fixed length and one process: a single
    ``make_dataset`` call (seed 7); else groups of one length each (own seeds) in sub-folders,
    written by ``procs`` processes."""
    lengths = clip_lengths(str(seconds), n)
    if procs <= 1 and len(set(lengths)) == 1:
        _make_group((str(root), n, 7, lengths[0], fps, size))
        return
    per_length: dict[float, int] = {}
    for s in lengths:
        per_length[s] = per_length.get(s, 0) + 1
    chunk = max(1, math.ceil(n / (2 * max(procs, 1))))
    tasks = []
    for s, count in sorted(per_length.items()):
        for j, start in enumerate(range(0, count, chunk)):
            tasks.append((str(root / f"len{s:g}s-{j}"), min(chunk, count - start), s))
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max(procs, 1), mp_context=context) as pool:
        futures = [
            pool.submit(_make_group, (path, k, 7 + 1000 * t, s, fps, size))
            for t, (path, k, s) in enumerate(tasks)
        ]
        for future in futures:
            future.result()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--clips", type=int, default=None, help="synthetic clips [200; 40 quick]")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats [3; 1 quick]")
    p.add_argument("--quick", action="store_true", help="a small smoke run")
    p.add_argument("--seconds", default="3.0", help="clip length, or a range A-B [3.0]")
    p.add_argument("--fps", type=float, default=30.0, help="clip frame rate")
    p.add_argument("--video-size", default="320x240", help="clip frame size WxH [320x240]")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    p.add_argument("--max-output-tokens", type=int, default=32)
    p.add_argument("--model", default="tiny-qwen2.5-vl", help="plugin [tiny-qwen2.5-vl]")
    p.add_argument("--model-path", default=None, help="weights [the random tiny model]")
    add_engine_arg(p)
    p.add_argument("--gen-procs", type=int, default=1, help="processes writing clips [1]")
    p.add_argument(
        "--predecode-threads",
        type=int,
        default=1,
        help="threads decoding the clips for the engine-only contender (untimed) [1]",
    )
    p.add_argument(
        "--clips-dir", default=None, help="keep the clips here; reused if it holds .mp4 files"
    )
    p.add_argument(
        "--make-clips-only", action="store_true", help="write the clips (--clips-dir) and stop"
    )
    p.add_argument("--pause", type=float, default=1.5, help="untimed seconds between runs")
    p.add_argument("--out", default=None, help="result file [bench/results/pipeline.json]")
    args = p.parse_args(argv)
    args.video_size = parse_size(args.video_size, "--video-size", p)
    read_args(args, p)
    if args.make_clips_only and args.clips_dir is None:
        p.error("--make-clips-only needs --clips-dir")
    return args


def ensure_clips(args: argparse.Namespace, work: Path, clips: int) -> Path:
    """The clip folder: ``--clips-dir`` if it already holds clips, else freshly written."""
    src = Path(args.clips_dir) if args.clips_dir else work / "clips"
    found = sorted(src.rglob("*.mp4")) if src.is_dir() else []
    if found:
        assert len(found) == clips, f"{src} holds {len(found)} clips, not {clips}"
        logger.info("reusing %d clips in %s", len(found), src)
        return src
    t0 = time.perf_counter()
    make_clips(src, clips, args.seconds, args.fps, size=args.video_size, procs=args.gen_procs)
    logger.info("wrote %d clips in %.1f s", clips, time.perf_counter() - t0)
    return src


def build_config(args: argparse.Namespace) -> Any:

    model_path = args.model_path
    if model_path is None and args.model == "tiny-qwen2.5-vl":
        from vlmcap.tiny.model import ensure_tiny_model

        # random weights: outputs of varied length, like a real model's captions
        model_path = str(ensure_tiny_model())
    return bench_config(
        args.engine_overrides,
        model=args.model,
        model_path=model_path,
        max_output_tokens=args.max_output_tokens,
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    clips = args.clips or (40 if args.quick else 200)
    repeats = args.repeats or (1 if args.quick else 3)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")

    from vlmcap.engine import caption_items, load_engine
    from vlmcap.media.inputs import discover
    from vlmcap.pipeline.backend import OfflineBackend
    from vlmcap.pipeline.caption import RunOptions, caption_files
    from vlmcap.pipeline.load import MediaOptions, load_file
    from vlmcap.pipeline.run import RunSummary

    work = Path(tempfile.mkdtemp(prefix="vlmcap-bench-pipeline-"))
    try:
        src = ensure_clips(args, work, clips)
        if args.make_clips_only:
            return
        files = discover([src]).files
        config = build_config(args)
        plugin, llm = load_engine(config)
        backend = OfflineBackend(llm, plugin, config)
        media = MediaOptions(video_fps=2.0, max_frames=16)
        prompts = {k: plugin.prompt_for(k) for k in ("image", "video")}
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max(1, args.predecode_threads)) as pool:
            decoded = list(pool.map(lambda f: load_file(f, media, prompts, frozenset()), files))
        decode_s = time.perf_counter() - t0
        items = [item for result in decoded for item in result.items]
        assert len(items) == clips, [r.error for r in decoded if r.error]
        frames = [len(item.media) for item in items]
        runs = {"n": 0}

        def pipeline() -> dict[str, Any]:
            runs["n"] += 1
            out = work / f"out{runs['n']}"
            summary: RunSummary = caption_files(
                files,
                backend,
                plugin,
                config,
                out,
                run=RunOptions(media=media, workers=args.workers),
            )
            shutil.rmtree(out)
            return {"items": summary.rows, "ok": summary.ok, "loop": summary.loop.to_dict()}

        def engine() -> dict[str, Any]:
            records = caption_items(items, llm, plugin, config)
            return {"items": len(records), "ok": sum(r.status == "ok" for r in records)}

        def show(name: str, sample: Any) -> None:
            tag = "warm-up" if sample.repeat < 0 else f"repeat {sample.repeat}"
            logger.info("%-8s %-8s %6.2f s  %s", tag, name, sample.seconds, sample.value)

        samples = run_alternating(
            {"pipeline": pipeline, "engine": engine}, repeats, pause_s=args.pause, on_sample=show
        )
        result = report(
            samples, args, clips=clips, repeats=repeats, decode_s=decode_s, config=config
        )
        add_gpu_details(result, args, plugin, config, frames)
        path = write_result("pipeline", result, args.out)
        r = result["ratio_pipeline_over_engine"]
        logger.info(
            "pipeline/engine items/s: %.3f (per repeat %s); engine busy %.0f%% of pipeline wall",
            r["ratio_of_medians"],
            ", ".join(f"{x:.3f}" for x in r["per_repeat"]),
            100 * result["pipeline_engine_busy_fraction"]["median"],
        )
        logger.info("wrote %s", path)
        llm.llm_engine.engine_core.shutdown()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def add_gpu_details(
    result: dict[str, Any], args: argparse.Namespace, plugin: Any, config: Any, frames: list[int]
) -> None:
    """Model, engine keywords and frames per clip, when the run is not the CPU default."""
    from vlmcap.engine.args import engine_kwargs

    if args.model != "tiny-qwen2.5-vl" or args.engine_arg:
        result["plugin"] = {"variant": plugin.variant, "model_path": plugin.model_path}
        result["engine_kwargs"] = engine_kwargs(plugin, config)
    if args.predecode_threads > 1 or args.seconds != "3.0":
        result["workload"]["frames_per_clip"] = {
            "min": min(frames),
            "median": statistics.median(frames),
            "max": max(frames),
            "total": sum(frames),
        }


def report(
    samples: dict[str, list[Any]],
    args: argparse.Namespace,
    *,
    clips: int,
    repeats: int,
    decode_s: float,
    config: Any,
) -> dict[str, Any]:
    rate = {n: [s.value["items"] / s.seconds for s in ss] for n, ss in samples.items()}
    w, h = args.video_size
    busy = [s.value["loop"]["busy_fraction"] for s in samples["pipeline"]]
    return {
        "name": "pipeline",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "workload": {
            "clips": clips,
            "clip": f"{args.seconds} s, {args.fps:g} fps, {w}x{h} H.264, sampled at 2 fps"
            if (w, h) != VIDEO_SIZE
            else f"{args.seconds} s, {args.fps} fps, 320x240 H.264, sampled at 2 fps",
            "max_output_tokens": args.max_output_tokens,
            "decode_threads": args.workers,
            **(
                {"predecode_s": round(decode_s, 3), "predecode_threads": args.predecode_threads}
                if args.predecode_threads > 1
                else {"sequential_decode_s": round(decode_s, 3)}
            ),
        },
        "config": config.model_dump(),
        "repeats": repeats,
        "items_per_s": {n: summarize(v) for n, v in rate.items()},
        "seconds": {n: summarize([s.seconds for s in ss]) for n, ss in samples.items()},
        "pipeline_engine_busy_fraction": summarize(busy),
        "ratio_pipeline_over_engine": ratio(rate["pipeline"], rate["engine"]),
        "target": "pipeline items/s >= 0.9 x engine fed pre-decoded items",
    }


if __name__ == "__main__":
    main()
