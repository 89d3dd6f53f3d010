"""Qwen2.5-VL: the base plugin's chat-template request, one vision placeholder per image or video.

vLLM takes Qwen2.5-VL video as pre-sampled frames with their metadata (``multi_modal_data``
in ``VLMPlugin``), so the frames the model sees are the ones vlmcap sampled.
"""

from __future__ import annotations

from typing import Any, ClassVar

from vlmcap.config import VLMConfig
from vlmcap.plugins.base import VLMPlugin
from vlmcap.plugins.capabilities import QWEN25_PIXEL_MULTIPLE, QWEN_FRAME_MULTIPLE, Capabilities
from vlmcap.prompts import STYLES

#: Context length when the config sets none (vLLM would take the model's 128k and size its
#: profiling run by it).
QWEN_MAX_MODEL_LEN = 32768
#: Most images one prompt may carry (multi-image QA); vLLM sizes its profiling run by it.
QWEN_MAX_IMAGES = 4


class QwenProcessorMixin:
    """The Qwen processors' switches: ``--no-preprocess`` sends frames at the size vlmcap
    sampled them (sides already multiples of the pixel grid) and only rescales/normalises."""

    def processor_kwargs(self, config: VLMConfig) -> dict[str, Any]:
        if config.preprocess:
            return {}
        return {"do_resize": False, "do_rescale": True, "do_normalize": True}


class Qwen25VLPlugin(QwenProcessorMixin, VLMPlugin):
    variant = "qwen2.5-vl"
    model_id = "Qwen/Qwen2.5-VL-7B-Instruct"
    description = "Qwen2.5-VL instruct models (images, several images, video)."
    prompts: ClassVar[dict[str, str]] = STYLES
    capabilities = Capabilities(
        max_images=QWEN_MAX_IMAGES,
        video=True,
        pixel_multiple=QWEN25_PIXEL_MULTIPLE,
        frame_multiple=QWEN_FRAME_MULTIPLE,
    )
    default_max_model_len = QWEN_MAX_MODEL_LEN
