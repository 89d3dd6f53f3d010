"""What a model family can take, declared once on its plugin: ``Capabilities``.

The media layer, the request lifecycle, the engine builder and the server client all read the
same declaration::

    media (pipeline.load)   pixel_multiple: frame sides rounded to it; frame_multiple: frames per
                            window trimmed to a multiple of it; max_frames: a clip's frame cap
    lifecycle (first)       check(media): an input the model cannot take fails that item,
                            naming the model and the input, before any request is built
    engine (engine_overrides)  mm_limits(): vLLM's ``limit_mm_per_prompt``; lora: LoRA settings
    server (vlmcap serve)   lora: ``--lora-modules``; clients then ask for the adapter by name
    client (server mode)    video: whether a clip goes as a video or as its frames;
                            max_images: the frames sent as pictures at most

A family adds nothing else for these: its plugin sets ``capabilities = Capabilities(...)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from vlmcap.media.frames import is_video
from vlmcap.media.images import DEFAULT_PIXEL_MULTIPLE

#: Qwen2.5-VL's pixel grid: 14-pixel patches, 2 x 2 of them merged into one token.
QWEN25_PIXEL_MULTIPLE = DEFAULT_PIXEL_MULTIPLE
#: Qwen3-VL's pixel grid: 16-pixel patches, 2 x 2 of them merged into one token.
QWEN3_PIXEL_MULTIPLE = 32
#: Frames one video token spans in the Qwen families (temporal patches of 2 frames).
QWEN_FRAME_MULTIPLE = 2


class UnsupportedInputError(ValueError):
    """An item's media is of a kind (or size) the model cannot take."""


@dataclass(frozen=True)
class LoRAAdapter:
    """A LoRA adapter the model needs for its vision path, shipped inside the model folder.

    Every request runs with it: offline as a ``LoRARequest`` named after the plugin variant;
    ``vlmcap serve`` serves it under the variant's name (``--lora-modules``) and the base
    weights alone as ``<variant>-base``."""

    #: Folder of the adapter, relative to the model folder.
    subfolder: str
    #: ``max_lora_rank`` the engine is started with (at least the adapter's rank).
    max_rank: int


@dataclass(frozen=True)
class Capabilities:
    """The inputs a model family takes and the geometry its processor imposes."""

    #: Most pictures in one request (1: a single picture only).
    max_images: int = 1
    #: Takes a clip as a video input (frames with their timing).
    video: bool = False
    #: Takes a clip as its frames, one picture each (numbered placeholders), within
    #: ``max_images``; the loader then samples at most ``max_images`` frames.
    video_as_images: bool = False
    #: Video frames are resized to sides that are multiples of this many pixels (pictures go
    #: to the model's processor at their own size; it resizes them itself).
    pixel_multiple: int = QWEN25_PIXEL_MULTIPLE
    #: Frames per window are trimmed to a multiple of this (frames that make one video token).
    frame_multiple: int = 1
    #: LoRA adapter every request runs with (None: the base weights alone).
    lora: LoRAAdapter | None = None

    def __post_init__(self) -> None:
        if self.max_images < 1:
            raise ValueError("a model takes at least one picture (max_images >= 1)")
        if self.pixel_multiple < 1 or self.frame_multiple < 1:
            raise ValueError("pixel_multiple and frame_multiple must be >= 1")
        if self.video and self.video_as_images:
            raise ValueError("a clip goes either as a video or as pictures, not both")

    @property
    def takes_video(self) -> bool:
        return self.video or self.video_as_images

    @property
    def inputs(self) -> tuple[str, ...]:
        """What the family takes, for ``vlmcap models``: image, images (several), video."""
        kinds = ["image"]
        if self.max_images > 1:
            kinds.append(f"images (<= {self.max_images})")
        if self.video:
            kinds.append("video")
        elif self.video_as_images:
            kinds.append(f"video (as <= {self.max_images} frames)")
        return tuple(kinds)

    def max_frames(self, wanted: int) -> int:
        """Frames to sample per window when the user asks for ``wanted`` at most."""
        return min(wanted, self.max_images) if self.video_as_images else wanted

    def mm_limits(self) -> dict[str, int]:
        """vLLM's ``limit_mm_per_prompt`` for these inputs (a limit of 0 refuses the kind)."""
        return {"image": self.max_images, "video": 1 if self.video else 0}

    def check(self, media: Any, model: str) -> None:
        """Raise ``UnsupportedInputError`` (naming ``model`` and the input) when ``media`` is
        something the model cannot take."""
        if is_video(media):
            frames = int(media.shape[0])
            if not self.takes_video:
                raise UnsupportedInputError(f"model {model!r} takes no video (pictures only)")
            if self.video_as_images and frames > self.max_images:
                raise UnsupportedInputError(
                    f"model {model!r} takes a clip as at most {self.max_images} frames; this "
                    f"one has {frames} (lower --max-frames)"
                )
            return
        several = isinstance(media, Sequence) and not isinstance(media, str | bytes)
        count = len(media) if several else 1  # what each one is gets checked when it is sent
        if count > self.max_images:
            raise UnsupportedInputError(
                f"model {model!r} takes at most {self.max_images} picture(s) per request; this "
                f"item has {count}"
            )
