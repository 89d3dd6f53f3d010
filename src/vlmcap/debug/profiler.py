"""``--profile DIR``: vLLM's torch profiler around a few engine steps, and what its traces say.

Offline (``vlmcap caption`` / ``vlmcap qa`` without a server), the engine is started with
vLLM's profiler configured to write into DIR (``profiler_config``: the ``profiler_config``
engine argument, DIR made absolute as vLLM's workers need). ``EngineProfiler`` is a step hook
(``vlmcap.debug.steps``): it lets ``steps`` engine steps pass to warm up, then calls
``llm.start_profile(prefix, max_iterations=steps)``, so vLLM's worker records exactly
``steps`` of its own steps and then stops by itself, writing its trace. vLLM's engine core
runs ahead of this process by a few steps, so the hook does not stop at a count of its own:
once ``steps`` steps have passed here and the worker's trace is in DIR, it calls
``llm.stop_profile()`` (which ends vLLM's profiling session). A run that ends sooner is stopped
by ``close()`` (``vlmcap.debug.steps.close_hooks``), with what was recorded so far. A
configured profiler that is never started costs nothing: vLLM's worker creates its torch
profiler on the first ``start_profile``.

Through a server, ``vlmcap.debug.server_profiler.ServerProfiler`` drives the same profiler
over ``POST /start_profile`` and ``POST /stop_profile``.

Either way the traces are Chrome/Perfetto JSON (``traceEvents``, gzipped by default);
``top_operators(paths)`` aggregates their events by name (calls, total and self time),
``format_operators`` makes the table that is logged and ``summarise(DIR, prefix)`` does both
for one session's traces.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vllm import LLM

    from vlmcap.config import VLMConfig
    from vlmcap.engine.transport import StepInfo

logger = logging.getLogger(__name__)

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
#: Profiler settings vlmcap picks (a user's ``engine_args.profiler_config`` still wins):
#: no Python stacks, which on small CPU ops cost more than the ops themselves.
PROFILER_DEFAULTS: dict[str, Any] = {"profiler": "torch", "torch_profiler_with_stack": False}
PROFILER_KEY = "profiler_config"
#: After the window, the hook waits at least this many more steps (or one window more) for
#: vLLM's trace to appear before it stops the profile anyway.
MIN_EXTRA_WAIT_STEPS = 64
US_PER_MS = 1000.0
NAME_WIDTH = 60
PERCENT = 100.0


class TraceError(ValueError):
    """A file is not a Chrome/Perfetto trace (not JSON, or without a ``traceEvents`` list)."""


# ---- configuration ------------------------------------------------------------------------


def profile_dir(path: str | os.PathLike[str]) -> Path:
    """``path`` as the absolute folder vLLM's workers need (``~`` expanded)."""
    return Path(path).expanduser().absolute()


def profiler_config(config: VLMConfig) -> dict[str, Any] | None:
    """The ``profiler_config`` engine argument for ``config.profile`` (None without it)."""
    if config.profile is None:
        return None
    return {**PROFILER_DEFAULTS, "torch_profiler_dir": str(profile_dir(config.profile))}


def merge_profiler_config(kwargs: dict[str, Any], config: VLMConfig) -> None:
    """Put ``config``'s profiler settings into the engine ``kwargs``, under any
    ``profiler_config`` dict already there (a user's ``engine_args`` keep their keys)."""
    ours = profiler_config(config)
    if ours is None:
        return
    theirs = kwargs.get(PROFILER_KEY)
    if theirs is None:
        kwargs[PROFILER_KEY] = ours
    elif isinstance(theirs, dict):
        kwargs[PROFILER_KEY] = {**ours, **theirs}
    else:
        logger.warning("engine_args sets %s itself: --profile's settings not applied", PROFILER_KEY)


def new_prefix() -> str:
    """A file-name prefix for one profiling session's traces (what vLLM accepts:
    letters, digits, ``._-``, at most 128 characters)."""
    return f"vlmcap-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


# ---- traces -------------------------------------------------------------------------------


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
    totals: dict[tuple[str, str], list[float]] = {}
    for path in trace_paths:
        for spans in _spans(trace_events(path)).values():
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
    if by not in ("self", "total"):
        raise ValueError(f"sort by 'self' or 'total', not {by!r}")
    stats.sort(key=lambda s: (s.self_us if by == "self" else s.total_us, s.calls), reverse=True)
    return stats if n is None else stats[:n]


def profiled_steps(trace_paths: Iterable[str | os.PathLike[str]]) -> int:
    """Engine steps the traces hold: vLLM's worker annotates each one ``execute_...``."""
    return sum(
        1
        for path in trace_paths
        for event in trace_events(path)
        if event.get("ph") == "X"
        and event.get("cat") == STEP_CATEGORY
        and str(event.get("name", "")).startswith(STEP_NAME_PREFIX)
    )


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


@dataclass(frozen=True)
class ProfileSummary:
    """What one profiling session left: its traces, the steps they hold, the top operators."""

    directory: Path
    traces: tuple[Path, ...]
    steps: int
    ops: tuple[OpStat, ...]
    errors: tuple[str, ...] = ()  # traces that did not load

    def table(self) -> str:
        names = ", ".join(p.name for p in self.traces)
        title = (
            f"top {len(self.ops)} operators by self time over {self.steps} profiled engine "
            f"steps ({names} in {self.directory}):"
        )
        return format_operators(self.ops, title)


