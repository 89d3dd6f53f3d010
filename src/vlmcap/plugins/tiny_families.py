"""Tiny random-weight models of the other families, built into the cache on first use.

Each runs its family's plugin (the real architecture, tokenizer, processor and chat template at
tiny sizes: ``vlmcap.tiny.qwen3_vl``, ``vlmcap.tiny.gemma3``, ``vlmcap.tiny.smolvlm``), so every
family is exercised by the real engine on a CPU. Their text is random: they prove the
plumbing (prompts, media, decoding, engine settings), not captions.

    tiny-qwen3-vl         Qwen3VLPlugin on a tiny Qwen3-VL
    tiny-cosmos-reason2   CosmosReason2Plugin on the same model (reasoning prompt and decode)
    tiny-gemma3           GenericPlugin on a tiny Gemma 3 (pictures; a clip as frames)
    tiny-smolvlm          GenericPlugin on a tiny SmolVLM2 (tiled pictures; a clip as frames)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from vlmcap.plugins.cosmos_reason2 import CosmosReason2Plugin
from vlmcap.plugins.generic import GenericPlugin
from vlmcap.plugins.qwen3_vl import Qwen3VLPlugin
from vlmcap.plugins.tiny import TINY_MAX_MODEL_LEN


def _gemma3() -> Path:
    from vlmcap.tiny.gemma3 import ensure_tiny_gemma3

    return ensure_tiny_gemma3()


def _smolvlm() -> Path:
    from vlmcap.tiny.smolvlm import ensure_tiny_smolvlm

    return ensure_tiny_smolvlm()


def _qwen3_vl() -> Path:
    from vlmcap.tiny.qwen3_vl import ensure_tiny_qwen3_vl

    return ensure_tiny_qwen3_vl()


class BuiltOnFirstUse:
    """``model_path``: the explicit one, else the tiny model ``build`` makes (once)."""

    build: ClassVar[Callable[[], Path]]
    _model_path: str | None

    @property
    def model_path(self) -> str:
        if self._model_path is None:
            self._model_path = str(type(self).build())
        return self._model_path


class TinyQwen3VLPlugin(BuiltOnFirstUse, Qwen3VLPlugin):
    variant = "tiny-qwen3-vl"
    model_id = "vlmcap/tiny-qwen3-vl"
    description = "Built-in ~1M-parameter Qwen3-VL with random weights, built on first use."
    build = staticmethod(_qwen3_vl)
    default_max_model_len = TINY_MAX_MODEL_LEN


class TinyCosmosReason2Plugin(BuiltOnFirstUse, CosmosReason2Plugin):
    variant = "tiny-cosmos-reason2"
    model_id = "vlmcap/tiny-qwen3-vl"
    description = "Cosmos-Reason2's prompts and reasoning decode on the tiny Qwen3-VL."
    build = staticmethod(_qwen3_vl)
    default_max_model_len = TINY_MAX_MODEL_LEN


class TinyGemma3Plugin(BuiltOnFirstUse, GenericPlugin):
    variant = "tiny-gemma3"
    model_id = "vlmcap/tiny-gemma3"
    description = "The generic plugin on a built-in ~0.7M-parameter Gemma 3 (random weights)."
    build = staticmethod(_gemma3)
    default_max_model_len = TINY_MAX_MODEL_LEN


class TinySmolVLMPlugin(BuiltOnFirstUse, GenericPlugin):
    variant = "tiny-smolvlm"
    model_id = "vlmcap/tiny-smolvlm"
    description = "The generic plugin on a built-in ~0.7M-parameter SmolVLM2 (random weights)."
    build = staticmethod(_smolvlm)
    default_max_model_len = TINY_MAX_MODEL_LEN
