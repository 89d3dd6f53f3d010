"""Image loading: orientation, colour modes, limits, broken files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vlmcap.media.images import MediaError, load_image


def test_exif_orientation_is_applied(tmp_path):
    im = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    path = tmp_path / "rot.jpg"
    im.save(path, exif=exif)
    assert load_image(path).size == (20, 40)


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16", "1"])
def test_modes_become_rgb(tmp_path, mode):
    im = Image.new("RGB", (16, 16), (0, 0, 255)).convert(mode) if mode != "I;16" else (
        Image.fromarray(np.full((16, 16), 40000, dtype=np.uint16))
    )
    path = tmp_path / f"m.{'tif' if mode in ('CMYK', 'I;16') else 'png'}"
    im.save(path)
    out = load_image(path)
    assert out.mode == "RGB" and out.size == (16, 16)


def test_transparent_pixels_become_white(tmp_path):
    im = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    im.save(tmp_path / "t.png")
    assert load_image(tmp_path / "t.png").getpixel((0, 0)) == (255, 255, 255)


def test_oversized_image_is_refused_before_decoding(tmp_path):
    path = tmp_path / "big.png"
    Image.new("L", (3000, 3000)).save(path)
    with pytest.raises(MediaError, match=r"3000x3000 .* over the limit"):
        load_image(path, max_pixels=1_000_000)


@pytest.mark.parametrize(
    ("name", "data", "fragment"),
    [
        ("empty.jpg", b"", "not a readable image"),
        ("text.png", b"hello, not an image", "not a readable image"),
    ],
)
def test_broken_files_name_the_file(tmp_path, name, data, fragment):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(MediaError) as err:
        load_image(path)
    assert name in str(err.value) and fragment in str(err.value)


def test_truncated_jpeg_is_reported(tmp_path):
    path = tmp_path / "cut.jpg"
    Image.new("RGB", (64, 64), (9, 9, 9)).save(path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(MediaError, match="cut.jpg"):
        load_image(path)


def test_missing_file(tmp_path):
    with pytest.raises(MediaError, match="file not found"):
        load_image(tmp_path / "nope.png")
