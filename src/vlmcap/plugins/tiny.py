"""The built-in tiny models: Qwen2.5-VL architecture, small enough for any CPU.

``tiny-qwen2.5-vl`` is the trained model shipped in the package (about 2 M parameters, trained on
``vlmcap.tiny.synthetic`` scenes): it names the colour, shape, count and motion of coloured
shapes, so demos print right captions and tests can check meaning. ``tiny-random-qwen2.5-vl`` is
a random-weight build of about 1 M parameters made on first use, whose varied text suits tests
of the plumbing (long outputs, truncation, throughput).
"""

from __future__ import annotations

from typing import ClassVar

from vlmcap.plugins.qwen2_5_vl import Qwen25VLPlugin
from vlmcap.tiny.questions import ANSWER_INSTRUCTION

#: Context of the tiny models (their prompts are a few hundred tokens).
TINY_MAX_MODEL_LEN = 4096


class TinyQwen25VLPlugin(Qwen25VLPlugin):
    variant = "tiny-qwen2.5-vl"
    model_id = "vlmcap/tiny-qwen2.5-vl"
    description = "Built-in ~2M-parameter Qwen2.5-VL trained on synthetic shapes (shipped)."
    #: The instruction the tiny model was trained on (``vlmcap.tiny.questions``).
    qa_instruction: ClassVar[str] = ANSWER_INSTRUCTION
    default_max_model_len = TINY_MAX_MODEL_LEN

    @property
    def model_path(self) -> str:
        if self._model_path is not None:
            return self._model_path
        from vlmcap.tiny.model import shipped_model_path

        self._model_path = str(shipped_model_path())
        return self._model_path


class TinyRandomQwen25VLPlugin(TinyQwen25VLPlugin):
    variant = "tiny-random-qwen2.5-vl"
    model_id = "vlmcap/tiny-random-qwen2.5-vl"
    description = "Built-in ~1M-parameter Qwen2.5-VL with random weights, built on first use."

    @property
    def model_path(self) -> str:
        if self._model_path is not None:
            return self._model_path
        from vlmcap.tiny.model import ensure_tiny_model

        self._model_path = str(ensure_tiny_model())
        return self._model_path
