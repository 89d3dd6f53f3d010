"""vlmcap's in-flight loop on engines started with different engine arguments, side by side.

    python bench/engine_args.py --variant cache-off:mm_cache=false \
        --variant cache-on:mm_cache=true --requests 48 --repeats 3

On a GPU, with the common arguments for every engine (two engines: 0.42 of the memory each):

    python bench/engine_args.py --model qwen2.5-vl --model-path DIR \
        --engine-arg load_format=dummy --engine-arg enforce_eager=false \
        --engine-arg gpu_memory_utilization=0.42 --variant cache-off:mm_cache=false \
        --variant cache-on:mm_cache=true --requests 192 --cap 256 --image-sides 448,560,672 \
        --video-frames 8 --video-side 448 --max-tokens 32-160

Each ``--variant NAME:KEY=VALUE[,KEY=VALUE...]`` starts an engine of its own, and every
engine stays loaded for the whole run. The ``--engine-arg`` values go to every engine, and a
variant's own values win. A key is a ``VLMConfig`` field or an extra ``vllm.LLM`` keyword, as
in ``engine_loop.py``. A run is vlmcap's own loop (``vlmcap.engine.iter_records``, in flight,
``max_inflight`` = ``--cap``, stage 2 as ``--stage2`` says) on fresh media of the workload's
shape (``workload.make_items``). Requests are built on the threads vlmcap picks for that
engine, or on ``--prepare-threads``, and the count is recorded. The multimodal processor
cache is off unless a variant turns it on (``mm_cache=true``); the prefix cache is always
off. One untimed warm-up per variant on the full workload shape comes first, then
``--repeats`` rounds in alternating order. The result has items/s per variant and each
variant's ratio to the first one, paired by repeat. Only the loop is timed, not the making of
the media. Result: ``bench/results/engine_args.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from common import machine_info, ratio, run_alternating, summarize, write_result
from workload import (
    add_engine_arg,
    add_workload_args,
    bench_config,
    make_items,
    parse_engine_args,
    read_args,
    workload_kwargs,
)

if TYPE_CHECKING:
    from vllm import LLM

    from vlmcap.config import VLMConfig
    from vlmcap.plugins.base import VLMPlugin
    from vlmcap.records import Item, Record

logger = logging.getLogger("bench.engine_args")

#: Seeds of one run's media: a new block per call, so no two runs see the same media.
SEEDS_PER_CALL = 1000


@dataclass
class Engine:
    name: str
    overrides: dict[str, Any]
    config: VLMConfig
    plugin: VLMPlugin
    llm: LLM
    threads: int
    startup_s: float


def parse_variant(text: str, parser: argparse.ArgumentParser) -> tuple[str, dict[str, Any]]:
    name, sep, pairs = text.partition(":")
    if not sep or not name.strip() or not pairs.strip():
        parser.error(f"--variant wants NAME:KEY=VALUE[,KEY=VALUE...], got {text!r}")
    return name.strip(), parse_engine_args(pairs.split(","), parser)


def add_loop_args(p: argparse.ArgumentParser) -> None:
    """What every benchmark that runs vlmcap's loop on engines of its own (``start``) reads:
    ``--engine-arg``, the model, the workload, the loop's cap and stage 2, repeats and pause."""
    add_engine_arg(p)
    p.add_argument("--model", default="tiny-random-qwen2.5-vl")
    p.add_argument("--model-path", default=None)
    p.add_argument("--requests", type=int, default=48)
    p.add_argument("--cap", type=int, default=256, help="max_inflight of each loop [256]")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--stage2", choices=("off", "on"), default="off")
    p.add_argument("--prepare-threads", type=int, default=None, help="[vlmcap's choice]")
    p.add_argument("--seed", type=int, default=0)
    add_workload_args(p)
    p.add_argument("--pause", type=float, default=1.5, help="untimed seconds between runs")


def quiet_logs() -> None:
    """The benchmark's own lines at INFO; vLLM's and vlmcap's only from WARNING up."""
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("vlmcap").setLevel(logging.WARNING)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    p.add_argument("--variant", action="append", default=[], metavar="NAME:KEY=VALUE,...")
    add_loop_args(p)
    p.add_argument("--out", default=None, help="[bench/results/engine_args.json]")
    args = p.parse_args(argv)
    if len(args.variant) < 2:
        p.error("give at least two --variant NAME:KEY=VALUE to compare")
    args.variants = [parse_variant(v, p) for v in args.variant]
    names = [name for name, _ in args.variants]
    if len(set(names)) != len(names):
        p.error(f"--variant names must differ, got {names}")
    read_args(args, p)
    if args.requests < 1 or args.repeats < 1:
        p.error("--requests and --repeats must be at least 1")
    return args


