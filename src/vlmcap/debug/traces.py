"""What torch profiler traces say: find a session's Chrome/Perfetto traces, load them, and
aggregate their events by name (calls, total and self time) into the top-operators table.

``vlmcap.debug.profile_summary`` puts these figures together for one profiling session, with
the device's busy time (``vlmcap.debug.device_time``).
"""

from __future__ import annotations

import gzip
import json
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Operators the summary lists by default.
DEFAULT_TOP = 15
#: Trace event categories summarised as operators: CPU-side ops, and device work when present.
CPU_CATEGORIES = frozenset({"cpu_op"})
DEVICE_CATEGORIES = frozenset({"kernel", "gpu_memcpy", "gpu_memset"})
OP_CATEGORIES = CPU_CATEGORIES | DEVICE_CATEGORIES
#: vLLM's worker wraps each of its steps in a ``user_annotation`` named ``execute_...``.
STEP_CATEGORY = "user_annotation"
STEP_NAME_PREFIX = "execute_"
#: What PyTorch's trace handler names its files (``<worker>.<ns>.pt.trace.json[.gz]``).
TRACE_SUFFIXES = (".json", ".json.gz")
GZIP_SUFFIX = ".gz"
US_PER_MS = 1000.0
NAME_WIDTH = 60
PERCENT = 100.0


class TraceError(ValueError):
    """A file is not a Chrome/Perfetto trace (not JSON, or without a ``traceEvents`` list)."""


def is_trace(path: Path) -> bool:
    return path.is_file() and path.name.endswith(TRACE_SUFFIXES)


def find_traces(directory: str | os.PathLike[str], prefix: str | None = None) -> list[Path]:
    """The trace files in ``directory`` (those whose names start with ``prefix``), sorted; an
    unreadable or missing folder has none."""
    try:
        entries = list(Path(directory).iterdir())
    except OSError:
        return []
    return sorted(
        p for p in entries if is_trace(p) and (prefix is None or p.name.startswith(prefix))
    )


