"""Robust image loading with Pillow: orientation, colour modes, size limits."""

from __future__ import annotations

import warnings
from pathlib import Path

from PIL import Image, ImageOps

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
#: Refuse images above this many pixels (decompression bombs); 64 MP covers real photos.
DEFAULT_MAX_PIXELS = 64_000_000


class MediaError(ValueError):
    """An input file that cannot be used; the message names the file and the cause."""


def load_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open ``path`` as an RGB image with its EXIF orientation applied.

    Palette, grey, alpha, CMYK and 16-bit images are converted to 8-bit RGB (alpha is
    composited on white). Animated files give their first frame.
    """
    p = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                w, h = im.size
                if w * h > max_pixels:
                    raise MediaError(
                        f"{p}: image is {w}x{h} ({w * h:,} pixels), over the limit of "
                        f"{max_pixels:,}"
                    )
                im.seek(0)
                im.load()
                return to_rgb(ImageOps.exif_transpose(im))
    except MediaError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise MediaError(f"{p}: refused as a decompression bomb ({exc})") from None
    except FileNotFoundError:
        raise MediaError(f"{p}: file not found") from None
    except PermissionError:
        raise MediaError(f"{p}: permission denied") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise MediaError(f"{p}: not a readable image ({exc})") from None


def to_rgb(im: Image.Image) -> Image.Image:
    """8-bit RGB from any Pillow mode; transparent areas become white."""
    if im.mode == "RGB":
        return im
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit grey: scale to 8 bits instead of clipping.
        import numpy as np

        arr = np.asarray(im, dtype=np.float64)
        hi = arr.max() or 1.0
        im = Image.fromarray((arr * (255.0 / hi)).astype("uint8"), mode="L")
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("RGBA", "LA", "PA"):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")
