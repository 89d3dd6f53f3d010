"""Image loading: orientation, colour modes, animations, limits, broken files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vlmcap.media.images import (
    MediaError,
    fit_pixels,
    is_animated,
    load_animation,
    load_image,
    to_rgb,
)

BLUE = (0, 0, 255)
COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255)]


def test_exif_orientation_is_applied(tmp_path):
    im = Image.new("RGB", (40, 20), (255, 0, 0))
    im.paste((0, 0, 255), (0, 0, 10, 10))  # blue in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    path = tmp_path / "rot.png"
    im.save(path, exif=exif)
    out = load_image(path)
    assert out.size == (20, 40)
    r, _g, b = out.getpixel((17, 2))  # ... is now top-right
    assert b > 200 and r < 50


@pytest.mark.parametrize(
    ("mode", "suffix", "expected"),
    [
        ("L", "png", (29, 29, 29)),  # ITU-R 601 luma of pure blue
        ("LA", "png", (29, 29, 29)),
        ("P", "png", BLUE),
        ("RGBA", "png", BLUE),
        ("CMYK", "tif", BLUE),
        ("CMYK", "jpg", None),  # lossy: colour checked loosely below
        ("1", "png", (0, 0, 0)),
        ("YCbCr", "jpg", None),
    ],
)
def test_modes_become_rgb(tmp_path, mode, suffix, expected):
    path = tmp_path / f"m.{suffix}"
    Image.new("RGB", (16, 16), BLUE).convert(mode).save(path)
    out = load_image(path)
    assert out.mode == "RGB" and out.size == (16, 16)
    pixel = out.getpixel((8, 8))
    if expected is None:
        assert pixel[2] > 200 and pixel[0] < 60
    else:
        assert pixel == pytest.approx(expected, abs=2)


def test_sixteen_bit_grey_keeps_its_brightness(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((8, 8), 40000, dtype=np.uint16)).save(path)
    out = load_image(path)
    assert out.mode == "RGB" and out.getpixel((0, 0)) == (156, 156, 156)  # 40000 / 257
    dark = Image.fromarray(np.full((4, 4), 1000, dtype=np.uint16))
    assert to_rgb(dark).getpixel((0, 0)) == (4, 4, 4)  # a dark frame stays dark


def test_thirty_two_bit_and_float_images(tmp_path):
    big = Image.fromarray(np.array([[0, 200_000]], dtype=np.int32))
    assert to_rgb(big).getpixel((1, 0)) == (255, 255, 255)
    small = Image.fromarray(np.array([[0.0, 100.0]], dtype=np.float32))
    assert to_rgb(small).getpixel((1, 0)) == (100, 100, 100)


def test_transparent_pixels_become_white(tmp_path):
    Image.new("RGBA", (8, 8), (255, 0, 0, 0)).save(tmp_path / "t.png")
    assert load_image(tmp_path / "t.png").getpixel((0, 0)) == (255, 255, 255)
    Image.new("LA", (8, 8), (0, 0)).save(tmp_path / "la.png")
    assert load_image(tmp_path / "la.png").getpixel((0, 0)) == (255, 255, 255)


def test_palette_with_a_transparent_index(tmp_path):
    im = Image.new("P", (8, 8), 1)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)  # index 0 black, index 1 red
    im.paste(0, (0, 0, 4, 8))
    path = tmp_path / "p.png"
    im.save(path, transparency=0)  # black is the transparent colour
    out = load_image(path)
    assert out.getpixel((0, 0)) == (255, 255, 255) and out.getpixel((6, 0)) == (255, 0, 0)


def test_oversized_image_is_refused_before_decoding(tmp_path):
    path = tmp_path / "big.png"
    Image.new("L", (3000, 3000)).save(path)
    with pytest.raises(MediaError, match=r"big\.png: image too large: 3000x3000 .* over the limit"):
        load_image(path, max_pixels=1_000_000)


def write_animation(path, colours=COLOURS, duration=100, size=(32, 24)):
    frames = [Image.new("RGB", size, c) for c in colours]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=duration, loop=0)
    return path


@pytest.mark.parametrize("suffix", ["gif", "webp", "png"])
def test_animation_first_frame_by_default(tmp_path, suffix):
    path = write_animation(tmp_path / f"anim.{suffix}")
    assert is_animated(path)
    assert load_image(path).getpixel((0, 0)) == pytest.approx(COLOURS[0], abs=8)


@pytest.mark.parametrize("suffix", ["gif", "webp"])
def test_animation_as_a_short_video(tmp_path, suffix):
    anim = load_animation(write_animation(tmp_path / f"anim.{suffix}", duration=50))
    assert anim.frames.shape == (6, 24, 32, 3) and anim.frames.dtype == np.uint8
    assert anim.fps == pytest.approx(20.0) and anim.duration == pytest.approx(0.3)
    assert anim.timestamps == pytest.approx([0.0, 0.05, 0.1, 0.15, 0.2, 0.25])
    for frame, colour in zip(anim.frames, COLOURS, strict=True):
        assert frame[0, 0].astype(int).tolist() == pytest.approx(colour, abs=8)  # lossy WebP


def test_animation_frames_are_capped_evenly_and_resized(tmp_path):
    anim = load_animation(write_animation(tmp_path / "a.gif", size=(100, 60)), 3, frame_pixels=2000)
    assert anim.frames.shape[0] == 3
    assert [tuple(f[0, 0].tolist()) for f in anim.frames] == [COLOURS[0], COLOURS[2], COLOURS[5]]
    assert anim.frames.shape[1:3] == (28, 56)  # fit_pixels(100, 60, 2000), as (H, W)
    assert anim.timestamps == pytest.approx([0.0, 0.2, 0.5])


def test_still_image_as_an_animation_is_one_frame(tmp_path):
    Image.new("RGB", (10, 10), BLUE).save(tmp_path / "s.png")
    anim = load_animation(tmp_path / "s.png")
    assert anim.frames.shape == (1, 10, 10, 3) and anim.fps == pytest.approx(10.0)
    assert not is_animated(tmp_path / "s.png")


def test_fit_pixels_keeps_the_aspect_in_multiples_of_28():
    assert fit_pixels(4000, 3000, 448 * 448) == (504, 364)
    assert fit_pixels(10, 10, 448 * 448) == (28, 28)  # never below one block


@pytest.mark.parametrize(
    ("name", "data", "fragment"),
    [
        ("empty.jpg", b"", "file is empty (0 bytes)"),
        ("text.png", b"hello, not an image", "not a readable image (unknown format"),
    ],
)
def test_broken_files_name_the_file(tmp_path, name, data, fragment):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(MediaError) as err:
        load_image(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and fragment in message


def test_truncated_jpeg_is_reported(tmp_path):
    path = tmp_path / "cut.jpg"
    Image.new("RGB", (64, 64), (9, 9, 9)).save(path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(MediaError, match=r"cut\.jpg: not a readable image, damaged or truncated"):
        load_image(path)


def test_missing_file(tmp_path):
    with pytest.raises(MediaError, match=r"nope\.png: file not found"):
        load_image(tmp_path / "nope.png")


def test_folder_is_not_an_image(tmp_path):
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(MediaError, match=r"dir\.png: is a folder"):
        load_image(tmp_path / "dir.png")
