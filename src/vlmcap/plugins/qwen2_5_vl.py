"""Qwen2.5-VL: chat-template prompt with one vision placeholder per image or video."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from vlmcap.config import VLMConfig
from vlmcap.media.frames import as_image_list, is_video, video_metadata, video_to_uint8_thwc
from vlmcap.plugins.base import EngineInputs, VLMPlugin
from vlmcap.prompts import STYLES
from vlmcap.records import Media

DEFAULT_VIDEO_FPS = 2.0


def chat_messages(prompt: str, media: Media, system: str | None = None) -> list[dict[str, Any]]:
    """OpenAI-style messages with one content item per image or one for the video."""
    if is_video(media):
        visual: list[dict[str, Any]] = [{"type": "video"}]
    else:
        visual = [{"type": "image"} for _ in as_image_list(media)]
    messages: list[dict[str, Any]] = []
    if system is not None:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": [*visual, {"type": "text", "text": prompt}]})
    return messages


def multi_modal_data(media: Media, fps: float | None) -> dict[str, Any]:
    """vLLM's ``multi_modal_data`` for Qwen-VL models: frames + metadata, or PIL images."""
    if is_video(media):
        frames = video_to_uint8_thwc(media)
        meta = video_metadata(frames.shape[0], fps or DEFAULT_VIDEO_FPS)
        return {"video": (frames, meta)}
    images = as_image_list(media)
    return {"image": images[0] if len(images) == 1 else images}


class Qwen25VLPlugin(VLMPlugin):
    variant = "qwen2.5-vl"
    model_id = "Qwen/Qwen2.5-VL-7B-Instruct"
    description = "Qwen2.5-VL instruct models (images, several images, video)."
    prompts: ClassVar[dict[str, str]] = STYLES
    #: System turn; ``None`` keeps the chat template's default.
    system_prompt: ClassVar[str | None] = None
    #: Most images one prompt may carry (multi-image QA); vLLM sizes its profiling run by it.
    max_images: ClassVar[int] = 4

    def engine_overrides(self, config: VLMConfig) -> dict[str, Any]:
        overrides: dict[str, Any] = {
            "limit_mm_per_prompt": {"image": self.max_images, "video": 1},
        }
        if config.max_model_len is None:
            overrides["max_model_len"] = 32768
        return overrides

    def openai_messages(
        self, prompt: str, media_parts: Sequence[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        messages = super().openai_messages(prompt, media_parts)
        if self.system_prompt is not None:
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        return messages

    def make_request(
        self, prompt: str, media: Media, processor: Any, *, fps: float | None = None
    ) -> EngineInputs:
        text = processor.apply_chat_template(
            chat_messages(prompt, media, self.system_prompt),
            tokenize=False,
            add_generation_prompt=True,
        )
        return {"prompt": text, "multi_modal_data": multi_modal_data(media, fps)}
