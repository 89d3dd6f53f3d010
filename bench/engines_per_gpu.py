"""Several engines on one GPU: does a second vLLM engine beside the first add throughput?

    python bench/engines_per_gpu.py --engines 2 --requests 48 --repeats 3

On a GPU (``bench/gpu/run_on_gpu.sh engines_per_gpu``), with the common engine arguments:

    python bench/engines_per_gpu.py --model qwen2.5-vl --model-path DIR \
        --engine-arg load_format=dummy --engine-arg enforce_eager=false \
        --engine-arg gpu_memory_utilization=0.42 --engines 2 --requests 192 --cap 256 \
        --image-sides 448,560,672 --video-frames 8 --video-side 448 --max-tokens 32-160

Where the GPU waits on the CPU work of vLLM's engine core (scheduling, the multimodal inputs'
transfer, the launches between steps: on an H200 the mixed workload kept the GPU about 70 %
busy while vlmcap's loop waited on the engine core 93 % of its time), a second engine core
could fill those gaps. ``--engines K`` engines are started with the same arguments and stay
loaded. Two contenders, alternating, each on fresh media of the workload's shape:

    one      engine 0 runs all ``--requests`` with vlmcap's in-flight loop
             (``vlmcap.engine.iter_records``, ``max_inflight`` = ``--cap``); the other
             engines sit idle
    split-K  the same number of requests dealt round-robin to the K engines, one in-flight
             loop each (same ``--cap``), on K threads started together; timed until the last
             one ends

Both loops run in this one process, so their front ends share its GIL; a process per engine
would share less (vlmcap cannot yet put several engines on one GPU: ``--ray`` gives each
engine actor whole GPUs). NVML is sampled
every 0.1 s where there is a GPU: the mean utilisation of each run is recorded beside its
items/s. Result: ``bench/results/engines_per_gpu.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from common import machine_info, ratio, run_alternating, summarize, write_result
from engine_args import Engine, add_loop_args, quiet_logs, run_figures, run_loop, start
from probes import NvmlSampler
from workload import make_items, read_args, workload_kwargs

if TYPE_CHECKING:
    from vlmcap.records import Item

logger = logging.getLogger("bench.engines_per_gpu")

#: Seeds of one run's media: a new block per call, so no two runs see the same media.
SEEDS_PER_CALL = 1000
#: NVML sampling period in seconds.
NVML_PERIOD_S = 0.1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    p.add_argument("--engines", type=int, default=2, help="engines started, K >= 2 [2]")
    add_loop_args(p)
    p.add_argument("--out", default=None, help="[bench/results/engines_per_gpu.json]")
    args = p.parse_args(argv)
    read_args(args, p)
    if args.engines < 2:
        p.error("--engines must be at least 2 (one engine alone is the baseline)")
    if args.requests < args.engines or args.repeats < 1:
        p.error("--requests must be at least --engines, and --repeats at least 1")
    return args


def deal(items: list[Item], k: int) -> list[list[Item]]:
    """``items`` dealt round-robin into ``k`` shares (sizes differ by at most one)."""
    return [items[i::k] for i in range(k)]


def timed(shares: list[list[Item]], engines: list[Engine], sampler: NvmlSampler) -> dict[str, Any]:
    """Run share i on engine i, all at once (one thread each); wall time to the last record."""
    sampler.start()
    t0 = time.perf_counter()
    if len(shares) == 1:
        done = [run_loop(shares[0], engines[0])]
    else:
        with ThreadPoolExecutor(len(shares), thread_name_prefix="bench-engine") as pool:
            done = list(pool.map(run_loop, shares, engines))
    wall = time.perf_counter() - t0
    sampler.stop()
    util = [s[1] for s in sampler.samples]
    return {
        **run_figures([r for part in done for r in part], wall),
        "per_engine": [len(part) for part in done],
        "gpu_util_mean_pct": round(sum(util) / len(util), 2) if util else None,
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    quiet_logs()
    from vlmcap.engine.args import engine_kwargs

    engines: list[Engine] = []
    sampler = NvmlSampler(NVML_PERIOD_S)
    calls = {"n": 0}
    shape: dict[str, Any] = {}  # the first run's workload description

    def contender(k: int) -> Any:
        def go() -> dict[str, Any]:
            calls["n"] += 1
            seed = args.seed + SEEDS_PER_CALL * calls["n"]
            items, desc = make_items(args.requests, seed, **workload_kwargs(args))
            shape.setdefault("desc", {**desc, "seeds_per_run": SEEDS_PER_CALL})
            return timed(deal(items, k), engines[:k], sampler)

        return go

    def show(name: str, sample: Any) -> None:
        tag = "warm-up" if sample.repeat < 0 else f"repeat {sample.repeat}"
        v = sample.value
        logger.info("%-8s %-8s %6.2f s %7.2f items/s ok %d%s", tag, name, v["wall_s"],
                    v["items_per_s"], v["ok"], gpu_note([v["gpu_util_mean_pct"]]))  # fmt: skip

    try:
        engines = [start(args, f"engine{i}", {}) for i in range(args.engines)]
        split = f"split-{args.engines}"
        samples = run_alternating(
            {"one": contender(1), split: contender(args.engines)},
            args.repeats,
            pause_s=args.pause,
            on_sample=show,
        )
        result = report(args, samples, engines, shape["desc"], split)
        result["engine_kwargs"] = engine_kwargs(engines[0].plugin, engines[0].config)
        result["nvml"] = sampler.info or {"error": sampler.error}
        path = write_result("engines_per_gpu", result, args.out)
        for line in result["summary"]:
            logger.info("%s", line)
        logger.info("wrote %s", path)
    finally:
        for engine in engines:
            engine.llm.llm_engine.engine_core.shutdown()


def gpu_note(util: list[float | None]) -> str:
    """ ", GPU busy M % (median of the runs' means)" where NVML answered, else nothing."""
    seen = [u for u in util if u is not None]
    return f", GPU busy {summarize(seen)['median']:.1f} %" if seen else ""


def report(
    args: argparse.Namespace,
    samples: dict[str, list[Any]],
    engines: list[Engine],
    workload: dict[str, Any],
    split: str,
) -> dict[str, Any]:
    rates = {n: [s.value["items_per_s"] for s in ss] for n, ss in samples.items()}
    tok = {n: [s.value["output_tok_per_s"] for s in ss] for n, ss in samples.items()}
    util = {n: [s.value["gpu_util_mean_pct"] for s in ss] for n, ss in samples.items()}
    items_ratio = ratio(rates[split], rates["one"])
    tok_ratio = ratio(tok[split], tok["one"])
    lines = [
        f"{n:>8}: {summarize(r)['median']:.2f} items/s (min {min(r):.2f}, max {max(r):.2f})"
        + gpu_note(util[n])
        for n, r in rates.items()
    ]
    lines.append(
        f"{split} / one: items/s x{items_ratio['ratio_of_medians']:.3f} "
        f"{[round(x, 3) for x in items_ratio['per_repeat']]}, output tok/s "
        f"x{tok_ratio['ratio_of_medians']:.3f}"
    )
    return {
        "name": "engines_per_gpu",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "engines": args.engines,
        "cap_per_loop": args.cap,
        "stage2": args.stage2,
        "workload": workload,
        "repeats": args.repeats,
        "prepare_threads": [e.threads for e in engines],
        "startup_s": [round(e.startup_s, 1) for e in engines],
        "items_per_s": {n: summarize(r) for n, r in rates.items()},
        "output_tok_per_s": {n: summarize(r) for n, r in tok.items()},
        "gpu_util_mean_pct": util,
        "ok": {n: [s.value["ok"] for s in ss] for n, ss in samples.items()},
        "output_tokens": {n: [s.value["output_tokens"] for s in ss] for n, ss in samples.items()},
        "per_engine_items": {n: [s.value["per_engine"] for s in ss] for n, ss in samples.items()},
        "ratio_split_over_one": items_ratio,
        "output_tok_per_s_ratio_split_over_one": tok_ratio,
        "note": "one: engine 0 alone on all requests; split-K: the requests dealt round-robin "
        "to K engines started with the same arguments, one in-flight loop per engine on its "
        "own thread of this process. Random weights may end requests differently, so output "
        "tok/s is the ratio that allows for it.",
        "summary": lines,
    }


if __name__ == "__main__":
    main()
