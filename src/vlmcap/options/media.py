"""How videos are cut and sampled, and images limited: ``MediaOptions``.

The defaults here are vlmcap's one copy of them: the server client and the plugins fall back to
``DEFAULT_VIDEO_FPS`` when an item carries no frame rate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Self

from pydantic import ConfigDict, Field, field_validator, model_validator

from vlmcap.options.base import INTERNAL, OptionGroup, flag

#: Frames per second sampled from videos (and the rate assumed for an item without one).
DEFAULT_VIDEO_FPS = 2.0
DEFAULT_MAX_FRAMES = 16
#: Fewest frames a window needs to be sent (Qwen2.5-VL merges frames in pairs).
DEFAULT_MIN_FRAMES = 2
DEFAULT_FRAME_SIDE = 448
DEFAULT_MAX_PIXELS = DEFAULT_FRAME_SIDE * DEFAULT_FRAME_SIDE


class MediaOptions(OptionGroup):
    """How videos are cut and sampled, and images limited."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    group = "media"
    panel = "Media"

    video_fps: Annotated[float, flag("--fps")] = Field(
        default=DEFAULT_VIDEO_FPS, description="Frames per second sampled from videos."
    )
    num_frames: Annotated[int | None, flag(default_text="from --fps")] = Field(
        default=None, description="Fixed frames per window instead of a rate."
    )
    max_frames: int = Field(default=DEFAULT_MAX_FRAMES, description="Most frames sent per window.")
    min_frames: Annotated[int, INTERNAL] = DEFAULT_MIN_FRAMES
    max_pixels: int = Field(
        default=DEFAULT_MAX_PIXELS,
        description=f"Pixel budget per video frame ({DEFAULT_FRAME_SIDE}x{DEFAULT_FRAME_SIDE}).",
    )
    window_s: Annotated[float | None, flag("--window", default_text="one window per clip")] = Field(
        default=None, description="Split videos into windows of this many seconds."
    )
    overlap_s: Annotated[float, flag("--overlap")] = Field(
        default=0.0, description="Seconds two consecutive windows share."
    )
    dump_dir: Annotated[Path | None, flag("--dump-frames")] = Field(
        default=None, description="Write the frames sent to the model here (PNG), for debugging."
    )

    @field_validator("video_fps")
    @classmethod
    def _check_fps(cls, value: float) -> float:
        if not value > 0:
            raise ValueError(f"--fps must be > 0 (got {value})")
        return value

    @field_validator("num_frames")
    @classmethod
    def _check_num_frames(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError(f"--num-frames must be at least 1 (got {value})")
        return value

    @field_validator("window_s")
    @classmethod
    def _check_window(cls, value: float | None) -> float | None:
        if value is not None and not value > 0:
            raise ValueError(f"--window must be > 0 seconds (got {value})")
        return value

    @model_validator(mode="after")
    def _check_together(self) -> Self:
        if not 1 <= self.min_frames <= self.max_frames:
            raise ValueError(
                f"--max-frames must be at least 1 and at least the minimum of "
                f"{self.min_frames} frames per window (got {self.max_frames})"
            )
        if self.window_s is not None and not 0 <= self.overlap_s < self.window_s:
            raise ValueError(
                f"--overlap must be >= 0 and shorter than --window {self.window_s} s "
                f"(got {self.overlap_s})"
            )
        return self
