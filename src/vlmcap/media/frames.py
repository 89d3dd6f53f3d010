"""Conversions between the media forms plugins accept and the forms vLLM takes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

# Rate of a clip's time axis when an item carries none: the rate vlmcap samples videos at.
from vlmcap.options.media import DEFAULT_VIDEO_FPS  # noqa: F401 - re-exported for the plugins


def is_video(media: Any) -> bool:
    """True for a 4-D frame stack: ``(T, C, H, W)`` tensor/array or ``(T, H, W, C)`` uint8."""
    return getattr(media, "ndim", None) == 4


def video_to_uint8_thwc(frames: Any) -> np.ndarray:
    """``(T, C, H, W)`` float in [0, 1] (torch or numpy) -> ``(T, H, W, C)`` uint8 numpy.

    A ``(T, H, W, C)`` uint8 array passes through unchanged (already in vLLM's layout).
    """
    if isinstance(frames, np.ndarray) and frames.dtype == np.uint8 and frames.shape[-1] in (1, 3):
        return frames
    if hasattr(frames, "detach"):  # torch.Tensor
        frames = frames.detach().to("cpu").float().numpy()
    arr = np.asarray(frames, dtype=np.float32)
    if arr.ndim != 4 or arr.shape[1] not in (1, 3):
        raise ValueError(f"expected video frames shaped (T, C, H, W) with C=3, got {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError("video has no frames")
    if not np.isfinite(arr).all():
        raise ValueError("video frames contain NaN or infinite values")
    arr = np.clip(arr, 0.0, 1.0) * 255.0
    out = np.rint(arr).astype(np.uint8).transpose(0, 2, 3, 1)
    if out.shape[-1] == 1:
        out = np.repeat(out, 3, axis=-1)
    return np.ascontiguousarray(out)


def video_metadata(num_frames: int, fps: float) -> dict[str, Any]:
    """The metadata vLLM needs next to pre-sampled video frames."""
    if fps <= 0:
        raise ValueError(f"video fps must be > 0, got {fps}")
    return {
        "fps": float(fps),
        "frames_indices": list(range(num_frames)),
        "total_num_frames": num_frames,
        "duration": num_frames / float(fps),
        "video_backend": "vlmcap",
        "do_sample_frames": False,
    }


def as_image_list(media: Any) -> list[Image.Image]:
    """One PIL image or a sequence of them -> a non-empty list of RGB images."""
    images = [media] if isinstance(media, Image.Image) else list(media)
    if not images:
        raise ValueError("no images given")
    out = []
    for i, im in enumerate(images):
        if not isinstance(im, Image.Image):
            raise TypeError(f"image {i} is {type(im).__name__}, expected a PIL image")
        out.append(im if im.mode == "RGB" else im.convert("RGB"))
    return out


def media_shape(media: Any) -> str:
    """Short human description of media, for logs and error messages."""
    if is_video(media):
        return f"video{tuple(media.shape)}"
    if isinstance(media, Image.Image):
        return f"image{media.size}"
    if isinstance(media, Sequence):
        return "images[" + ", ".join(media_shape(m) for m in media) + "]"
    return type(media).__name__
