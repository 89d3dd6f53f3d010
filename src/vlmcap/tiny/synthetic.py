"""A synthetic "shapes world": images and videos of coloured shapes with exact ground truth.

With real footage a wrong caption cannot be told apart from a pipeline bug (a dropped frame, a
swapped key, a resized image). Here every file comes with the sentence that is true of it
("two blue squares moving left") and with multiple-choice questions whose answers are known, so
users can test their own pipelines end to end, and a tiny model can be trained to see
(``vlmcap.tiny.questions`` asks the questions). The same spec and seed always give the same
pixels and the same file bytes.

    from vlmcap.tiny.synthetic import make_dataset
    rows = make_dataset(Path("shapes"), n_images=20, n_videos=10, seed=0)
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

from vlmcap.tiny.model import COLOURS, DIRECTIONS, SHAPES

RGBTuple = tuple[int, int, int]
Frames = npt.NDArray[np.uint8]  # (T, H, W, 3) RGB

#: Far apart in RGB and none of them grey, so neither background can be mistaken for a shape.
RGB: dict[str, RGBTuple] = {
    "red": (220, 20, 20),
    "green": (20, 170, 40),
    "blue": (30, 60, 230),
    "yellow": (250, 220, 20),
    "purple": (140, 30, 190),
    "orange": (255, 130, 0),
    "white": (255, 255, 255),
    "black": (0, 0, 0),
}
BACKGROUNDS = ("plain", "noise")
PLAIN_RGB = (128, 128, 128)
NOISE_RANGE = (96, 160)  # grey levels of the noise background (4x4 px blocks)
DEFAULT_IMAGE_SIZE = (224, 224)
DEFAULT_VIDEO_SIZE = (160, 120)
CODECS = ("libx264", "mpeg4")

_STEP = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1), "still": (0, 0)}
COUNT_WORDS = ("one", "two", "three", "four")
CHOICES = {"colour": COLOURS, "shape": SHAPES, "direction": DIRECTIONS, "background": BACKGROUNDS}
_TRAVEL = 0.6  # fraction of the free span a moving shape crosses over a whole clip


@dataclass(frozen=True)
class SceneSpec:
    """Everything that decides a scene's pixels; ``count`` shapes share colour, shape and motion."""

    colour: str
    shape: str
    direction: str = "still"
    background: str = "plain"
    count: int = 1
    size: int = 52  # side of a shape's bounding box in px (shrunk to fit small canvases)
    seed: int = 0  # places the shapes and draws the noise

    def __post_init__(self) -> None:
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if not 1 <= self.count <= 3:
            raise ValueError(f"count must be 1-3, got {self.count}")
        if self.size < 4:
            raise ValueError(f"size must be at least 4 px, got {self.size}")

    @property
    def moving(self) -> bool:
        return self.direction != "still"

    def noun(self) -> str:
        """The shape word, plural when there are several: ``circle``, ``crosses``."""
        if self.count == 1:
            return self.shape
        return self.shape + ("es" if self.shape.endswith("s") else "s")

    def description(self) -> str:
        """Ground-truth text: ``a red circle moving left``, ``two blue squares``."""
        if self.count > 1:
            article = COUNT_WORDS[self.count - 1]
        else:
            article = "an" if self.colour[0] in "aeiou" else "a"
        text = f"{article} {self.colour} {self.noun()}"
        return f"{text} moving {self.direction}" if self.moving else text

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> SceneSpec:
        """The spec back from a ground-truth row (extra keys ignored)."""
        return cls(**{f.name: row[f.name] for f in fields(cls) if f.name in row})


def random_scene(
    rng: random.Random,
    *,
    video: bool = True,
    backgrounds: Sequence[str] = BACKGROUNDS,
    max_count: int = 3,
    sizes: tuple[int, int] = (40, 64),
) -> SceneSpec:
    """A uniformly drawn scene; images (``video=False``) are always still."""
    return SceneSpec(
        colour=rng.choice(COLOURS),
        shape=rng.choice(SHAPES),
        direction=rng.choice(DIRECTIONS) if video else "still",
        background=rng.choice(list(backgrounds)),
        count=rng.randint(1, max_count),
        size=rng.randint(*sizes),
        seed=rng.randrange(2**31),
    )


