"""Qwen3-VL (4B and 8B instruct): images, several images, video with its own timestamps.

The request is the base plugin's (one placeholder per picture or clip). Qwen3-VL differs from
Qwen2.5-VL in what its processor does with it: pictures and frames on a 32-pixel grid, and a
clip written as one ``<t seconds>`` label per pair of frames, which vLLM computes from the
frames' metadata (``fps``, ``frames_indices``) that ``VLMPlugin.multi_modal_data`` sends with
them, so the times the model reads are those of the frames vlmcap sampled.
"""

from __future__ import annotations

from vlmcap.plugins.base import VLMPlugin
from vlmcap.plugins.capabilities import QWEN3_PIXEL_MULTIPLE, QWEN_FRAME_MULTIPLE, Capabilities
from vlmcap.plugins.qwen2_5_vl import QWEN_MAX_IMAGES, QWEN_MAX_MODEL_LEN, QwenProcessorMixin

QWEN3_VL_CAPABILITIES = Capabilities(
    max_images=QWEN_MAX_IMAGES,
    video=True,
    pixel_multiple=QWEN3_PIXEL_MULTIPLE,
    frame_multiple=QWEN_FRAME_MULTIPLE,
)


class Qwen3VLPlugin(QwenProcessorMixin, VLMPlugin):
    variant = "qwen3-vl-8b"
    model_id = "Qwen/Qwen3-VL-8B-Instruct"
    description = "Qwen3-VL-8B-Instruct (images, several images, video with timestamps)."
    capabilities = QWEN3_VL_CAPABILITIES
    default_max_model_len = QWEN_MAX_MODEL_LEN


class Qwen3VL4BPlugin(Qwen3VLPlugin):
    variant = "qwen3-vl-4b"
    model_id = "Qwen/Qwen3-VL-4B-Instruct"
    description = "Qwen3-VL-4B-Instruct (images, several images, video with timestamps)."