def start(args: argparse.Namespace, name: str, overrides: dict[str, Any]) -> Engine:
    from vlmcap.engine import load_engine
    from vlmcap.engine.prepare import engine_mm_cache, prepare_threads

    config = bench_config(
        {**args.engine_overrides, **overrides}, model=args.model, model_path=args.model_path
    ).model_copy(
        update={
            "inflight_batching": True,
            "max_inflight": args.cap,
            "stage2": args.stage2 == "on",
            "prepare_threads": args.prepare_threads,
        }
    )
    t0 = time.perf_counter()
    plugin, llm = load_engine(config)
    startup = time.perf_counter() - t0
    threads = prepare_threads(config, cache_on=engine_mm_cache(llm.llm_engine))
    logger.info("%s: engine up in %.0f s, requests built on %d thread(s)", name, startup, threads)
    return Engine(name, overrides, config, plugin, llm, threads, startup)


def run_loop(items: list[Item], engine: Engine) -> list[Record]:
    """vlmcap's loop (``iter_records``, as ``engine.config`` says) over ``items`` on ``engine``."""
    from vlmcap.core.stats import LoopStats
    from vlmcap.engine import iter_records

    return list(iter_records(items, engine.llm, engine.plugin, engine.config, LoopStats()))


def run_figures(records: list[Record], wall: float) -> dict[str, Any]:
    """A timed run's wall time, rates, ok count and output tokens."""
    from vlmcap.records import Status

    return {
        "wall_s": wall,
        "items_per_s": len(records) / wall,
        "output_tok_per_s": sum(r.output_tokens for r in records) / wall,
        "ok": sum(r.status == Status.OK for r in records),
        "output_tokens": sum(r.output_tokens for r in records),
    }


def one_run(args: argparse.Namespace, engine: Engine, seed: int) -> dict[str, Any]:
    """One timed pass of the loop over fresh media; only the loop is timed."""
    items, _ = make_items(args.requests, seed, **workload_kwargs(args))
    t0 = time.perf_counter()
    records = run_loop(items, engine)
    return run_figures(records, time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    quiet_logs()
    from vlmcap.engine.args import engine_kwargs

    engines: list[Engine] = []
    try:
        engines = [start(args, name, overrides) for name, overrides in args.variants]
        calls = {"n": 0}

        def contender(engine: Engine) -> Any:
            def go() -> dict[str, Any]:
                calls["n"] += 1
                return one_run(args, engine, args.seed + SEEDS_PER_CALL * calls["n"])

            return go

        def show(name: str, sample: Any) -> None:
            tag = "warm-up" if sample.repeat < 0 else f"repeat {sample.repeat}"
            v = sample.value
            logger.info("%-8s %-16s %6.2f s %7.2f items/s ok %d", tag, name, v["wall_s"],
                        v["items_per_s"], v["ok"])  # fmt: skip

        samples = run_alternating(
            {e.name: contender(e) for e in engines},
            args.repeats,
            pause_s=args.pause,
            on_sample=show,
        )
        rates = {n: [s.value["items_per_s"] for s in ss] for n, ss in samples.items()}
        tok_rates = {n: [s.value["output_tok_per_s"] for s in ss] for n, ss in samples.items()}
        first = engines[0].name
        result = {
            "name": "engine_args",
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": "python3 engine_args.py "
            + " ".join(argv if argv is not None else sys.argv[1:]),
            "machine": machine_info(),
            "workload": {
                "requests": args.requests,
                "cap": args.cap,
                "stage2": args.stage2,
                "image_sides": list(args.image_sides),
                "video_frames": list(args.video_frames),
                "video_side": args.video_side,
                "video_share": args.video_share,
                "max_tokens_range": list(args.max_tokens),
            },
            "repeats": args.repeats,
            "variants": {
                e.name: {
                    "overrides": e.overrides,
                    "engine_kwargs": engine_kwargs(e.plugin, e.config),
                    "prepare_threads": e.threads,
                    "startup_s": round(e.startup_s, 1),
                    "items_per_s": summarize(rates[e.name]),
                    "output_tok_per_s": summarize(tok_rates[e.name]),
                    "ok": [s.value["ok"] for s in samples[e.name]],
                    "output_tokens": [s.value["output_tokens"] for s in samples[e.name]],
                }
                for e in engines
            },
            "ratios_vs_first": {
                e.name: ratio(rates[e.name], rates[first]) for e in engines if e.name != first
            },
            "output_tok_per_s_ratios_vs_first": {
                e.name: ratio(tok_rates[e.name], tok_rates[first])
                for e in engines
                if e.name != first
            },
            "note": "items/s of vlmcap's loop per engine variant; the ratios pair the runs of "
            "the same repeat. Random weights may end requests differently between engines, so "
            "the output tokens differ: output_tok_per_s_ratios_vs_first is the ratio that "
            "allows for it.",
        }
        path = write_result("engine_args", result, args.out)
        for name, r in result["ratios_vs_first"].items():
            tok = result["output_tok_per_s_ratios_vs_first"][name]["ratio_of_medians"]
            per_repeat = [round(x, 3) for x in r["per_repeat"]]
            line = "%s / %s: items/s x%.3f %s, output tok/s x%.3f"
            logger.info(line, name, first, r["ratio_of_medians"], per_repeat, tok)
        logger.info("wrote %s", path)
    finally:
        for engine in engines:
            engine.llm.llm_engine.engine_core.shutdown()


if __name__ == "__main__":
    main()
