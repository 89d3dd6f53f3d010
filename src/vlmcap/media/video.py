"""Video decoding with PyAV: sample frames at a target rate, resize to a pixel budget."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from vlmcap.media.images import MediaError

VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg"})


@dataclass
class VideoClip:
    """Sampled frames of one clip: ``frames`` is ``(T, H, W, 3)`` uint8."""

    frames: np.ndarray
    fps: float  # rate of the sampled frames
    timestamps: list[float]  # seconds from the start of the file, one per frame
    duration: float  # seconds covered by the file's video stream


def fit_pixels(width: int, height: int, max_pixels: int, multiple: int = 28) -> tuple[int, int]:
    """Size at most ``max_pixels`` with the aspect ratio kept, sides multiples of ``multiple``."""
    scale = min(1.0, math.sqrt(max_pixels / float(width * height)))
    w = max(multiple, int(width * scale) // multiple * multiple)
    h = max(multiple, int(height * scale) // multiple * multiple)
    return w, h


def sample_video(
    path: str | Path,
    fps: float = 2.0,
    max_frames: int = 32,
    max_pixels: int = 448 * 448,
    min_frames: int = 2,
) -> VideoClip:
    """Decode ``path`` and keep frames at ``fps`` (at most ``max_frames``, evenly spread).

    Frames between samples are decoded but never converted or kept, so memory stays at the
    sampled frames whatever the clip length. Raises ``MediaError`` naming the file for anything
    unreadable: no video stream, corrupt or truncated data, fewer than ``min_frames`` frames.
    """
    p = Path(path)
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    try:
        with av.open(str(p)) as container:
            if not container.streams.video:
                raise MediaError(f"{p}: no video stream")
            picked, times, duration = _decode_sampled(container, fps, max_frames, max_pixels)
    except MediaError:
        raise
    except FileNotFoundError:
        raise MediaError(f"{p}: file not found") from None
    except PermissionError:
        raise MediaError(f"{p}: permission denied") from None
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(f"{p}: cannot decode video ({exc})") from None
    if len(picked) < min_frames:
        raise MediaError(f"{p}: only {len(picked)} frame(s) at {fps} fps, need {min_frames}")
    if len(picked) > max_frames:  # keep max_frames evenly spread over the clip
        keep = np.linspace(0, len(picked) - 1, max_frames).round().astype(int)
        picked = [picked[i] for i in keep]
        times = [times[i] for i in keep]
    eff_fps = (len(times) - 1) / (times[-1] - times[0]) if times[-1] > times[0] else fps
    return VideoClip(
        frames=np.stack(picked), fps=float(eff_fps), timestamps=times, duration=duration
    )


def _decode_sampled(
    container: av.container.InputContainer, fps: float, max_frames: int, max_pixels: int
) -> tuple[list[np.ndarray], list[float], float]:
    """Frames picked every ``1/fps`` s (or spread over a long clip), their times, duration."""
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    rate = float(stream.average_rate or 25)
    base = stream.time_base
    step = 1.0 / fps
    estimate = _duration_estimate(container, stream)
    if estimate and estimate * fps > max_frames:  # long clip: spread max_frames over it
        step = estimate / max_frames
    picked: list[np.ndarray] = []
    times: list[float] = []
    size: tuple[int, int] | None = None
    first: float | None = None
    last = 0.0
    next_t = 0.0
    for n, frame in enumerate(container.decode(stream)):
        t = float(frame.pts * base) if frame.pts is not None and base else n / rate
        if first is None:
            first = next_t = t
        last = t
        if t + 1e-6 < next_t:
            continue  # between samples: never converted, never kept
        if size is None:
            size = fit_pixels(frame.width, frame.height, max_pixels)
        picked.append(frame.to_ndarray(format="rgb24", width=size[0], height=size[1]))
        times.append(t)
        next_t += step
    duration = (last - first + 1.0 / rate) if first is not None else 0.0
    return picked, times, duration


def _duration_estimate(container: av.container.InputContainer, stream: av.VideoStream) -> float:
    """Seconds of video according to the file's headers (0.0 when they do not say)."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return 0.0
