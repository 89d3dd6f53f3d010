"""Does decoding keep the engine busy? The whole caption pipeline vs the engine loop alone.

    python bench/pipeline.py [--clips 200] [--repeats 3] [--quick]

Contenders, same engine, same clips, one process:

    pipeline   ``caption_files``: decode threads + engine loop + resumable output store, into a
               fresh output folder each run (what ``vlmcap caption`` runs)
    engine     ``caption_items`` on the same clips decoded beforehand (outside the timed
               region): the ceiling the pipeline can reach

Reports items/s of both, their ratio (target: pipeline >= 0.9 x engine) and the fraction of
wall time the engine was busy during the pipeline run. vLLM's multimodal and prefix caches
are off, so no run reuses another's work. Result: ``bench/results/pipeline.json``.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common import machine_info, ratio, run_alternating, summarize, write_result

logger = logging.getLogger("bench.pipeline")


def make_clips(root: Path, n: int, seconds: float, fps: float) -> None:
    from vlmcap.testing.synthetic import make_dataset

    make_dataset(
        root, n_images=0, n_videos=n, seed=7, seconds=seconds, fps=fps, video_size=(320, 240)
    )
    (root / "ground_truth.jsonl").unlink()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--clips", type=int, default=None, help="synthetic clips [200; 40 quick]")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats [3; 1 quick]")
    p.add_argument("--quick", action="store_true", help="a small smoke run")
    p.add_argument("--seconds", type=float, default=3.0, help="clip length")
    p.add_argument("--fps", type=float, default=30.0, help="clip frame rate")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    p.add_argument("--max-output-tokens", type=int, default=32)
    p.add_argument("--model-path", default=None, help="weights [the random tiny model]")
    p.add_argument("--out", default=None, help="result file [bench/results/pipeline.json]")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    clips = args.clips or (40 if args.quick else 200)
    repeats = args.repeats or (1 if args.quick else 3)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")

    from vlmcap.config import VLMConfig
    from vlmcap.engine import caption_items, load_engine
    from vlmcap.media.inputs import discover
    from vlmcap.pipeline.backend import OfflineBackend
    from vlmcap.pipeline.caption import CaptionSummary, RunOptions, caption_files
    from vlmcap.pipeline.units import MediaOptions, load_file

    work = Path(tempfile.mkdtemp(prefix="vlmcap-bench-pipeline-"))
    try:
        src = work / "clips"
        t0 = time.perf_counter()
        make_clips(src, clips, args.seconds, args.fps)
        logger.info("wrote %d clips in %.1f s", clips, time.perf_counter() - t0)
        files = discover([src]).files
        from vlmcap.testing.tiny_model import ensure_tiny_model

        config = VLMConfig.build(
            model="tiny-qwen2.5-vl",
            # random weights: outputs of varied length, like a real model's captions
            model_path=str(args.model_path or ensure_tiny_model()),
            max_output_tokens=args.max_output_tokens,
            mm_cache=False,
            prefix_caching=False,
            enforce_eager=True,
        )
        plugin, llm = load_engine(config)
        backend = OfflineBackend(llm, plugin, config)
        media = MediaOptions(video_fps=2.0, max_frames=16)
        prompts = {k: plugin.prompt_for(k) for k in ("image", "video")}
        t0 = time.perf_counter()
        decoded = [load_file(f, media, prompts, frozenset()) for f in files]
        decode_s = time.perf_counter() - t0
        items = [item for result in decoded for item in result.items]
        assert len(items) == clips, [r.error for r in decoded if r.error]
        runs = {"n": 0}

        def pipeline() -> dict[str, Any]:
            runs["n"] += 1
            out = work / f"out{runs['n']}"
            summary: CaptionSummary = caption_files(
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
            {"pipeline": pipeline, "engine": engine}, repeats, pause_s=1.5, on_sample=show
        )
        result = report(
            samples, args, clips=clips, repeats=repeats, decode_s=decode_s, config=config
        )
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
    busy = [s.value["loop"]["busy_fraction"] for s in samples["pipeline"]]
    return {
        "name": "pipeline",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "workload": {
            "clips": clips,
            "clip": f"{args.seconds} s, {args.fps} fps, 320x240 H.264, sampled at 2 fps",
            "max_output_tokens": args.max_output_tokens,
            "decode_threads": args.workers,
            "sequential_decode_s": round(decode_s, 3),
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
