"""The machine's checks: RAM, disk, and GPUs through NVML (for real, and with a fake NVML)."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from vlmcap.doctor import system
from vlmcap.doctor.checks import Status
from vlmcap.doctor.vllm_platform import PlatformInfo

CPU = PlatformInfo("cpu", "CpuPlatform")
CUDA = PlatformInfo("cuda", "CudaPlatform")
GIB = 1024**3


def test_without_a_gpu_the_report_says_none_and_why():
    """On this machine there is no GPU: NVML does not initialise (or lists none), and the
    report says so with the reason, with no made-up driver or memory figures."""
    scan = system.scan_gpus()
    if scan.gpus:
        pytest.skip("a GPU is visible here; the fake-NVML tests cover the formatting")
    assert scan.error, "no GPU and no reason"
    assert scan.driver is None or scan.error
    on_cpu = system.gpus_check(scan, CPU)
    assert on_cpu.status is Status.OK
    assert on_cpu.detail.startswith("none (") and (scan.error or "") in on_cpu.detail
    on_cuda = system.gpus_check(scan, CUDA)
    assert on_cuda.status is Status.FAIL
    assert "nvidia-smi" in (on_cuda.fix or "")
    assert system.gpu_memory_checks(scan) == []
    if scan.driver is None:
        assert system.driver_check(scan, "12.8") is None


class FakeNVMLError(Exception):
    pass


def fake_pynvml(
    gpus: list[tuple[str, int, int]], *, init_error: bool = False
) -> types.SimpleNamespace:
    """A stand-in for nvidia-ml-py's ``pynvml`` with ``gpus`` as (name, total, free) bytes;
    ``import pynvml`` returns whatever ``sys.modules`` holds. ``calls`` records init/shutdown."""
    calls: list[str] = []

    def init() -> None:
        calls.append("init")
        if init_error:
            raise FakeNVMLError("Driver Not Loaded")

    def memory(handle: int) -> types.SimpleNamespace:
        _, total, free = gpus[handle]
        return types.SimpleNamespace(total=total, free=free, used=total - free)

    return types.SimpleNamespace(
        NVMLError=FakeNVMLError,
        nvmlInit=init,
        nvmlShutdown=lambda: calls.append("shutdown"),
        nvmlSystemGetDriverVersion=lambda: b"580.82.07",
        nvmlSystemGetCudaDriverVersion=lambda: 12040,
        nvmlDeviceGetCount=lambda: len(gpus),
        nvmlDeviceGetHandleByIndex=lambda index: index,
        nvmlDeviceGetName=lambda handle: gpus[handle][0],
        nvmlDeviceGetMemoryInfo=memory,
        calls=calls,
    )


def test_gpus_driver_and_memory_are_formatted_from_nvml(monkeypatch):
    """A fake ``pynvml`` (there is no GPU on this machine): two GPUs, the second mostly taken,
    and a driver older than the CUDA torch was built for."""
    fake = fake_pynvml(
        [("NVIDIA H200", 140 * GIB, 139 * GIB), ("NVIDIA H200", 140 * GIB, 28 * GIB)]
    )
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    scan = system.scan_gpus()
    assert fake.calls == ["init", "shutdown"]
    assert scan.driver == "580.82.07" and scan.cuda == "12.4"
    gpus = system.gpus_check(scan, CUDA)
    assert gpus.status is Status.OK
    assert gpus.detail == "2 (0: NVIDIA H200, 1: NVIDIA H200)"
    driver = system.driver_check(scan, "13.0")
    assert driver is not None and driver.status is Status.FAIL
    assert "update the NVIDIA driver" in (driver.fix or "")
    same = system.driver_check(scan, "12.4")
    assert same is not None and same.status is Status.OK
    memory = system.gpu_memory_checks(scan)
    assert [m.status for m in memory] == [Status.OK, Status.WARN]
    assert memory[0].detail == "139.0 GiB free of 140.0 GiB (99%)"
    assert "--gpu-memory-utilization 0.15" in (memory[1].fix or "")


def test_gpus_with_the_cpu_build_of_vllm_are_a_warning(monkeypatch):
    """Fake ``pynvml`` (no GPU here): GPUs present while vLLM's platform is cpu."""
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([("NVIDIA H100", 80 * GIB, 79 * GIB)]))
    check = system.gpus_check(system.scan_gpus(), CPU)
    assert check.status is Status.WARN
    assert "VLMCAP_BACKEND=gpu" in (check.fix or "")


def test_nvml_that_does_not_initialise_gives_its_reason(monkeypatch):
    """Fake ``pynvml`` (no GPU here) whose ``nvmlInit`` raises, as without a driver."""
    fake = fake_pynvml([], init_error=True)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    scan = system.scan_gpus()
    assert scan.gpus == [] and scan.driver is None
    assert scan.error == "NVML did not initialise: Driver Not Loaded"
    assert "shutdown" not in fake.calls


def test_missing_nvidia_ml_py_is_a_reason_too(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    scan = system.scan_gpus()
    assert scan.error is not None and "nvidia-ml-py" in scan.error


def test_ram_is_read_from_the_machine():
    import psutil

    check = system.ram_check()
    total = psutil.virtual_memory().total / GIB
    assert f"of {total:.1f} GiB" in check.detail


def test_disk_of_a_file_fails(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    check = system.disk_check(blocker)
    assert check.status is Status.FAIL and "--output-dir" in (check.fix or "")


def test_existing_ancestor_walks_up(tmp_path):
    assert system.existing_ancestor(tmp_path / "a" / "b") == tmp_path
    assert system.existing_ancestor(Path("/")) == Path("/")