def fitted_size(spec: SceneSpec, size: tuple[int, int]) -> int:
    """The side of the shapes drawn on a ``size`` canvas: each gets a lane and stays inside."""
    w, h = size
    columns = _STEP[spec.direction][0] == 0  # still or vertical motion: shapes side by side
    lane = (w if columns else h) / spec.count
    other = h if columns else w
    return max(4, int(min(spec.size, lane - 4, other - 4)))


def shape_centres(
    spec: SceneSpec, size: tuple[int, int], frame: int = 0, num_frames: int = 1
) -> list[tuple[float, float]]:
    """Bounding-box centres ``(x, y)`` of the shapes in ``frame`` of a ``num_frames`` clip.

    Each shape owns a lane across the motion, so shapes never overlap. A moving shape crosses
    ``_TRAVEL`` of the free span over the whole clip, whatever its length, so it never leaves the
    canvas (and the step per frame is the span over ``num_frames - 1``).
    """
    w, h = size
    dx, dy = _STEP[spec.direction]
    s = fitted_size(spec, size)
    columns = dx == 0
    lane_len, run_len = (w, h) if columns else (h, w)
    lane = lane_len / spec.count
    jitter = max(0.0, (lane - s) / 2 - 2)
    lo, hi = s / 2 + 2, run_len - s / 2 - 2
    sign = dx + dy  # -1, 0 or +1 along the motion axis
    travel = _TRAVEL * (hi - lo) if sign and num_frames > 1 else 0.0
    t = frame / (num_frames - 1) if num_frames > 1 else 0.0
    rng = random.Random(spec.seed)
    centres = []
    for i in range(spec.count):
        across = (i + 0.5) * lane + rng.uniform(-jitter, jitter)
        start = rng.uniform(lo, hi - travel) + (travel if sign < 0 else 0.0)
        along = start + sign * travel * t
        centres.append((across, along) if columns else (along, across))
    return centres


def _background(spec: SceneSpec, size: tuple[int, int]) -> Image.Image:
    w, h = size
    if spec.background == "plain":
        return Image.new("RGB", size, PLAIN_RGB)
    rng = np.random.default_rng(spec.seed)
    blocks = rng.integers(NOISE_RANGE[0], NOISE_RANGE[1] + 1, (h // 4 + 1, w // 4 + 1), np.uint8)
    grey = np.repeat(np.repeat(blocks, 4, axis=0), 4, axis=1)[:h, :w]
    return Image.fromarray(np.stack([grey] * 3, axis=-1), "RGB")


def _draw(spec: SceneSpec, canvas: Image.Image, centres: list[tuple[float, float]]) -> None:
    draw, fill = ImageDraw.Draw(canvas), RGB[spec.colour]
    side = fitted_size(spec, canvas.size)
    r = side / 2
    for cx, cy in centres:
        if spec.shape == "circle":
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
        elif spec.shape == "square":
            draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=fill)
        elif spec.shape == "triangle":  # pointing up; the box centre is inside it
            draw.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=fill)
        elif spec.shape == "star":  # five points, inner radius 0.45 of the outer
            polar = [(r if k % 2 == 0 else 0.45 * r, k * math.pi / 5) for k in range(10)]
            draw.polygon([(cx + q * math.sin(a), cy - q * math.cos(a)) for q, a in polar], fill)
        else:  # cross: a plus sign with arms a third of the side wide
            t = side / 6
            draw.rectangle((cx - r, cy - t, cx + r, cy + t), fill=fill)
            draw.rectangle((cx - t, cy - r, cx + t, cy + r), fill=fill)


def render_image(spec: SceneSpec, size: tuple[int, int] = DEFAULT_IMAGE_SIZE) -> Image.Image:
    """The scene as one RGB image ``size=(W, H)``; a moving spec is drawn at rest."""
    canvas = _background(spec, size)
    _draw(spec, canvas, shape_centres(spec, size))
    return canvas


