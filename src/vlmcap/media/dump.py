"""Write the frames actually sent to the model as PNG files, to look at when a caption is odd.

    paths = dump_frames(window.frames, Path("debug/frames"), "videos/a.mp4#w0", window.timestamps)

Each file is written under a temporary name and renamed, so a folder never holds a half-written
image. The prefix is made safe for a file name (``videos/a.mp4#w0`` -> ``videos_a.mp4_w0``).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_prefix(prefix: str) -> str:
    """``prefix`` with every run of characters other than letters, digits, ``.``, ``_`` and
    ``-`` replaced by ``_`` (no folders, no hidden files)."""
    text = _UNSAFE.sub("_", prefix).strip("._") or "frames"
    return text[:120]


def dump_frames(
    frames: np.ndarray | Sequence[Image.Image],
    folder: str | Path,
    prefix: str,
    timestamps: Sequence[float] | None = None,
) -> list[Path]:
    """Save each frame as ``<folder>/<prefix>_<i>.png`` (``_<t>s`` added when ``timestamps``
    are given); return the paths in frame order. ``frames``: ``(T, H, W, 3)`` uint8 or images.
    """
    if isinstance(frames, np.ndarray):
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(
                f"expected (T, H, W, 3) uint8 frames, got {frames.dtype}{frames.shape}"
            )
        images = [Image.fromarray(np.ascontiguousarray(f)) for f in frames]
    else:
        images = list(frames)
    if timestamps is not None and len(timestamps) != len(images):
        raise ValueError(f"{len(timestamps)} timestamps for {len(images)} frames")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    stem = safe_prefix(prefix)
    paths = []
    for i, image in enumerate(images):
        when = "" if timestamps is None else f"_{timestamps[i]:09.3f}s"
        path = out / f"{stem}_{i:03d}{when}.png"
        tmp = path.with_name(f".{path.name}.tmp")
        image.save(tmp, format="PNG")
        os.replace(tmp, path)
        paths.append(path)
    logger.debug("wrote %d frame(s) of %s to %s", len(paths), prefix, out)
    return paths
