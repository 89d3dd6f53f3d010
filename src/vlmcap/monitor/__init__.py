"""Health snapshots of a job and its vLLM engine, once or every few seconds.

    from vlmcap.monitor import EngineSource, ServerSource

    snapshot = EngineSource(llm, progress).snapshot()      # the offline engine in this process
    snapshot = ServerSource("http://127.0.0.1:8000").snapshot()   # a running server
    print(snapshot.summary()); json.dumps(snapshot.to_dict())

| module | what it is |
|---|---|
| ``snapshot`` | ``HealthSnapshot``, ``GpuStats``: the figures, ``summary()``, ``to_dict()`` |
| ``prometheus`` | Prometheus text (``/metrics``) parsed into ``MetricValues`` |
| ``vllm_metrics`` | vLLM V1's metric names and the snapshot fields they give |
| ``engine_source`` | the offline engine: ``LLM.get_metrics()`` |
| ``server_source`` | a server: ``/metrics`` and ``/health`` |
| ``source`` | the source protocol, ``LocalSource`` (no vLLM) |
| ``process`` | RAM, RSS of this process and vLLM's engine processes, threads, asyncio tasks |
| ``gpu`` | NVML per-GPU readings |
| ``progress`` | a job's ``vlmcap.core.progress.Progress`` as snapshot fields, rates |
| ``background`` | the logging thread and its environment switches |
| ``watchdog`` | the hang watchdog |
| ``exporter`` | a job's own Prometheus endpoint |
| ``watch`` | what a job command runs beside its work (watchdog, monitor, endpoint) |

``progress`` is the run's live view (``vlmcap.core.progress.Progress``), which the loop driver
updates for every backend; the sources, the watchdog and the endpoint only read it.
"""

from vlmcap.monitor.background import (
    BackgroundMonitor,
    monitor_from_env,
    start_background_logging,
    start_from_env,
    stop_background_logging,
)
from vlmcap.monitor.engine_source import EngineSource
from vlmcap.monitor.server_source import ServerSource, ServerUnreachable
from vlmcap.monitor.snapshot import GpuStats, HealthSnapshot, ProcessMemory
from vlmcap.monitor.source import LocalSource, SnapshotSource

__all__ = [
    "BackgroundMonitor",
    "EngineSource",
    "GpuStats",
    "HealthSnapshot",
    "LocalSource",
    "ProcessMemory",
    "ServerSource",
    "ServerUnreachable",
    "SnapshotSource",
    "monitor_from_env",
    "start_background_logging",
    "start_from_env",
    "stop_background_logging",
]
