"""The built-in tiny models: Qwen2.5-VL architecture, small enough for any CPU.

``tiny-qwen2.5-vl`` is the trained model shipped in the package (about 2 M parameters, trained on
``vlmcap.tiny.synthetic`` scenes): it names the colour, shape, count and motion of coloured
shapes, so demos print right captions and tests can check meaning. ``tiny-random-qwen2.5-vl`` is
a random-weight build of about 1 M parameters made on first use, whose varied text suits tests
of the plumbing (long outputs, truncation, throughput).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

from vlmcap.plugins.capabilities import LoRAAdapter
from vlmcap.plugins.qwen2_5_vl import Qwen25VLPlugin
from vlmcap.tiny.lora import ADAPTER_FOLDER, TinyLoRASpec
from vlmcap.tiny.questions import ANSWER_INSTRUCTION

#: Context of the tiny models (their prompts are a few hundred tokens).
TINY_MAX_MODEL_LEN = 4096


@dataclass(frozen=True)
class TinyBuild:
    """Where a tiny model comes from: ``module.ensure()`` gives its folder (building it into the
    cache on first use); ``module.folder()`` says where that is without building (None: the
    folder ships with vlmcap). Names, not imports: listing plugins loads no torch."""

    module: str
    ensure: str
    folder: str | None = None

    def path(self) -> Path:
        return Path(getattr(importlib.import_module(self.module), self.ensure)())

    def planned(self) -> Path | None:
        """The folder it is (or will be) built in; None for a shipped model."""
        if self.folder is None:
            return None
        return Path(getattr(importlib.import_module(self.module), self.folder)())


class BuiltOnFirstUse:
    """``model_path``: the explicit one, else the tiny model of ``tiny`` (built once)."""

    tiny: ClassVar[TinyBuild]
    _model_path: str | None

    @property
    def model_path(self) -> str:
        if self._model_path is None:
            self._model_path = str(type(self).tiny.path())
        return self._model_path


class TinyQwen25VLPlugin(BuiltOnFirstUse, Qwen25VLPlugin):
    variant = "tiny-qwen2.5-vl"
    model_id = "vlmcap/tiny-qwen2.5-vl"
    description = "Built-in ~2M-parameter Qwen2.5-VL trained on synthetic shapes (shipped)."
    tiny = TinyBuild("vlmcap.tiny.model", "shipped_model_path")
    #: The instruction the tiny model was trained on (``vlmcap.tiny.questions``).
    qa_instruction: ClassVar[str] = ANSWER_INSTRUCTION
    default_max_model_len = TINY_MAX_MODEL_LEN


class TinyRandomQwen25VLPlugin(TinyQwen25VLPlugin):
    variant = "tiny-random-qwen2.5-vl"
    model_id = "vlmcap/tiny-random-qwen2.5-vl"
    description = "Built-in ~1M-parameter Qwen2.5-VL with random weights, built on first use."
    tiny = TinyBuild("vlmcap.tiny.model", "ensure_tiny_model", "tiny_model_dir")


class TinyLoRAQwen25VLPlugin(TinyRandomQwen25VLPlugin):
    """The random tiny model with a LoRA adapter in its folder that every request runs with
    (the way Phi-4-multimodal's vision path needs its ``vision-lora``)."""

    variant = "tiny-lora-qwen2.5-vl"
    model_id = "vlmcap/tiny-lora-qwen2.5-vl"
    description = "Built-in random tiny Qwen2.5-VL whose requests run with a LoRA adapter."
    tiny = TinyBuild("vlmcap.tiny.lora", "ensure_tiny_lora_model", "tiny_lora_dir")
    capabilities = replace(
        Qwen25VLPlugin.capabilities,
        lora=LoRAAdapter(subfolder=ADAPTER_FOLDER, max_rank=TinyLoRASpec().rank),
    )
