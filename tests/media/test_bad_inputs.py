"""Files that cannot be used: each must fail with a ``MediaError`` that names the file and says
why in words a user understands (never a traceback from deep inside a decoder)."""

from __future__ import annotations

import os
import stat
import struct
import time
import zlib
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image, ImageFile

from vlmcap.media.images import MediaError, load_image
from vlmcap.media.video import sample_video, sample_windows

from .test_video import write_clip

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def assert_names_file(err: pytest.ExceptionInfo[MediaError], path: Path, *causes: str) -> None:
    message = str(err.value)
    name = os.fsencode(path).decode("utf-8", "backslashreplace")
    assert message.startswith(f"{name}: "), message
    for cause in causes:
        assert cause in message, message
    message.encode("utf-8")  # printable anywhere: no lone surrogates


# --- videos -------------------------------------------------------------------------------


def test_zero_byte_video(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    with pytest.raises(MediaError) as err:
        sample_video(path)
    assert_names_file(err, path, "file is empty (0 bytes)")


def test_truncated_video(tmp_path):
    path = write_clip(tmp_path / "cut.mp4", seconds=2.0)
    path.write_bytes(path.read_bytes()[:3000])  # mp4 keeps its index at the end: now lost
    with pytest.raises(MediaError) as err:
        sample_video(path)
    assert_names_file(err, path, "not a video file, or its data is damaged or truncated")


def test_text_file_named_mp4(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("these are my notes, not a video\n")
    with pytest.raises(MediaError) as err:
        sample_video(path)
    assert_names_file(err, path, "not a video file", "Invalid data")


def test_audio_only_file(tmp_path):
    path = tmp_path / "song.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=16000)
        for i in range(8):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = 16000, i * 1024
            c.mux(s.encode(frame))
        c.mux(s.encode(None))
    with pytest.raises(MediaError) as err:
        sample_windows(path)
    assert_names_file(err, path, "no video stream (the file has audio streams)")


def test_unsupported_codec(tmp_path):
    """An mp4 whose sample entry names a codec no FFmpeg knows ('avc1' renamed 'qqq1'):
    the container still parses, but no decoder exists for the stream."""
    good = write_clip(tmp_path / "good.mp4", seconds=1.0)
    data = good.read_bytes()
    assert b"avc1" in data
    path = tmp_path / "odd_codec.mp4"
    path.write_bytes(data.replace(b"avc1", b"qqq1"))
    with pytest.raises(MediaError) as err:
        sample_video(path)
    assert_names_file(err, path, "unsupported video codec")


def test_one_frame_video_is_sent_with_the_frame_repeated(tmp_path):
    path = write_clip(tmp_path / "still.mp4", seconds=1 / 30)
    clip = sample_video(path)  # two frames: what a model that merges frame pairs needs
    assert clip.frames.shape[0] == 2 and np.array_equal(clip.frames[0], clip.frames[1])
    assert clip.timestamps == [0.0, 0.0]
    result = sample_windows(path, min_frames=1)  # no repeat when one frame is enough
    assert result.windows[0].frames.shape[0] == 1


def test_folder_named_like_a_video(tmp_path):
    path = tmp_path / "clip.mp4"
    path.mkdir()
    with pytest.raises(MediaError) as err:
        sample_video(path)
    assert_names_file(err, path, "is a folder")


# --- images -------------------------------------------------------------------------------


def huge_png(path: Path, side: int) -> Path:
    """A valid 1-bit PNG of ``side`` x ``side`` pixels, written row by row (a few kB on disk,
    never in memory)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    row = b"\x00" + bytes((side + 7) // 8)  # filter byte + one bit per pixel, all black
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row * 1000) for _ in range(side // 1000))
    data += packer.compress(row * (side % 1000)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )
    return path


def test_decompression_bomb_fails_fast_without_decoding(tmp_path, monkeypatch):
    path = huge_png(tmp_path / "bomb.png", 20_000)
    assert path.stat().st_size < 1_000_000  # 400 MP in well under a megabyte

    def never(self):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", never)
    start = time.perf_counter()
    with pytest.raises(MediaError) as err:
        load_image(path)
    assert time.perf_counter() - start < 1.0
    assert_names_file(err, path, "image too large", "400000000 pixels")


def test_zero_byte_image(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(MediaError) as err:
        load_image(path)
    assert_names_file(err, path, "file is empty (0 bytes)")


def _noise_jpeg(path: Path) -> bytearray:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path, quality=90)
    return bytearray(path.read_bytes())


def test_corrupt_jpeg_huffman_table(tmp_path):
    path = tmp_path / "bad_tables.jpg"
    data = _noise_jpeg(path)
    at = data.find(b"\xff\xc4")  # DHT: the code counts become impossible
    data[at + 5 : at + 21] = b"\xff" * 16
    path.write_bytes(bytes(data))
    with pytest.raises(MediaError) as err:
        load_image(path)
    assert_names_file(err, path, "not a readable image, damaged or truncated")


def test_corrupt_jpeg_header(tmp_path):
    path = tmp_path / "bad_header.jpg"
    data = _noise_jpeg(path)
    at = data.find(b"\xff\xc0")  # SOF0: width and height become 0
    data[at + 5 : at + 9] = b"\x00\x00\x00\x00"
    path.write_bytes(bytes(data))
    with pytest.raises(MediaError) as err:
        load_image(path)
    assert_names_file(err, path, "not a readable image")


# --- file names ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["café.png", "日本語 画像.png", "emoji 🎞.png", "a'b\"c.png"])
def test_unicode_image_names_load(tmp_path, name):
    path = tmp_path / name
    Image.new("RGB", (8, 8), (1, 2, 3)).save(path, format="PNG")
    assert load_image(path).getpixel((0, 0)) == (1, 2, 3)


@pytest.mark.parametrize("name", ["vidéo.mp4", "動画.mp4"])
def test_unicode_video_names_load(tmp_path, name):
    assert sample_video(write_clip(tmp_path / name, seconds=1.0)).frames.shape[0] == 2


def _latin1_name(folder: Path, stem: bytes) -> Path:
    """A path whose name is not valid UTF-8 (made from bytes, as Linux allows)."""
    return Path(os.fsdecode(os.fsencode(folder) + b"/" + stem))


@pytest.mark.skipif(os.name != "posix", reason="byte file names are a POSIX thing")
def test_non_utf8_names_load_or_fail_clearly(tmp_path):
    image = _latin1_name(tmp_path, b"caf\xe9.png")
    Image.new("RGB", (8, 8), (4, 5, 6)).save(image, format="PNG")
    assert load_image(image).getpixel((0, 0)) == (4, 5, 6)

    clip = write_clip(tmp_path / "tmp.mp4", seconds=1.0)
    moved = _latin1_name(tmp_path, b"vid\xe9o.mp4")
    clip.rename(moved)
    assert sample_video(moved).frames.shape[0] == 2

    broken = _latin1_name(tmp_path, b"bro\xefken.png")
    broken.write_bytes(b"not an image")
    with pytest.raises(MediaError) as err:
        load_image(broken)
    assert_names_file(err, broken, "not a readable image")
    assert "bro\\xefken.png" in str(err.value)  # the odd byte is shown, not dropped


# --- permissions --------------------------------------------------------------------------


def _permission_denied(*args, **kwargs):
    raise PermissionError(13, "Permission denied")


def test_unreadable_files(tmp_path, monkeypatch):
    image = tmp_path / "locked.png"
    Image.new("RGB", (8, 8)).save(image)
    video = write_clip(tmp_path / "locked.mp4", seconds=1.0)
    for path in (image, video):
        path.chmod(0)
    try:
        if not IS_ROOT:
            with pytest.raises(MediaError) as err:
                load_image(image)
            assert_names_file(err, image, "permission denied")
            with pytest.raises(MediaError) as err:
                sample_video(video)
            assert_names_file(err, video, "permission denied")
        # Root reads any file whatever its mode bits, so chmod cannot make a file unreadable
        # for it: there (and everywhere) the open is also made to fail as the OS would.
        monkeypatch.setattr(Image, "open", _permission_denied)
        monkeypatch.setattr(av, "open", _permission_denied)
        with pytest.raises(MediaError) as err:
            load_image(image)
        assert_names_file(err, image, "permission denied")
        with pytest.raises(MediaError) as err:
            sample_video(video)
        assert_names_file(err, video, "permission denied")
    finally:
        for path in (image, video):
            path.chmod(stat.S_IRUSR | stat.S_IWUSR)


def test_file_in_a_folder_without_search_permission(tmp_path, monkeypatch):
    folder = tmp_path / "closed"
    folder.mkdir()
    image = folder / "a.png"
    Image.new("RGB", (8, 8)).save(image)
    folder.chmod(stat.S_IRUSR | stat.S_IWUSR)  # no x: names listable, files unreachable
    try:
        if IS_ROOT:
            # Root passes through folders without the x bit; fail the lookup as the OS would.
            monkeypatch.setattr(Path, "stat", _permission_denied)
        with pytest.raises(MediaError) as err:
            load_image(image)
        assert_names_file(err, image, "permission denied (cannot reach the file)")
    finally:
        folder.chmod(stat.S_IRWXU)
