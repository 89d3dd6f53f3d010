"""Snapshots of the offline engine in this process: ``LLM.get_metrics()`` and the job's progress.

vLLM V1 keeps its metrics in this process's Prometheus registry, updated by each
``engine.step()``; ``get_metrics()`` reads them without touching the engine, so a snapshot
taken on another thread never blocks a step. It needs stats logging on
(``LLM(..., disable_log_stats=False)``, which ``vlmcap.engine.args.engine_kwargs`` sets); with
it off every engine figure is ``None`` with a note saying so.

The registry is per process, and each new ``LLM`` replaces the metrics of the one before it
there. Metrics are kept only where their ``model_name`` label is this engine's served model
name, so an engine whose metrics a later ``LLM`` (of another model) took over shows ``None``
with a note rather than the other engine's figures.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from vlmcap.core.progress import Progress
from vlmcap.monitor.progress import RateMeter
from vlmcap.monitor.prometheus import MetricValues
from vlmcap.monitor.snapshot import HealthSnapshot, Readings
from vlmcap.monitor.source import common_readings
from vlmcap.monitor.vllm_metrics import ENGINE_FIELDS, REQUESTS_RUNNING, engine_readings

logger = logging.getLogger(__name__)

STATS_OFF = (
    "vLLM's stats logging is off: build the LLM with disable_log_stats=False "
    "(engine_args) to see engine metrics"
)
#: The label vLLM puts its served model name in.
MODEL_LABEL = "model_name"
NO_HEALTH = "the offline engine has no /health (a dead engine fails the run instead)"


def metric_values(metrics: list[Any], model_name: str | None = None) -> MetricValues:
    """``LLM.get_metrics()``'s objects (``vllm.v1.metrics.reader``) as ``MetricValues``; only
    those of ``model_name`` (their label) when given."""
    values = MetricValues()
    for metric in metrics:
        name, labels = str(metric.name), dict(metric.labels)
        if model_name is not None and labels.get(MODEL_LABEL, model_name) != model_name:
            continue
        if hasattr(metric, "buckets"):  # Histogram
            values.add_histogram(name, labels, float(metric.count), float(metric.sum))
        elif hasattr(metric, "values"):  # Vector (per-position counters)
            values.add(name, labels, float(sum(metric.values)))
        elif hasattr(metric, "value"):  # Gauge, Counter
            values.add(name, labels, float(metric.value))
    return values


def read_engine_metrics(llm: Any) -> tuple[MetricValues | None, str]:
    """The engine's metrics, or ``None`` and why they cannot be read."""
    engine = getattr(llm, "llm_engine", None)
    if engine is not None and getattr(engine, "log_stats", True) is False:
        return None, STATS_OFF
    get_metrics = getattr(llm, "get_metrics", None)
    if get_metrics is None:
        return None, "this vLLM has no LLM.get_metrics() (V1 metrics)"
    try:
        metrics = get_metrics()
    except AssertionError as exc:  # vLLM asserts that stats logging is on
        return None, f"{STATS_OFF} ({exc})"
    except (AttributeError, RuntimeError, ValueError) as exc:
        logger.debug("LLM.get_metrics() failed", exc_info=True)
        return None, f"LLM.get_metrics() failed: {exc}"
    model_name = served_model_name(llm)
    values = metric_values(metrics, model_name)
    if REQUESTS_RUNNING not in values.names() and any(m.name == REQUESTS_RUNNING for m in metrics):
        others = sorted({str(m.labels.get(MODEL_LABEL)) for m in metrics} - {"None"})
        return None, (
            f"vLLM's metrics in this process are another engine's ({', '.join(others)}): "
            "a later LLM took over the registry"
        )
    return values, ""


def served_model_name(llm: Any) -> str | None:
    """The ``model_name`` label of ``llm``'s metrics (its served model name)."""
    config = getattr(getattr(llm, "llm_engine", None), "model_config", None)
    name = getattr(config, "served_model_name", None) or getattr(config, "model", None)
    if isinstance(name, list | tuple):
        name = name[0] if name else None
    return name if isinstance(name, str) else None


class EngineSource:
    """Snapshots of ``llm`` (a ``vllm.LLM`` in this process) and, if given, a job's progress
    and the asyncio loop whose pending tasks to count."""

    def __init__(
        self,
        llm: Any,
        progress: Progress | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        name: str = "engine",
    ) -> None:
        self.llm = llm
        self.progress = progress
        self.loop = loop
        self.name = name
        self._meter = RateMeter()

    def snapshot(self) -> HealthSnapshot:
        metrics, why = read_engine_metrics(self.llm)
        readings = Readings()
        if metrics is None:
            readings.absent(ENGINE_FIELDS, why)
        else:
            readings.update(engine_readings(metrics))
        readings.update(
            common_readings(self.progress, metrics, self._meter, self.loop, engine_children=True)
        )
        readings.put("healthy", None, NO_HEALTH)
        return HealthSnapshot.from_readings(self.name, readings)
