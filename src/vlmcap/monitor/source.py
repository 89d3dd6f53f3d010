"""What every snapshot source has in common, and the source without vLLM (``LocalSource``).

A source is anything with ``snapshot() -> HealthSnapshot``: the offline engine
(``EngineSource``), a running server (``ServerSource``), or only this process and machine
(``LocalSource``, the background monitor's default).
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from vlmcap.core.progress import Progress
from vlmcap.monitor.gpu import gpu_stats
from vlmcap.monitor.process import process_readings
from vlmcap.monitor.progress import RateMeter, progress_readings
from vlmcap.monitor.prometheus import MetricValues
from vlmcap.monitor.snapshot import HealthSnapshot, Readings
from vlmcap.monitor.vllm_metrics import ENGINE_FIELDS


class SnapshotSource(Protocol):
    def snapshot(self) -> HealthSnapshot:
        """The health of the job now; raises nothing for a figure it cannot read."""
        ...


def gpu_readings(visible: bool = True, why_not: str = "") -> Readings:
    """``gpus`` of this machine (``visible``), else an empty list with ``why_not``."""
    readings = Readings()
    gpus, why = gpu_stats() if visible else ([], why_not)
    readings.values["gpus"] = gpus
    if why:
        readings.notes["gpus"] = why
    return readings


def common_readings(
    progress: Progress | None,
    metrics: MetricValues | None,
    meter: RateMeter,
    loop: asyncio.AbstractEventLoop | None,
    *,
    engine_children: bool,
) -> Readings:
    """Process, GPU and progress figures (everything but vLLM's own metrics)."""
    readings = process_readings(loop, engine_children=engine_children)
    readings.update(gpu_readings())
    readings.update(progress_readings(progress, metrics, meter))
    return readings


class LocalSource:
    """This process and machine (RAM, RSS, threads, GPUs) and a job's progress; no vLLM."""

    def __init__(
        self,
        progress: Progress | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        name: str = "local",
    ) -> None:
        self.progress = progress
        self.loop = loop
        self.name = name
        self._meter = RateMeter()

    def snapshot(self) -> HealthSnapshot:
        readings = common_readings(
            self.progress, None, self._meter, self.loop, engine_children=True
        )
        readings.absent(ENGINE_FIELDS, "no vLLM engine or server attached to this monitor")
        readings.put("healthy", None, "no vLLM engine or server attached to this monitor")
        return HealthSnapshot.from_readings(self.name, readings)
