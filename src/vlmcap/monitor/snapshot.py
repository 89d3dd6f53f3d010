"""``HealthSnapshot``: what a job and its vLLM engine look like at one moment.

Every figure is either measured or ``None``; a ``None`` always comes with a line in ``notes``
saying why (the running vLLM does not expose it, no GPU, nothing to compare with yet...), never
a made-up 0. Sources (``engine_source``, ``server_source``, ``local_source``) fill a
``Readings`` and turn it into a snapshot with ``HealthSnapshot.from_readings``.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

#: Bytes in a GiB, for the readable summary.
GIB = 1024**3
#: Shown for a ``None`` figure in ``summary()`` and the CLI table.
NOT_AVAILABLE = "n/a"
#: Note given to a field that a source left out without saying why.
UNREPORTED = "not reported by this source"


@dataclass(frozen=True)
class GpuStats:
    """One GPU as NVML sees it; a reading NVML refused is ``None`` with a note."""

    index: int
    name: str | None = None
    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None
    utilization_pct: float | None = None
    temperature_c: float | None = None
    power_w: float | None = None
    notes: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        used, total = self.memory_used_bytes, self.memory_total_bytes
        memory = f"{_gib(used)}/{_gib(total)} GiB" if used is not None and total else "mem n/a"
        return (
            f"GPU{self.index} {memory}, {_num(self.utilization_pct, '%', 0)} busy, "
            f"{_num(self.temperature_c, ' C', 0)}, {_num(self.power_w, ' W', 0)}"
        )


@dataclass(frozen=True)
class ProcessMemory:
    """Resident memory of one process (vLLM's engine core, a worker, its API server)."""

    pid: int
    name: str
    rss_bytes: int


@dataclass(frozen=True)
class HealthSnapshot:
    """A job's health at ``timestamp`` (seconds since the epoch), as seen from ``source``.

    Rates (``items_per_s``, ``output_tokens_per_s``) are since the source's previous snapshot;
    latency means and the prefix-cache hit rate are over the engine's life (vLLM's histograms
    and counters). ``kv_cache_usage_pct`` is 0-100. ``requests_swapped`` exists only on vLLM
    versions that swap (V0); V1 has no swapped requests.
    """

    timestamp: float
    source: str
    healthy: bool | None = None
    requests_running: int | None = None
    requests_waiting: int | None = None
    requests_swapped: int | None = None
    kv_cache_usage_pct: float | None = None
    prefix_cache_hit_rate: float | None = None
    preemptions: int | None = None
    mean_time_to_first_token_s: float | None = None
    mean_e2e_latency_s: float | None = None
    mean_queue_time_s: float | None = None
    mean_inter_token_latency_s: float | None = None
    ram_used_bytes: int | None = None
    ram_total_bytes: int | None = None
    process_rss_bytes: int | None = None
    engine_processes: list[ProcessMemory] | None = None
    threads: int | None = None
    python_threads: int | None = None
    asyncio_tasks: int | None = None
    gpus: list[GpuStats] = field(default_factory=list)
    items_done: int | None = None
    items_failed: int | None = None
    items_per_s: float | None = None
    output_tokens_per_s: float | None = None
    oldest_inflight_age_s: float | None = None
    notes: dict[str, str] = field(default_factory=dict)

    @classmethod
    def field_names(cls) -> list[str]:
        """The figures a source may fill (everything but timestamp, source and notes)."""
        return [f.name for f in dataclasses.fields(cls) if f.name not in _FIXED]

    @classmethod
    def from_readings(
        cls, source: str, readings: Readings, timestamp: float | None = None
    ) -> HealthSnapshot:
        """A snapshot of ``readings``; a field they leave out is ``None`` with a note."""
        names = set(cls.field_names())
        unknown = set(readings.values) - names
        if unknown:
            raise ValueError(f"not snapshot fields: {sorted(unknown)}")
        values = dict(readings.values)
        notes = dict(readings.notes)
        for name in names:
            if values.get(name) is None and name != "gpus":
                values[name] = None
                notes.setdefault(name, UNREPORTED)
        values.setdefault("gpus", [])
        if not values["gpus"]:
            notes.setdefault("gpus", "no GPU readings")
        else:
            notes.pop("gpus", None)
        notes = {k: v for k, v in notes.items() if k == "gpus" or values.get(k) is None}
        return cls(
            timestamp=time.time() if timestamp is None else timestamp,
            source=source,
            notes=dict(sorted(notes.items())),
            **values,
        )

    @property
    def engine_rss_bytes(self) -> int | None:
        """RSS of vLLM's engine processes together (``None`` where they were not looked at)."""
        if self.engine_processes is None:
            return None
        return sum(p.rss_bytes for p in self.engine_processes)

    def missing(self) -> list[str]:
        """Names of the fields that are ``None`` (each has a note)."""
        return [n for n in self.field_names() if getattr(self, n) is None]

    def rows(self) -> list[tuple[str, str, str]]:
        """``(label, value, note)`` per line of the readable view; note is "" when measured."""
        special = {
            "healthy": _health(self.healthy),
            "prefix_cache_hit_rate": _num(_pct(self.prefix_cache_hit_rate), "%", 1),
            "ram_used_bytes": self._ram(),
            "process_rss_bytes": _bytes(self.process_rss_bytes),
            "engine_processes": self._engine_rss(),
        }
        rows = [
            (
                label,
                special.get(name) or _num(getattr(self, name), unit, digits),
                self.notes.get(name, ""),
            )
            for label, name, unit, digits in _ROWS
        ]
        if self.gpus:
            rows.extend(
                (f"GPU {g.index}", g.summary(), "; ".join(g.notes.values())) for g in self.gpus
            )
        else:
            rows.append(("GPUs", "none", self.notes.get("gpus", "")))
        return rows

    def summary(self) -> str:
        """One readable line: requests, KV cache, progress, memory, GPUs."""
        gpus = "; ".join(g.summary() for g in self.gpus) or f"no GPU ({self.notes.get('gpus', '')})"
        parts = [
            self.source,
            f"health {_health(self.healthy)}",
            f"requests {_num(self.requests_running)} running, "
            f"{_num(self.requests_waiting)} waiting",
            f"KV cache {_num(self.kv_cache_usage_pct, '%', 1)}",
            f"prefix hits {_num(_pct(self.prefix_cache_hit_rate), '%', 1)}",
            f"TTFT {_num(self.mean_time_to_first_token_s, ' s', 3)}",
            f"items {_num(self.items_done)} done, {_num(self.items_failed)} failed, "
            f"{_num(self.items_per_s, '/s', 2)}, {_num(self.output_tokens_per_s, ' tok/s', 1)}",
            f"oldest in flight {_num(self.oldest_inflight_age_s, ' s', 1)}",
            f"RAM {self._ram()}",
            f"RSS {_bytes(self.process_rss_bytes)}, vLLM {self._engine_rss()}",
            f"threads {_num(self.threads)}, tasks {_num(self.asyncio_tasks)}",
            gpus,
        ]
        return " | ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (``json.dumps(snapshot.to_dict())``)."""
        data = dataclasses.asdict(self)
        data["engine_rss_bytes"] = self.engine_rss_bytes
        return data

    def _ram(self) -> str:
        if self.ram_used_bytes is None:
            return NOT_AVAILABLE
        if self.ram_total_bytes:
            return f"{_gib(self.ram_used_bytes)}/{_gib(self.ram_total_bytes)} GiB"
        return _bytes(self.ram_used_bytes)

    def _engine_rss(self) -> str:
        if self.engine_processes is None:
            return NOT_AVAILABLE
        count = len(self.engine_processes)
        return f"{_bytes(self.engine_rss_bytes)} ({count} process{'es' if count != 1 else ''})"


@dataclass
class Readings:
    """Figures gathered for a snapshot, with a note for every one that is ``None``."""

    values: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def put(self, name: str, value: Any, note: str) -> None:
        """``name`` is ``value``; where that is ``None``, ``note`` says why."""
        self.values[name] = value
        if value is None:
            self.notes[name] = note
        else:
            self.notes.pop(name, None)

    def absent(self, names: list[str] | tuple[str, ...], note: str) -> None:
        """Every one of ``names`` is ``None`` because of ``note``."""
        for name in names:
            self.put(name, None, note)

    def update(self, other: Readings) -> None:
        """Take ``other``'s figures and notes over these."""
        for name, value in other.values.items():
            self.put(name, value, other.notes.get(name, UNREPORTED))
        self.notes.update(other.notes)


_FIXED = frozenset({"timestamp", "source", "notes"})
#: The readable view's lines: label, field, unit, decimals.
_ROWS = (
    ("health", "healthy", "", 0),
    ("requests running", "requests_running", "", 0),
    ("requests waiting", "requests_waiting", "", 0),
    ("requests swapped", "requests_swapped", "", 0),
    ("KV cache used", "kv_cache_usage_pct", "%", 1),
    ("prefix-cache hits", "prefix_cache_hit_rate", "%", 1),
    ("preemptions", "preemptions", "", 0),
    ("mean time to first token", "mean_time_to_first_token_s", " s", 3),
    ("mean request latency", "mean_e2e_latency_s", " s", 3),
    ("mean queue time", "mean_queue_time_s", " s", 3),
    ("mean inter-token latency", "mean_inter_token_latency_s", " s", 4),
    ("items done", "items_done", "", 0),
    ("items failed", "items_failed", "", 0),
    ("items/s", "items_per_s", "", 2),
    ("output tokens/s", "output_tokens_per_s", "", 1),
    ("oldest in-flight request", "oldest_inflight_age_s", " s", 1),
    ("system RAM used", "ram_used_bytes", "", 0),
    ("RSS of this process", "process_rss_bytes", "", 0),
    ("RSS of vLLM processes", "engine_processes", "", 0),
    ("threads", "threads", "", 0),
    ("pending asyncio tasks", "asyncio_tasks", "", 0),
)


def _gib(value: int | None) -> str:
    return NOT_AVAILABLE if value is None else f"{value / GIB:.1f}"


def _bytes(value: int | None) -> str:
    return NOT_AVAILABLE if value is None else f"{value / GIB:.2f} GiB"


def _pct(rate: float | None) -> float | None:
    return None if rate is None else 100.0 * rate


def _num(value: float | None, unit: str = "", digits: int = 0) -> str:
    if value is None:
        return NOT_AVAILABLE
    if isinstance(value, int) and not digits:
        return f"{value}{unit}"
    return f"{value:.{digits}f}{unit}"


def _health(healthy: bool | None) -> str:
    if healthy is None:
        return NOT_AVAILABLE
    return "ok" if healthy else "FAILING"