def summarise(
    directory: str | os.PathLike[str], prefix: str | None = None, n: int = DEFAULT_TOP
) -> ProfileSummary:
    """The traces in ``directory`` named ``prefix...``: loaded, counted and summarised; a trace
    that does not load is named in ``errors`` (and left out) rather than raised."""
    folder = Path(directory)
    good: list[Path] = []
    errors: list[str] = []
    for path in find_traces(folder, prefix):
        try:
            load_trace(path)
        except (TraceError, OSError) as exc:
            errors.append(str(exc))
            continue
        good.append(path)
    ops = top_operators(good, n) if good else []
    steps = profiled_steps(good) if good else 0
    return ProfileSummary(folder, tuple(good), steps, tuple(ops), tuple(errors))


def log_summary(summary: ProfileSummary) -> None:
    for error in summary.errors:
        logger.warning("profile: %s", error)
    if not summary.traces:
        logger.warning("profile: no trace in %s", summary.directory)
        return
    logger.info("%s", summary.table())


# ---- offline: a step hook -----------------------------------------------------------------


def engine_profile_dir(llm: LLM) -> Path | None:
    """Where ``llm``'s workers write torch traces (None: started without the torch profiler)."""
    vllm_config = getattr(getattr(llm, "llm_engine", None), "vllm_config", None)
    settings = getattr(vllm_config, "profiler_config", None)
    if settings is None or settings.profiler != "torch" or not settings.torch_profiler_dir:
        return None
    return profile_dir(settings.torch_profiler_dir)


class Phase(Enum):
    WARMING_UP = "warming up"
    RECORDING = "recording"
    DONE = "done"


class EngineProfiler:
    """Step hook: ``warmup`` steps, then vLLM's profiler for the next ``steps`` engine steps.

    Call ``close()`` when the run ends (``vlmcap.debug.steps.close_hooks``): it stops a
    profile that is still on, and returns the trace paths (also in ``summary``).
    """

    def __init__(
        self,
        llm: LLM,
        directory: str | os.PathLike[str],
        steps: int,
        *,
        warmup: int | None = None,
        prefix: str | None = None,
        top: int = DEFAULT_TOP,
    ) -> None:
        if steps < 1:
            raise ValueError(f"profile at least one step, not {steps}")
        self.llm = llm
        self.directory = profile_dir(directory)
        self.steps = steps
        self.warmup = steps if warmup is None else warmup
        self.prefix = prefix or new_prefix()
        self.top = top
        self.phase = Phase.WARMING_UP
        self.started_after: int | None = None  # the step index after which it started
        self.stopped_after: int | None = None
        self.summary: ProfileSummary | None = None

    @classmethod
    def from_config(cls, config: VLMConfig, llm: LLM) -> EngineProfiler:
        if config.profile is None:
            raise ValueError("config.profile is not set")
        return cls(llm, config.profile, config.profile_steps)

    def __call__(self, info: StepInfo) -> None:
        if self.phase is Phase.WARMING_UP and info.index >= self.warmup:
            self._start(info.index)
        elif self.phase is Phase.RECORDING and self.started_after is not None:
            passed = info.index - self.started_after
            if passed >= self.steps and (
                find_traces(self.directory, self.prefix)
                or passed >= self.steps + max(self.steps, MIN_EXTRA_WAIT_STEPS)
            ):
                self._stop(info.index)

    def _start(self, index: int) -> None:
        engine_dir = engine_profile_dir(self.llm)
        if engine_dir is None:
            self.phase = Phase.DONE
            logger.warning(
                "profile: the engine was started without vLLM's torch profiler "
                "(--profile): nothing profiled"
            )
            return
        if engine_dir != self.directory:
            logger.warning(
                "profile: the engine writes its traces into %s, not %s", engine_dir, self.directory
            )
            self.directory = engine_dir
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            self.llm.start_profile(self.prefix, max_iterations=self.steps)
        except Exception as exc:  # noqa: BLE001 - vLLM raises a plain Exception for a worker error
            self.phase = Phase.DONE
            logger.warning(
                "profile: cannot start vLLM's profiler (was the engine started with "
                "--profile?): %s",
                exc,
            )
            return
        self.phase = Phase.RECORDING
        self.started_after = index
        logger.info(
            "profile: recording %d engine steps after step %d into %s (traces %s*)",
            self.steps,
            index,
            self.directory,
            self.prefix,
        )

    def _stop(self, index: int | None) -> None:
        self.phase = Phase.DONE
        self.stopped_after = index
        try:
            self.llm.stop_profile()
        except Exception as exc:  # noqa: BLE001 - vLLM raises a plain Exception for a worker error
            logger.warning("profile: stopping vLLM's profiler failed: %s", exc)
        self.summary = summarise(self.directory, self.prefix, self.top)
        log_summary(self.summary)

    def close(self) -> list[Path]:
        """End of the run: stop a profile still on; the trace paths (none if it never began)."""
        if self.phase is Phase.RECORDING:
            logger.info("profile: the run ended before %d profiled steps: stopping", self.steps)
            self._stop(None)
        elif self.phase is Phase.WARMING_UP:
            self.phase = Phase.DONE
            logger.warning(
                "profile: the run ended within the %d warm-up steps: nothing profiled",
                self.warmup,
            )
        return list(self.summary.traces) if self.summary is not None else []
