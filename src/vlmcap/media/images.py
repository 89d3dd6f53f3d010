"""Robust image loading with Pillow: orientation, colour modes, animations, size limits.

Every failure is a ``MediaError`` whose message starts with the file name and says what is
wrong in words a user can act on ("file is empty", "image too large", ...). The pixel limit is
checked on the header, before any pixel is decoded, so a decompression bomb costs nothing.
"""

from __future__ import annotations

import logging
import math
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image, UnidentifiedImageError

logger = logging.getLogger(__name__)
T = TypeVar("T")

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
#: Refuse images above this many pixels (decompression bombs); 64 MP covers real photos.
DEFAULT_MAX_PIXELS = 64_000_000
#: Frame time of animation frames that give none (or 0 ms, which browsers also show as 100 ms).
DEFAULT_FRAME_MS = 100
#: Sides of resized frames are multiples of this unless the model says otherwise (Qwen2.5-VL's
#: grid: 14-pixel patches merged 2 x 2; ``vlmcap.plugins.capabilities``).
DEFAULT_PIXEL_MULTIPLE = 28

#: EXIF orientation -> the transpose that shows the image upright (as ``ImageOps.exif_transpose``).
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
#: What Pillow raises for damaged or unsupported files (besides OSError and its subclasses).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, KeyError)


class MediaError(ValueError):
    """An input file that cannot be used; the message names the file and the cause."""


@dataclass
class Animation:
    """Frames of an animated image, shaped like a short video: ``frames`` is ``(T, H, W, 3)``."""

    frames: np.ndarray
    fps: float  # rate of the returned frames (their mean spacing)
    timestamps: list[float]  # seconds from the start of the animation, one per frame
    duration: float  # seconds of one loop of the whole animation


def display_name(path: str | Path) -> str:
    """``path`` as printable text: bytes of a non-UTF-8 file name appear as ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def fit_pixels(
    width: int, height: int, max_pixels: int, multiple: int = DEFAULT_PIXEL_MULTIPLE
) -> tuple[int, int]:
    """Size at most ``max_pixels`` with the aspect ratio kept, sides multiples of ``multiple``."""
    scale = min(1.0, math.sqrt(max_pixels / float(width * height)))
    w = max(multiple, int(width * scale) // multiple * multiple)
    h = max(multiple, int(height * scale) // multiple * multiple)
    return w, h


def check_file(path: Path) -> None:
    """Raise ``MediaError`` unless ``path`` is a non-empty regular file we may read."""
    name = display_name(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise MediaError(f"{name}: file not found") from None
    except PermissionError:
        raise MediaError(f"{name}: permission denied (cannot reach the file)") from None
    except OSError as exc:
        raise MediaError(f"{name}: cannot read the file ({exc.strerror or exc})") from None
    if path.is_dir():
        raise MediaError(f"{name}: is a folder, not a file")
    if st.st_size == 0:
        raise MediaError(f"{name}: file is empty (0 bytes)")


def _with_image(path: Path, max_pixels: int, use: Callable[[Image.Image], T]) -> T:
    """``use(image)`` on the opened (not yet decoded) image at ``path``, under the pixel limit;
    every failure, in opening or in ``use``, becomes a ``MediaError`` naming the file."""
    name = display_name(path)
    check_file(path)
    try:
        with Image.open(path) as im:
            w, h = im.size
            if w * h > max_pixels:
                raise MediaError(
                    f"{name}: image too large: {w}x{h} ({w * h:,} pixels) is over the limit of "
                    f"{max_pixels:,} pixels (a guard against decompression bombs)"
                )
            return use(im)
    except MediaError:
        raise
    except Image.DecompressionBombError as exc:
        raise MediaError(
            f"{name}: image too large, refused as a possible decompression bomb ({exc})"
        ) from None
    except PermissionError:
        raise MediaError(f"{name}: permission denied (cannot open the file)") from None
    except UnidentifiedImageError:
        raise MediaError(
            f"{name}: not a readable image (unknown format, or the header is damaged)"
        ) from None
    except MemoryError:
        raise MediaError(f"{name}: not enough memory to decode the image") from None
    except _DECODE_ERRORS as exc:
        raise MediaError(f"{name}: not a readable image, damaged or truncated ({exc})") from None


def load_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open ``path`` as an RGB image with its EXIF orientation applied.

    Palette, grey, alpha, CMYK and 16-bit images are converted to 8-bit RGB (alpha is
    composited on white). Animated files give their first frame (``load_animation`` gives
    them all). Raises ``MediaError`` naming the file for anything unusable.
    """

    def first_frame(im: Image.Image) -> Image.Image:
        im.seek(0)
        im.load()
        return upright(to_rgb(im), _orientation(im))

    return _with_image(Path(path), max_pixels, first_frame)


