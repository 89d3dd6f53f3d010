"""NVML readings. The fake ``pynvml`` module here is the only mock in the monitor's tests:
this machine has no GPU, so NVML's answers for one can only be simulated."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass

import pytest

from vlmcap.monitor.gpu import gpu_stats


class FakeNVMLError(Exception):
    pass


@dataclass
class Memory:
    used: int
    total: int


@dataclass
class Rates:
    gpu: int
    memory: int


def fake_nvml(
    devices: int, *, power_fails: bool = False, init_fails: bool = False
) -> types.SimpleNamespace:
    """What ``import pynvml`` gives: NVML's calls for ``devices`` boards."""
    calls: list[str] = []

    def init() -> None:
        calls.append("init")
        if init_fails:
            raise FakeNVMLError("Driver Not Loaded")

    def power(handle: int) -> int:
        if power_fails:
            raise FakeNVMLError("Not Supported")
        return 250_500 + handle  # milliwatts

    return types.SimpleNamespace(
        calls=calls,
        NVMLError=FakeNVMLError,
        NVML_TEMPERATURE_GPU=0,
        nvmlInit=init,
        nvmlShutdown=lambda: calls.append("shutdown"),
        nvmlDeviceGetCount=lambda: devices,
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetName=lambda h: b"NVIDIA H200" if h == 0 else "NVIDIA H200",
        nvmlDeviceGetMemoryInfo=lambda h: Memory((h + 1) * 2**30, 141 * 2**30),
        nvmlDeviceGetUtilizationRates=lambda h: Rates(40 + h, 10),
        nvmlDeviceGetTemperature=lambda h, sensor: 50 + h,
        nvmlDeviceGetPowerUsage=power,
    )


def test_each_gpu_is_read(monkeypatch):
    fake = fake_nvml(2)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    gpus, why = gpu_stats()
    assert why is None and [g.index for g in gpus] == [0, 1]
    first, second = gpus
    assert first.name == second.name == "NVIDIA H200"  # bytes from older bindings decoded
    assert first.memory_used_bytes == 2**30 and second.memory_used_bytes == 2 * 2**30
    assert first.memory_total_bytes == 141 * 2**30
    assert (first.utilization_pct, second.temperature_c) == (40.0, 51.0)
    assert first.power_w == pytest.approx(250.5)
    assert fake.calls == ["init", "shutdown"]


def test_a_reading_nvml_refuses_is_none_with_a_note(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(1, power_fails=True))
    (gpu,), why = gpu_stats()
    assert why is None
    assert gpu.power_w is None and "Not Supported" in gpu.notes["power_w"]
    assert gpu.memory_used_bytes is not None  # the others are still read


def test_no_driver_gives_no_gpus_and_the_reason(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(1, init_fails=True))
    gpus, why = gpu_stats()
    assert gpus == [] and why is not None and "Driver Not Loaded" in why


def test_zero_devices(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(0))
    assert gpu_stats() == ([], "NVML found no GPU")


def test_bindings_not_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import raises ImportError
    gpus, why = gpu_stats()
    assert gpus == [] and why is not None and "nvidia-ml-py" in why


def test_this_machine_without_a_gpu_gives_an_empty_list_and_why():
    """The real nvidia-ml-py on a machine without NVIDIA's driver."""
    import pynvml  # nvidia-ml-py, a dependency: installed everywhere

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        pass
    else:
        pynvml.nvmlShutdown()
        pytest.skip("this machine has NVML: the no-GPU path cannot be seen here")
    gpus, why = gpu_stats()
    assert gpus == []
    assert why is not None and why.startswith("NVML unavailable")