def load_trace(path: str | os.PathLike[str]) -> dict[str, Any]:
    """One trace, parsed; raises ``TraceError`` unless it is JSON with a ``traceEvents`` list
    (Perfetto's and Chrome's JSON trace format), ``OSError`` when it cannot be read."""
    path = Path(path)
    try:
        if path.name.endswith(GZIP_SUFFIX):
            with gzip.open(path, "rt", encoding="utf-8") as stream:
                data = json.load(stream)
        else:
            with path.open(encoding="utf-8") as stream:
                data = json.load(stream)
    except (json.JSONDecodeError, UnicodeDecodeError, EOFError, gzip.BadGzipFile) as exc:
        raise TraceError(f"{path} is not a JSON trace: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("traceEvents"), list):
        raise TraceError(f"{path} has no traceEvents list")
    return data


def trace_events(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    return [e for e in load_trace(path)["traceEvents"] if isinstance(e, dict)]


@dataclass(frozen=True)
class OpStat:
    """One operator over the traces: its calls and times (microseconds, as in the traces)."""

    name: str
    category: str  # ``cpu_op``, ``kernel``, ...
    calls: int
    total_us: float
    self_us: float  # total less the time of the events nested directly inside its calls

    @property
    def on_device(self) -> bool:
        return self.category in DEVICE_CATEGORIES

    @property
    def self_ms(self) -> float:
        return self.self_us / US_PER_MS

    @property
    def total_ms(self) -> float:
        return self.total_us / US_PER_MS


@dataclass
class _Span:
    name: str
    category: str
    start: float
    end: float
    children_us: float = 0.0


def _spans(events: Iterable[dict[str, Any]]) -> dict[tuple[Any, Any], list[_Span]]:
    """Complete events (``ph: X``) by thread, in start order, outer before inner."""
    threads: dict[tuple[Any, Any], list[_Span]] = defaultdict(list)
    for event in events:
        if event.get("ph") != "X":
            continue
        try:
            start = float(event["ts"])
            dur = float(event.get("dur", 0.0))
        except (KeyError, TypeError, ValueError):
            continue
        span = _Span(str(event.get("name", "")), str(event.get("cat", "")), start, start + dur)
        threads[(event.get("pid"), event.get("tid"))].append(span)
    for spans in threads.values():
        spans.sort(key=lambda s: (s.start, -(s.end - s.start)))
    return threads


def _nest(spans: list[_Span]) -> None:
    """Add each span's duration to the span it is directly nested in (same thread)."""
    stack: list[_Span] = []
    for span in spans:
        while stack and span.start >= stack[-1].end:
            stack.pop()
        if stack:
            stack[-1].children_us += span.end - span.start
        stack.append(span)


def top_operators(
    trace_paths: Iterable[str | os.PathLike[str]],
    n: int | None = DEFAULT_TOP,
    *,
    categories: frozenset[str] = OP_CATEGORIES,
    by: str = "self",
) -> list[OpStat]:
    """The ``n`` operators (all with None) of the traces with the most self time (``by="total"``:
    total time), aggregated by name over every file: calls, total and self time. CPU ops, and
    device kernels and copies where the traces have them; step annotations are left out."""
    return operators_in((trace_events(p) for p in trace_paths), n, categories=categories, by=by)


def operators_in(
    traces: Iterable[list[dict[str, Any]]],
    n: int | None = DEFAULT_TOP,
    *,
    categories: frozenset[str] = OP_CATEGORIES,
    by: str = "self",
) -> list[OpStat]:
    """``top_operators`` of traces already loaded (each a list of events)."""
    if by not in ("self", "total"):
        raise ValueError(f"sort by 'self' or 'total', not {by!r}")
    totals: dict[tuple[str, str], list[float]] = {}
    for events in traces:
        for spans in _spans(events).values():
            _nest(spans)
            for span in spans:
                if span.category not in categories:
                    continue
                entry = totals.setdefault((span.name, span.category), [0, 0.0, 0.0])
                dur = span.end - span.start
                entry[0] += 1
                entry[1] += dur
                entry[2] += max(0.0, dur - span.children_us)
    stats = [OpStat(name, cat, int(c), t, s) for (name, cat), (c, t, s) in totals.items()]
    stats.sort(key=lambda s: (s.self_us if by == "self" else s.total_us, s.calls), reverse=True)
    return stats if n is None else stats[:n]


def is_step(event: dict[str, Any]) -> bool:
    """One of vLLM's step annotations (a complete event)."""
    return (
        event.get("ph") == "X"
        and event.get("cat") == STEP_CATEGORY
        and str(event.get("name", "")).startswith(STEP_NAME_PREFIX)
    )


def profiled_steps(trace_paths: Iterable[str | os.PathLike[str]]) -> int:
    """Engine steps the traces hold: vLLM's worker annotates each one ``execute_...``."""
    return sum(1 for path in trace_paths for event in trace_events(path) if is_step(event))


def format_operators(ops: Sequence[OpStat], title: str = "") -> str:
    """``ops`` as a text table: calls, self and total milliseconds, share of the self time."""
    all_self = sum(op.self_us for op in ops) or 1.0
    header = f"{'operator':<{NAME_WIDTH}} {'kind':<10} {'calls':>7} {'self ms':>10} "
    header += f"{'total ms':>10} {'self %':>7}"
    lines = [title] if title else []
    lines += [header, "-" * len(header)]
    for op in ops:
        name = op.name if len(op.name) <= NAME_WIDTH else op.name[: NAME_WIDTH - 3] + "..."
        lines.append(
            f"{name:<{NAME_WIDTH}} {op.category:<10} {op.calls:>7} {op.self_ms:>10.3f} "
            f"{op.total_ms:>10.3f} {PERCENT * op.self_us / all_self:>6.1f}%"
        )
    return "\n".join(lines)
