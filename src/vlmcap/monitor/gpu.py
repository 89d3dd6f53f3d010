"""Per-GPU memory, utilisation, temperature and power through NVML (``nvidia-ml-py``).

No GPU (no NVML library, no driver, ``nvidia-ml-py`` not installed, zero devices) is not an
error: ``gpu_stats()`` then returns an empty list and the reason. One reading a device refuses
(power on some boards, temperature in some containers) is ``None`` with a note.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from vlmcap.monitor.snapshot import GpuStats

logger = logging.getLogger(__name__)

#: NVML reports power in milliwatts.
MILLIWATTS_PER_WATT = 1000.0


T = TypeVar("T")
#: ``read(nvml, nvml_error, index)``: one device's readings (``per_gpu``).
DeviceReader = Callable[[Any, type[BaseException], int], T]


def gpu_stats() -> tuple[list[GpuStats], str | None]:
    """``(gpus, None)``, or ``([], why there are no readings)``."""
    return per_gpu(_device)


def per_gpu(read: DeviceReader[T]) -> tuple[list[T], str | None]:
    """``read`` on every GPU inside one NVML session: ``(readings, None)``, or
    ``([], why there are none)`` (no ``nvidia-ml-py``, no driver, no device, NVML failing)."""
    try:
        import pynvml
    except ImportError:
        return [], "nvidia-ml-py is not installed (pip install nvidia-ml-py)"
    nvml_error: type[BaseException] = pynvml.NVMLError
    try:
        pynvml.nvmlInit()
    except nvml_error as exc:
        return [], f"NVML unavailable (no NVIDIA GPU or driver here): {exc}"
    try:
        count = int(pynvml.nvmlDeviceGetCount())
        if count == 0:
            return [], "NVML found no GPU"
        return [read(pynvml, nvml_error, i) for i in range(count)], None
    except nvml_error as exc:
        return [], f"NVML failed: {exc}"
    finally:
        try:
            pynvml.nvmlShutdown()
        except nvml_error as exc:
            logger.debug("nvmlShutdown failed: %s", exc)


def _device(nvml: Any, nvml_error: type[BaseException], index: int) -> GpuStats:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    notes: dict[str, str] = {}

    def read(field: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except nvml_error as exc:
            notes[field] = f"NVML: {exc}"
            return None

    name = read("name", lambda: nvml.nvmlDeviceGetName(handle))
    memory = read("memory", lambda: nvml.nvmlDeviceGetMemoryInfo(handle))
    rates = read("utilization_pct", lambda: nvml.nvmlDeviceGetUtilizationRates(handle))
    temperature = read(
        "temperature_c",
        lambda: nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU),
    )
    power = read("power_w", lambda: nvml.nvmlDeviceGetPowerUsage(handle))
    if memory is None:
        notes["memory_used_bytes"] = notes["memory_total_bytes"] = notes.pop("memory")
    return GpuStats(
        index=index,
        name=name.decode() if isinstance(name, bytes) else name,
        memory_used_bytes=None if memory is None else int(memory.used),
        memory_total_bytes=None if memory is None else int(memory.total),
        utilization_pct=None if rates is None else float(rates.gpu),
        temperature_c=None if temperature is None else float(temperature),
        power_w=None if power is None else power / MILLIWATTS_PER_WATT,
        notes=notes,
    )
