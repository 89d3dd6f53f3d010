"""Video frame sampling with PyAV on generated clips."""

from __future__ import annotations

import av
import numpy as np
import pytest

from vlmcap.media.images import MediaError
from vlmcap.media.video import fit_pixels, sample_video


def write_clip(path, seconds=3.0, fps=30, size=(320, 240)):
    """A clip whose frame i has brightness proportional to i (so picks can be identified)."""
    n = int(seconds * fps)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = size[0], size[1], "yuv420p"
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


def test_samples_at_the_requested_rate_with_timestamps(tmp_path):
    clip = sample_video(write_clip(tmp_path / "a.mp4"), fps=2.0)
    assert clip.timestamps == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0, 2.5])
    assert clip.duration == pytest.approx(3.0)
    assert clip.fps == pytest.approx(2.0)
    brightness = clip.frames.reshape(len(clip.frames), -1).mean(axis=1)
    assert np.all(np.diff(brightness) > 0)  # later picks are later frames


def test_frames_are_capped_and_spread_over_the_clip(tmp_path):
    clip = sample_video(write_clip(tmp_path / "a.mp4"), fps=30.0, max_frames=8)
    assert clip.frames.shape[0] == 8
    assert clip.timestamps[0] == 0.0 and clip.timestamps[-1] > 2.5


def test_resized_to_the_pixel_budget_in_multiples_of_28(tmp_path):
    clip = sample_video(write_clip(tmp_path / "a.mp4"), max_pixels=112 * 112)
    t, h, w, c = clip.frames.shape
    assert c == 3 and clip.frames.dtype == np.uint8
    assert h * w <= 112 * 112 and h % 28 == 0 and w % 28 == 0
    assert fit_pixels(4000, 3000, 448 * 448) == (504, 364)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [(b"", "cannot decode video"), (b"plain text in an mp4", "cannot decode video")],
)
def test_broken_files(tmp_path, data, fragment):
    path = tmp_path / "bad.mp4"
    path.write_bytes(data)
    with pytest.raises(MediaError, match=fragment):
        sample_video(path)


def test_too_few_frames(tmp_path):
    path = write_clip(tmp_path / "one.mp4", seconds=1 / 30)
    with pytest.raises(MediaError, match=r"one.mp4: only 1 frame"):
        sample_video(path)