def render_video_frames(
    spec: SceneSpec, num_frames: int, size: tuple[int, int] = DEFAULT_VIDEO_SIZE
) -> Frames:
    """``(T, H, W, 3)`` uint8 frames; the background stays put, the shapes move along ``spec``."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    background = _background(spec, size)
    frames = []
    for i in range(num_frames):
        canvas = background.copy()
        _draw(spec, canvas, shape_centres(spec, size, i, num_frames))
        frames.append(np.asarray(canvas, dtype=np.uint8))
    return np.stack(frames)


def write_video(
    path: Path | str,
    spec: SceneSpec,
    seconds: float = 2.0,
    fps: float = 8,
    *,
    size: tuple[int, int] = DEFAULT_VIDEO_SIZE,
    codec: str = "libx264",
) -> Path:
    """Encode the scene as an .mp4 of ``round(seconds * fps)`` frames (yuv420p).

    Odd sizes are rounded down to even ones, which yuv420p needs. The encoders run on one
    thread with fixed settings, so a spec always gives the same bytes.
    """
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {CODECS}, got {codec!r}")
    import av

    w, h = size[0] // 2 * 2, size[1] // 2 * 2
    rate = Fraction(fps).limit_denominator(1001)
    frames = render_video_frames(spec, max(1, round(seconds * fps)), (w, h))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"crf": "20", "preset": "medium"} if codec == "libx264" else {}
    with av.open(str(path), "w", format="mp4") as container:
        stream = cast("av.VideoStream", container.add_stream(codec, rate=rate, options=options))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.time_base = 1 / rate
        stream.codec_context.thread_count = 1
        if codec == "mpeg4":
            stream.codec_context.bit_rate = 800_000
        for i, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def write_image(
    path: Path | str, spec: SceneSpec, size: tuple[int, int] = DEFAULT_IMAGE_SIZE
) -> Path:
    """Save the scene as .png (lossless) or .jpg/.jpeg (quality 92)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".png", ".jpg", ".jpeg"):
        raise ValueError(f"image must be .png, .jpg or .jpeg, got {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    render_image(spec, size).save(path, quality=92)  # PNG ignores the quality
    return path


def make_dataset(
    root: Path | str,
    n_images: int,
    n_videos: int,
    seed: int = 0,
    *,
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
    video_size: tuple[int, int] = DEFAULT_VIDEO_SIZE,
    seconds: float = 2.0,
    fps: float = 8,
    image_format: str = "png",
) -> list[dict[str, Any]]:
    """Write ``images/`` and ``videos/`` under ``root`` and return their ground-truth rows.

    Each row holds the path relative to ``root``, ``kind`` (image or video), the description,
    the spec fields (``SceneSpec.from_dict`` rebuilds the spec) and the media geometry. The rows
    also go to ``root/ground_truth.jsonl``. The same seed writes the same files.
    """
    root = Path(root)
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for i in range(n_images):
        spec = random_scene(rng, video=False)
        rel = f"images/img_{i:04d}.{image_format}"
        write_image(root / rel, spec, image_size)
        w, h = image_size
        rows.append(_row(rel, "image", spec, width=w, height=h))
    for i in range(n_videos):
        spec = random_scene(rng, video=True)
        rel = f"videos/vid_{i:04d}.mp4"
        write_video(root / rel, spec, seconds, fps, size=video_size)
        w, h = video_size[0] // 2 * 2, video_size[1] // 2 * 2
        n = max(1, round(seconds * fps))
        rows.append(_row(rel, "video", spec, width=w, height=h, fps=fps, num_frames=n))
    with (root / "ground_truth.jsonl").open("w") as f:
        f.writelines(json.dumps(row) + "\n" for row in rows)
    return rows


def _row(path: str, kind: str, spec: SceneSpec, **media: Any) -> dict[str, Any]:
    return {"path": path, "kind": kind, "description": spec.description(), **asdict(spec), **media}
