"""The figures ``gpu_breakdown.py`` reports for its runs: the shares of wall time, how full the
engine was, what NVML saw, the timeline, the engine core's side, per kind of media, and the
same across repeats. ``Run`` is what one timed run of the loop recorded.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from probes import CoreOutputs, NvmlSampler, TracedStats


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


# ---- summaries --------------------------------------------------------------------------------


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


def rounded(x: float, digits: int = 4) -> float:
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
        "mean_inside": rounded(area / wall, 2),
        "mean_could_be_inside": rounded(avail_area / wall, 2),
        "fill_ratio": rounded(area / avail_area, 4) if avail_area else None,
        "share_under_filled": rounded(under / wall),
        "share_under_cap": rounded(under_cap / wall),
        "share_empty": rounded(empty / wall),
        "peak_inside": run.stats.peak_inflight,
        "first_step_at_s": rounded(first_step) if first_step is not None else None,
        "all_submitted_at_s": rounded(last_submit) if last_submit is not None else None,
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
            "mean_pct": rounded(statistics.fmean(values), 2),
            "p50_pct": statistics.median(values),
            "p10_pct": _pct(values, 0.1),
            "p90_pct": _pct(values, 0.9),
            "share_at_0": rounded(sum(v == 0 for v in values) / len(values)),
            "share_below_50": rounded(sum(v < 50 for v in values) / len(values)),
            "share_at_100": rounded(sum(v >= 100 for v in values) / len(values)),
        }

    out: dict[str, Any] = {
        "available": True,
        "period_s": sampler.period,
        "sample_spacing_s": _dist(gaps),
        "utilization": util_stats(util),
        "kernel_time_estimate_s": rounded(statistics.fmean(util) / 100 * run.wall_s, 3)
        if util
        else None,
        "memory_bandwidth_util": util_stats([float(s[2]) for s in inside]),
        "memory_used_mib": {
            "min": rounded(min(used), 1) if used else None,
            "mean": rounded(statistics.fmean(used), 1) if used else None,
            "max": rounded(max(used), 1) if used else None,
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
            spent[name] = rounded(
                sum(max(0.0, min(s + d, hi) - max(s, lo)) for s, d in run.events.get(name, [])),
                3,
            )
        rows.append(
            {
                "t_s": rounded(k * bin_s, 2),
                "inside_mean": rounded(
                    inside_area[k] / max(1e-9, min(bin_s, run.wall_s - k * bin_s)), 1
                ),
                "submitted": last[2],
                "finished": last[3],
                "gpu_util_mean": rounded(statistics.fmean(util), 1) if util else None,
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
        return {k: {"s": rounded(v), "share_of_wall": rounded(v / wall)} for k, v in parts.items()}

    steps = [d for _, d in run.events.get("step", [])]
    adds = [d for _, d in run.events.get("add_request", [])]
    items = max(1, len(run.records))
    return {
        "wall_s": rounded(wall),
        "top_level": table(top),
        "request_building_split": table(build_parts),
        "add_request_split": table(add_parts),
        "step_split": table(step_parts),
        "on_prepare_threads_busy_s": {k: rounded(v) for k, v in prep.items()},
        "calls": {k: v for k, v in c.items() if "[" not in k},
        "by_kind": {
            k: {
                "calls": c[k],
                "s": rounded(s.get(k, 0.0)),
                "ms_per_call": rounded(1e3 * s.get(k, 0.0) / c[k], 3) if c[k] else None,
            }
            for k in sorted(c)
            if "[" in k
        },
        "per_item_ms": {
            "make_request": rounded(1e3 * g("make_request", 0.0) / items, 3),
            "engine_inputs": rounded(1e3 * g("engine_inputs", 0.0) / items, 3),
            "add_request": rounded(1e3 * top["add_request"] / items, 3),
            "hf_processor": rounded(1e3 * hf_all / items, 3),
            "hf_processor_on_prepare_threads": rounded(1e3 * prep["hf_processor"] / items, 3),
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
        "share_of_get_output_returning_within_1ms": rounded(
            sum(w < 1e-3 for w in core.waited_s) / n
        )
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
        row["mean_prompt_tokens"] = rounded(row["prompt_tokens"] / max(1, row["items"]), 1)
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
        "wall_s": rounded(run.wall_s),
        "items": len(run.records),
        "ok": ok,
        "output_tokens": out_tokens,
        "prompt_tokens": prompt_tokens,
        "items_per_s": rounded(len(run.records) / run.wall_s),
        "output_tok_per_s": rounded(out_tokens / run.wall_s, 1),
        "loop_stats": run.stats.to_dict(),
        "cpu_s": {
            "loop_thread": rounded(run.thread_cpu_s),
            "loop_thread_share_of_wall": rounded(run.thread_cpu_s / run.wall_s),
            "process_all_threads": rounded(run.process_cpu_s),
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
                "median": rounded(statistics.median(values)),
                "min": rounded(min(values)),
                "max": rounded(max(values)),
            }
            if values
            else None
        )
    return out
