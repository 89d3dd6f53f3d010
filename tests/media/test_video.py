"""Video frame sampling with PyAV on generated clips: whole clips, windows, rotation, dumps."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from vlmcap.media import video
from vlmcap.media.dump import dump_frames, safe_prefix
from vlmcap.media.video import fit_pixels, sample_video, sample_windows


def write_clip(path, seconds=3.0, fps=30, size=(320, 240), fmt=None, rotation=None):
    """A clip whose frame i has brightness proportional to i (so picks can be identified)."""
    n = max(1, round(seconds * fps))
    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = size[0], size[1], "yuv420p"
        if rotation is not None:
            s.set_display_rotation(rotation)
        for i in range(n):
            value = int(200 * i / max(1, n - 1))
            frame = av.VideoFrame.from_ndarray(
                np.full((size[1], size[0], 3), value, np.uint8), format="rgb24"
            )
            for packet in s.encode(frame):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)
    return path


def brightness(frames):
    return frames.reshape(len(frames), -1).mean(axis=1)


class Counter:
    """Wraps ``av.open`` and the RGB conversion to count files opened, frames decoded and
    frames converted."""

    def __init__(self, monkeypatch):
        self.opened = self.decoded = self.converted = 0
        real_open, real_to_rgb = av.open, video._to_rgb

        def counting_open(*args, **kwargs):
            self.opened += 1
            return _Container(real_open(*args, **kwargs), self)

        def counting_to_rgb(*args, **kwargs):
            self.converted += 1
            return real_to_rgb(*args, **kwargs)

        monkeypatch.setattr(video.av, "open", counting_open)
        monkeypatch.setattr(video, "_to_rgb", counting_to_rgb)


class _Container:
    def __init__(self, inner, counter):
        self._inner, self._counter = inner, counter

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._inner.close()

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def decode(self, *args, **kwargs):
        for frame in self._inner.decode(*args, **kwargs):
            self._counter.decoded += 1
            yield frame


# --- the whole clip (sample_video, as the caption pipeline calls it) ---------------------


def test_samples_at_the_requested_rate_with_timestamps(tmp_path):
    clip = sample_video(write_clip(tmp_path / "a.mp4"), fps=2.0)
    assert clip.timestamps == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0, 2.5])
    assert clip.duration == pytest.approx(3.0)
    assert clip.fps == pytest.approx(2.0)
    assert np.all(np.diff(brightness(clip.frames)) > 0)  # later picks are later frames


def test_frames_are_capped_and_spread_over_the_clip(tmp_path):
    clip = sample_video(write_clip(tmp_path / "a.mp4"), fps=30.0, max_frames=8)
    assert clip.frames.shape[0] == 8
    assert clip.timestamps[0] == 0.0 and clip.timestamps[-1] > 2.5


def test_resized_to_the_pixel_budget_in_multiples_of_28(tmp_path):
    clip = sample_video(write_clip(tmp_path / "a.mp4"), max_pixels=112 * 112)
    _t, h, w, c = clip.frames.shape
    assert c == 3 and clip.frames.dtype == np.uint8
    assert h * w <= 112 * 112 and h % 28 == 0 and w % 28 == 0
    assert fit_pixels(4000, 3000, 448 * 448) == (504, 364)


def test_rate_above_the_source_gives_each_frame_once(tmp_path):
    clip = sample_video(write_clip(tmp_path / "a.mp4", seconds=0.5, fps=10), fps=50.0)
    assert len(clip.timestamps) == 5 and len(set(clip.timestamps)) == 5


def test_a_window_of_a_longer_clip_with_too_few_frames_is_not_padded(tmp_path):
    path = write_clip(tmp_path / "one.mp4", seconds=2.2)
    result = sample_windows(path, window_s=1.0, min_window_s=0.1, fps=2.0)
    assert [w.index for w in result.windows] == [0, 1]
    assert result.skipped[0].reason == "only 1 frame(s) at 2 fps, need 2"


# --- windows ------------------------------------------------------------------------------


def test_windows_cover_the_clip_in_order(tmp_path):
    result = sample_windows(write_clip(tmp_path / "a.mp4", seconds=6.0), window_s=2.0)
    assert [(w.index, w.start, w.end) for w in result.windows] == [(0, 0, 2), (1, 2, 4), (2, 4, 6)]
    for w in result.windows:
        assert w.frames.shape[0] == 4 and w.fps == pytest.approx(2.0)
        assert w.timestamps == pytest.approx([w.start + k / 2 for k in range(4)])
    means = [brightness(w.frames).mean() for w in result.windows]
    assert means == sorted(means) and means[0] < means[-1]
    assert result.skipped == [] and result.frames_decoded == 180
    assert result.duration == pytest.approx(6.0) and result.source_fps == pytest.approx(30.0)
    assert result.source_size == (320, 240)


def test_decodes_once_and_converts_only_the_picked_frames(tmp_path, monkeypatch):
    path = write_clip(tmp_path / "a.mp4", seconds=6.0)
    counter = Counter(monkeypatch)
    result = sample_windows(path, window_s=2.0, overlap_s=1.0, fps=2.0)
    picked = {t for w in result.windows for t in w.timestamps}
    assert counter.opened == 1 and counter.decoded == 180
    # overlapping windows share frames: each shared frame is converted once
    assert sum(len(w.timestamps) for w in result.windows) > len(picked)
    assert counter.converted == len(picked) == 12


def test_overlapping_windows_share_their_frames(tmp_path):
    result = sample_windows(
        write_clip(tmp_path / "a.mp4", seconds=5.0), window_s=2.0, overlap_s=1.0
    )
    starts = [w.start for w in result.windows]
    assert starts == [0.0, 1.0, 2.0, 3.0]
    first, second = result.windows[:2]
    np.testing.assert_array_equal(first.frames[2], second.frames[0])  # both the frame at 1.0 s


def test_num_frames_spreads_exactly_n_over_each_window(tmp_path):
    result = sample_windows(write_clip(tmp_path / "a.mp4", seconds=6.0), window_s=3.0, num_frames=4)
    assert [len(w.timestamps) for w in result.windows] == [4, 4]
    first = result.windows[0]
    assert first.timestamps[0] == 0.0 and first.timestamps[-1] == pytest.approx(3.0 - 1 / 30)
    assert np.diff(first.timestamps) == pytest.approx([0.99] * 3, abs=1 / 30)  # even spread


def test_num_frames_is_capped_by_max_frames(tmp_path):
    result = sample_windows(write_clip(tmp_path / "a.mp4"), num_frames=20, max_frames=5)
    assert result.windows[0].frames.shape[0] == 5


def test_window_with_too_few_frames_is_reported_not_returned(tmp_path):
    path = write_clip(tmp_path / "a.mp4", seconds=4.3)
    result = sample_windows(path, window_s=2.0, min_window_s=0.1)
    assert [w.index for w in result.windows] == [0, 1]
    (skipped,) = result.skipped
    assert (skipped.index, skipped.start, skipped.frames) == (2, 4.0, 1)
    assert skipped.end == pytest.approx(4.3)
    assert skipped.reason == "only 1 frame(s) at 2 fps, need 2"


def test_short_tail_joins_the_previous_window(tmp_path):
    result = sample_windows(write_clip(tmp_path / "a.mp4", seconds=4.5), window_s=2.0)
    assert [(w.start, w.end) for w in result.windows] == [(0.0, 2.0), (2.0, 4.5)]
    assert result.windows[1].timestamps == pytest.approx([2.0, 2.5, 3.0, 3.5, 4.0])


def test_timestamps_come_from_the_frames_pts(tmp_path):
    """Variable frame rate: frames at irregular times; picks are the first frame at or after
    each 0.5 s step, and their times are the real ones."""
    times_ms = [0, 100, 250, 700, 1300, 1350, 1600, 2100]
    path = tmp_path / "vfr.mkv"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.codec_context.time_base = Fraction(1, 1000)
        for ms in times_ms:
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            frame.pts, frame.time_base = ms, Fraction(1, 1000)
            c.mux(s.encode(frame))
        c.mux(s.encode(None))
    clip = sample_video(path, fps=2.0)
    assert clip.timestamps == pytest.approx([0.0, 0.7, 1.3, 1.6, 2.1], abs=1e-3)


def test_rotated_video_is_turned_upright(tmp_path):
    """A phone video stored landscape with a display rotation of -90 degrees (turn clockwise)."""
    path = tmp_path / "phone.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 168, 112, "yuv420p"
        s.set_display_rotation(-90)
        for i in range(10):
            a = np.zeros((112, 168, 3), np.uint8)
            a[:28, :28] = 255  # a white corner, top-left as stored
            frame = av.VideoFrame.from_ndarray(a, format="rgb24")
            frame.pts = i
            c.mux(s.encode(frame))
        c.mux(s.encode(None))
    result = sample_windows(path, max_pixels=10**6)
    frames = result.windows[0].frames
    assert frames.shape[1:3] == (168, 112) and result.source_size == (112, 168)  # portrait
    white = np.argwhere(frames[0, :, :, 0] > 128)
    assert white[:, 0].max() < 40 and white[:, 1].min() > 70  # top-left turned to top-right


def test_header_without_duration_is_scanned(tmp_path):
    path = tmp_path / "raw.h264"  # a bare H.264 stream: no container, no duration
    with av.open(str(path), "w", format="h264") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(50):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            frame.pts = i
            c.mux(s.encode(frame))
        c.mux(s.encode(None))
    result = sample_windows(path, window_s=1.0)
    assert len(result.windows) == 2 and result.frames_decoded == 50
    assert result.duration == pytest.approx(2.0, abs=0.1)


def test_truncated_stream_keeps_whole_windows_and_reports_the_rest(tmp_path, caplog):
    path = write_clip(tmp_path / "long.mkv", seconds=10.0, fmt="matroska")
    data = path.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    result = sample_windows(cut, window_s=2.0)
    assert result.duration < 9.0 and result.windows
    assert all(w.end <= result.duration + 1e-6 for w in result.windows)
    assert result.skipped and all("no frames" in s.reason for s in result.skipped)
    assert "may be truncated" in caplog.text and "cut.mkv" in caplog.text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fps": 0.0}, "fps must be > 0"),
        ({"num_frames": 0}, "num_frames must be at least 1"),
        ({"min_frames": 5, "max_frames": 4}, "min_frames <= max_frames"),
        ({"window_s": 2.0, "overlap_s": 2.0}, "shorter than the window"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, message):
    path = write_clip(tmp_path / "a.mp4", seconds=1.0)
    with pytest.raises(ValueError, match=message):
        sample_windows(path, **kwargs)


# --- dumping the frames sent --------------------------------------------------------------


def test_dump_frames_writes_pngs_that_read_back_equal(tmp_path):
    result = sample_windows(write_clip(tmp_path / "a.mp4", seconds=2.0), max_pixels=56 * 56)
    w = result.windows[0]
    paths = dump_frames(w.frames, tmp_path / "dump", "videos/a.mp4#w0", w.timestamps)
    assert [p.name for p in paths][:2] == [
        "videos_a.mp4_w0_000_00000.000s.png",
        "videos_a.mp4_w0_001_00000.500s.png",
    ]
    assert len(paths) == len(w.frames)
    for path, frame in zip(paths, w.frames, strict=True):
        np.testing.assert_array_equal(np.asarray(Image.open(path)), frame)
    assert not list((tmp_path / "dump").glob(".*"))  # no temporary files left


def test_dump_frames_of_images_and_bad_input(tmp_path):
    paths = dump_frames([Image.new("RGB", (8, 8), (1, 2, 3))], tmp_path, "img")
    assert Image.open(paths[0]).getpixel((0, 0)) == (1, 2, 3)
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\) uint8"):
        dump_frames(np.zeros((8, 8, 3), np.uint8), tmp_path, "x")
    assert safe_prefix("../../etc/passwd") == "etc_passwd"
