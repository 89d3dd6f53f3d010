"""Qwen2.5-VL: the base plugin's chat-template request, one vision placeholder per image or video.

vLLM takes Qwen2.5-VL video as pre-sampled frames with their metadata (``multi_modal_data``
in ``VLMPlugin``), so the frames the model sees are the ones vlmcap sampled.
"""

from __future__ import annotations

from typing import Any, ClassVar

from vlmcap.config import VLMConfig
from vlmcap.plugins.base import VLMPlugin
from vlmcap.prompts import STYLES

#: Context length when the config sets none (vLLM would take the model's 128k and size its
#: profiling run by it).
QWEN_MAX_MODEL_LEN = 32768


class Qwen25VLPlugin(VLMPlugin):
    variant = "qwen2.5-vl"
    model_id = "Qwen/Qwen2.5-VL-7B-Instruct"
    description = "Qwen2.5-VL instruct models (images, several images, video)."
    prompts: ClassVar[dict[str, str]] = STYLES
    #: Most images one prompt may carry (multi-image QA); vLLM sizes its profiling run by it.
    max_images: ClassVar[int] = 4

    def engine_overrides(self, config: VLMConfig) -> dict[str, Any]:
        overrides: dict[str, Any] = {
            "limit_mm_per_prompt": {"image": self.max_images, "video": 1},
        }
        if config.max_model_len is None:
            overrides["max_model_len"] = QWEN_MAX_MODEL_LEN
        return overrides
