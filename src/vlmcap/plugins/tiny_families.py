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

from vlmcap.plugins.cosmos_reason2 import CosmosReason2Plugin
from vlmcap.plugins.generic import GenericPlugin
from vlmcap.plugins.qwen3_vl import Qwen3VLPlugin
from vlmcap.plugins.tiny import TINY_MAX_MODEL_LEN, BuiltOnFirstUse, TinyBuild

QWEN3_VL = TinyBuild("vlmcap.tiny.qwen3_vl", "ensure_tiny_qwen3_vl", "tiny_qwen3_vl_dir")


class TinyQwen3VLPlugin(BuiltOnFirstUse, Qwen3VLPlugin):
    variant = "tiny-qwen3-vl"
    model_id = "vlmcap/tiny-qwen3-vl"
    description = "Built-in ~1M-parameter Qwen3-VL with random weights, built on first use."
    tiny = QWEN3_VL
    default_max_model_len = TINY_MAX_MODEL_LEN


class TinyCosmosReason2Plugin(BuiltOnFirstUse, CosmosReason2Plugin):
    variant = "tiny-cosmos-reason2"
    model_id = "vlmcap/tiny-qwen3-vl"
    description = "Cosmos-Reason2's prompts and reasoning decode on the tiny Qwen3-VL."
    tiny = QWEN3_VL
    default_max_model_len = TINY_MAX_MODEL_LEN


class TinyGemma3Plugin(BuiltOnFirstUse, GenericPlugin):
    variant = "tiny-gemma3"
    model_id = "vlmcap/tiny-gemma3"
    description = "The generic plugin on a built-in ~0.7M-parameter Gemma 3 (random weights)."
    tiny = TinyBuild("vlmcap.tiny.gemma3", "ensure_tiny_gemma3", "tiny_gemma3_dir")
    default_max_model_len = TINY_MAX_MODEL_LEN


class TinySmolVLMPlugin(BuiltOnFirstUse, GenericPlugin):
    variant = "tiny-smolvlm"
    model_id = "vlmcap/tiny-smolvlm"
    description = "The generic plugin on a built-in ~0.7M-parameter SmolVLM2 (random weights)."
    tiny = TinyBuild("vlmcap.tiny.smolvlm", "ensure_tiny_smolvlm", "tiny_smolvlm_dir")
    default_max_model_len = TINY_MAX_MODEL_LEN