def load_animation(
    path: str | Path,
    max_frames: int = 32,
    *,
    frame_pixels: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Animation:
    """Frames of an animated GIF / WebP / PNG as ``(T, H, W, 3)`` uint8, treated as a video.

    At most ``max_frames`` frames, spread evenly over the animation by index; each frame is
    RGB (transparency on white) and upright. ``frame_pixels`` resizes frames to that budget
    (``fit_pixels``, sides multiples of ``DEFAULT_PIXEL_MULTIPLE``), as videos are. A still
    image gives one frame.
    Frame times come from the file (frames without one count ``DEFAULT_FRAME_MS``).
    """
    if max_frames < 1:
        raise ValueError(f"max_frames must be at least 1, got {max_frames}")

    def frames_of(im: Image.Image) -> Animation:
        total = int(getattr(im, "n_frames", 1))
        picks = set(np.linspace(0, total - 1, min(total, max_frames)).round().astype(int).tolist())
        orientation = _orientation(im)
        size = None if frame_pixels is None else fit_pixels(*im.size, frame_pixels)
        frames: list[np.ndarray] = []
        times: list[float] = []
        clock = 0.0
        for i in range(total):
            im.seek(i)
            if i in picks:
                rgb = upright(to_rgb(im), orientation)
                if size is not None and rgb.size != size:
                    rgb = rgb.resize(size, Image.Resampling.BICUBIC)
                frames.append(np.asarray(rgb, dtype=np.uint8))
                times.append(clock)
            clock += float(im.info.get("duration") or DEFAULT_FRAME_MS) / 1000.0
        span = times[-1] - times[0]
        fps = (len(times) - 1) / span if span > 0 else 1.0 / clock
        return Animation(np.stack(frames), float(fps), times, clock)

    return _with_image(Path(path), max_pixels, frames_of)


def is_animated(path: str | Path) -> bool:
    """True for an image file with more than one frame (reads the header only)."""
    return _with_image(
        Path(path), DEFAULT_MAX_PIXELS, lambda im: bool(getattr(im, "is_animated", False))
    )


def _orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(0x0112, 1))
    except (TypeError, ValueError, SyntaxError, struct.error):
        return 1  # unreadable EXIF: show the pixels as stored


def upright(im: Image.Image, orientation: int) -> Image.Image:
    """``im`` turned the way its EXIF ``orientation`` (1-8) says it is to be shown."""
    method = _ORIENTATION.get(orientation)
    return im if method is None else im.transpose(method)


def to_rgb(im: Image.Image) -> Image.Image:
    """8-bit RGB from any Pillow mode; transparent areas become white.

    16-bit grey maps 0-65535 to 0-255 (a dark frame stays dark); 32-bit integer and float
    images that go past 65535 are scaled by their maximum.
    """
    if im.mode == "RGB":
        return im
    if im.mode.startswith("I") or im.mode == "F":
        arr = np.asarray(im, dtype=np.float64).clip(min=0.0)
        top = float(arr.max()) if arr.size else 0.0
        if top > 65535.0:
            scale = 255.0 / top
        elif top > 255.0 or im.mode.startswith("I;16"):
            scale = 255.0 / 65535.0
        else:
            scale = 1.0
        im = Image.fromarray(np.rint(arr * scale).astype(np.uint8))
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")
