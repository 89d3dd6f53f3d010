"""The synthetic shapes world: pixels, motion and files match the ground truth they claim."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from vlmcap.tiny.model import COLOURS, SHAPES
from vlmcap.tiny.synthetic import (
    CODECS,
    NOISE_RANGE,
    PLAIN_RGB,
    RGB,
    SceneSpec,
    make_dataset,
    random_scene,
    render_image,
    render_video_frames,
    shape_centres,
    write_image,
    write_video,
)


def decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def centroid(frame: np.ndarray, colour: str, tolerance: float = 60.0) -> tuple[float, float]:
    """(x, y) mean of the pixels near ``colour`` (after lossy coding, so not exact)."""
    distance = np.linalg.norm(frame.astype(float) - np.array(RGB[colour]), axis=-1)
    ys, xs = np.nonzero(distance < tolerance)
    assert len(xs) > 20, f"no {colour} shape found"
    return float(xs.mean()), float(ys.mean())


def test_palette_covers_the_word_list_and_is_clearly_distinct():
    assert set(RGB) == set(COLOURS)
    for a, b in itertools.combinations(RGB.values(), 2):
        assert np.linalg.norm(np.subtract(a, b)) > 80
    greys = range(min(*PLAIN_RGB, NOISE_RANGE[0]), max(*PLAIN_RGB, NOISE_RANGE[1]) + 1)
    for rgb in RGB.values():  # far from every grey a background uses
        assert min(np.linalg.norm(np.subtract(rgb, (g, g, g))) for g in greys) > 80


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        (SceneSpec("red", "circle", "left"), "a red circle moving left"),
        (SceneSpec("blue", "square", count=2), "two blue squares"),
        (SceneSpec("orange", "cross", "up", count=1), "an orange cross moving up"),
        (SceneSpec("white", "cross", "down", count=3), "three white crosses moving down"),
        (SceneSpec("black", "star", background="noise"), "a black star"),
    ],
)
def test_description_is_the_ground_truth_sentence(spec, text):
    assert spec.description() == text


@pytest.mark.parametrize(
    "kwargs",
    [{"colour": "pink"}, {"shape": "hexagon"}, {"direction": "sideways"}, {"count": 4}],
)
def test_spec_rejects_values_outside_the_world(kwargs):
    with pytest.raises(ValueError):
        SceneSpec(**{"colour": "red", "shape": "circle", **kwargs})


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("count", [1, 3])
def test_image_has_the_colour_at_each_shape_centre_and_background_elsewhere(shape, count):
    spec = SceneSpec("purple", shape, count=count, size=30, seed=7)
    image = np.asarray(render_image(spec, (200, 150)))
    assert image.shape == (150, 200, 3)
    centres = shape_centres(spec, (200, 150))
    assert len(centres) == count
    for x, y in centres:
        assert tuple(image[round(y), round(x)]) == RGB["purple"]
    for x, y in [(0, 0), (199, 0), (0, 149), (199, 149)]:
        assert tuple(image[y, x]) == PLAIN_RGB
    coloured = np.all(image == RGB["purple"], axis=-1).mean()
    assert 0.005 < coloured < 0.5


def test_noise_background_is_grey_blocks_and_shapes_stay_pure():
    spec = SceneSpec("green", "square", background="noise", size=40, seed=3)
    image = np.asarray(render_image(spec, (128, 96)))
    x, y = shape_centres(spec, (128, 96))[0]
    assert tuple(image[round(y), round(x)]) == RGB["green"]
    corner = image[:8, :8]
    assert np.all(corner[..., 0] == corner[..., 1])  # grey
    assert NOISE_RANGE[0] <= corner.min() and corner.max() <= NOISE_RANGE[1]
    assert len(np.unique(image[..., 0])) > 20  # really noisy


def test_jpeg_image_keeps_the_colour(tmp_path):
    spec = SceneSpec("yellow", "circle", size=60, seed=2)
    path = write_image(tmp_path / "a.jpg", spec, (160, 120))
    with Image.open(path) as image:
        assert image.format == "JPEG"
        pixels = np.asarray(image.convert("RGB"))
    x, y = shape_centres(spec, (160, 120))[0]
    assert np.abs(pixels[round(y), round(x)].astype(int) - RGB["yellow"]).max() < 20
    with pytest.raises(ValueError):
        write_image(tmp_path / "a.gif", spec)


@pytest.mark.parametrize(
    ("direction", "codec", "background"),
    [
        ("left", "libx264", "plain"),
        ("right", "mpeg4", "noise"),
        ("up", "libx264", "noise"),
        ("down", "mpeg4", "plain"),
    ],
)
def test_written_video_moves_in_the_stated_direction(tmp_path, direction, codec, background):
    spec = SceneSpec("red", "circle", direction, background, count=2, size=24, seed=11)
    path = write_video(tmp_path / "v.mp4", spec, seconds=2, fps=8, codec=codec)
    frames = decode(path)
    (x0, y0), (x1, y1) = centroid(frames[0], "red"), centroid(frames[-1], "red")
    dx, dy = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}[direction]
    along, across = (x1 - x0, y1 - y0) if dx else (y1 - y0, x1 - x0)
    assert along * (dx + dy) > 30  # a visible move, the right way
    assert abs(across) < 2
    steps = [centroid(a, "red")[0 if dx else 1] for a in frames]
    assert all((b - a) * (dx + dy) > 1 for a, b in itertools.pairwise(steps))  # every frame


def test_still_video_does_not_move(tmp_path):
    spec = SceneSpec("blue", "star", "still", "noise", count=3, size=28, seed=5)
    frames = decode(write_video(tmp_path / "s.mp4", spec, seconds=1, fps=8))
    assert abs(np.subtract(centroid(frames[0], "blue"), centroid(frames[-1], "blue"))).max() < 0.5
    raw = render_video_frames(spec, 8)
    assert np.array_equal(raw[0], raw[-1])


def test_moving_frames_step_visibly_and_stay_inside():
    spec = SceneSpec("black", "triangle", "right", size=30, seed=1)
    frames = render_video_frames(spec, 16, (160, 120))
    assert frames.shape == (16, 120, 160, 3) and frames.dtype == np.uint8
    xs = [shape_centres(spec, (160, 120), i, 16)[0][0] for i in range(16)]
    assert all(b - a >= 3 for a, b in itertools.pairwise(xs))
    assert xs[0] >= 15 and xs[-1] <= 160 - 15


@pytest.mark.parametrize("codec", CODECS)
def test_written_video_has_the_requested_frames_rate_and_duration(tmp_path, codec):
    spec = SceneSpec("green", "square", "up", seed=2)
    path = write_video(tmp_path / "v.mp4", spec, seconds=1.5, fps=10, size=(161, 121), codec=codec)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == 10
        assert (stream.width, stream.height) == (160, 120)  # rounded down to even for yuv420p
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert stream.frames == 15
        assert float(stream.duration * stream.time_base) == pytest.approx(1.5)
        times = [f.time for f in container.decode(video=0)]
    assert times == pytest.approx([i / 10 for i in range(15)])


@pytest.mark.parametrize("codec", CODECS)
def test_same_seed_gives_the_same_bytes(tmp_path, codec):
    spec = SceneSpec("orange", "cross", "left", "noise", count=2, seed=9)
    a = write_video(tmp_path / "a.mp4", spec, seconds=1, fps=8, codec=codec)
    b = write_video(tmp_path / "b.mp4", spec, seconds=1, fps=8, codec=codec)
    assert a.read_bytes() == b.read_bytes()
    other = SceneSpec("orange", "cross", "left", "noise", count=2, seed=10)
    assert not np.array_equal(render_video_frames(spec, 4), render_video_frames(other, 4))
    pa, pb = write_image(tmp_path / "a.png", spec), write_image(tmp_path / "b.png", spec)
    assert pa.read_bytes() == pb.read_bytes()
    assert random_scene(random.Random(3)) == random_scene(random.Random(3))


def test_make_dataset_writes_files_and_ground_truth(tmp_path):
    rows = make_dataset(tmp_path / "a", n_images=3, n_videos=2, seed=4, seconds=1)
    again = make_dataset(tmp_path / "b", n_images=3, n_videos=2, seed=4, seconds=1)
    assert [r["kind"] for r in rows] == ["image"] * 3 + ["video"] * 2
    lines = (tmp_path / "a" / "ground_truth.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == rows == again
    for row in rows:
        path = tmp_path / "a" / row["path"]
        assert path.is_file()
        twin = tmp_path / "b" / row["path"]
        if row["kind"] == "image":  # x264's threaded encoder is not byte-stable across runs
            assert path.read_bytes() == twin.read_bytes()
        else:
            assert len(decode(twin)) == len(decode(path))
        spec = SceneSpec.from_dict(row)
        assert row["description"] == spec.description()
        if row["kind"] == "image":
            assert spec.direction == "still"
            with Image.open(path) as image:
                assert image.size == (row["width"], row["height"])
        else:
            assert len(decode(path)) == row["num_frames"] == 8
    assert make_dataset(tmp_path / "c", 3, 0, seed=5) != rows[:3]
