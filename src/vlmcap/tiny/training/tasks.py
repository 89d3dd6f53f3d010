"""Fresh synthetic scenes as training examples: captions, questions and image pairs."""

from __future__ import annotations

import io
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from vlmcap.media.images import fit_pixels
from vlmcap.media.video import sample_video
from vlmcap.media.windows import fps_targets
from vlmcap.tiny.questions import (
    CATEGORIES,
    make_pair_question,
    make_picture_question,
    make_question,
    random_pair,
)
from vlmcap.tiny.synthetic import (
    SceneSpec,
    random_scene,
    render_image,
    render_video_frames,
    write_video,
)
from vlmcap.tiny.training.config import (
    IMAGE_SIZES,
    PAIR_DIFFERENCES,
    VIDEO_FPS,
    VIDEO_MAX_FRAMES,
    VIDEO_MAX_PIXELS,
    VIDEO_SECONDS,
    VIDEO_SIZES,
    VIDEO_SOURCE_FPS,
    TrainConfig,
)

if TYPE_CHECKING:
    from vlmcap.plugins.tiny import TinyQwen25VLPlugin


@dataclass
class Task:
    """One training or evaluation example before encoding."""

    kind: str  # image, video or pair
    category: str  # caption, colour, shape, count, direction or pair
    prompt: str
    target: str
    media: Any  # a PIL image, a list of two, or (T, H, W, 3) uint8 frames
    fps: float | None = None
    media_id: int = 0  # tasks of one scene share their media (and its vision features)
    scenes: tuple[SceneSpec, ...] = ()  # what each image or clip of ``media`` shows

    @property
    def description(self) -> str:
        """Ground truth of the (first) scene."""
        return self.scenes[0].description() if self.scenes else ""


def sampled_clip(
    spec: SceneSpec, seconds: float, fps: float, size: tuple[int, int]
) -> tuple[np.ndarray, float]:
    """The frames vlmcap would send for an mp4 of ``spec``, without the codec: ``sample_video``
    at 2 fps (first frame at or after each target time) and resized to its pixel budget."""
    w, h = size[0] // 2 * 2, size[1] // 2 * 2
    n = max(1, round(seconds * fps))
    frames = render_video_frames(spec, n, (w, h))
    times = fps_targets(0.0, n / fps, VIDEO_FPS, VIDEO_MAX_FRAMES)
    picks = sorted({min(n - 1, math.ceil(t * fps - 1e-6)) for t in times})
    out_size = fit_pixels(w, h, VIDEO_MAX_PIXELS)
    resized = [
        np.asarray(Image.fromarray(frames[i]).resize(out_size, Image.Resampling.BILINEAR))
        for i in picks
    ]
    span = (picks[-1] - picks[0]) / fps
    rate = (len(picks) - 1) / span if len(picks) > 1 and span > 0 else VIDEO_FPS
    return np.stack(resized), rate


def encoded_clip(
    spec: SceneSpec, seconds: float, fps: float, size: tuple[int, int], work: Path
) -> tuple[np.ndarray, float]:
    """The frames vlmcap sends for a real mp4 of ``spec``: ``write_video`` then ``sample_video``."""
    path = write_video(work / "clip.mp4", spec, seconds, fps, size=size)
    clip = sample_video(
        path, fps=VIDEO_FPS, max_frames=VIDEO_MAX_FRAMES, max_pixels=VIDEO_MAX_PIXELS
    )
    return clip.frames, clip.fps


def jpeg_roundtrip(image: Image.Image) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=92)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


QA_FORMATS = ("text", "letter", "word")


def qa_target(question: dict[str, Any], fmt: str) -> str:
    """The trained answer to a ``make_question`` / ``make_pair_question`` question."""
    if fmt == "text":
        return str(question["answer_text"])
    if fmt == "letter":
        return str(question["answer"])
    if fmt == "word":
        return f"{question['answer_text']} ({question['answer']})"
    raise ValueError(f"qa_format must be one of {QA_FORMATS}, got {fmt!r}")


class TaskSampler:
    """Draws training tasks from one seeded ``random.Random`` (so runs repeat exactly)."""

    def __init__(
        self, plugin: TinyQwen25VLPlugin, config: TrainConfig, seed: int, work: Path
    ) -> None:
        self.rng = random.Random(seed)
        self.config = config
        self.work = work
        self.media_id = 0
        self.image_prompts = (
            plugin.prompt_for("image"),
            plugin.prompt_for("image"),
            plugin.prompt_for("image", "short"),
        )
        self.video_prompts = (
            plugin.prompt_for("video"),
            plugin.prompt_for("video"),
            plugin.prompt_for("video", "short"),
            plugin.prompt_for("video", "video-short"),
        )

    def sample(self) -> list[Task]:
        """The examples of one random scene (they share its media)."""
        kind = self.rng.choices(self.config.mix.names(), self.config.mix.weights())[0]
        return self.scene(kind)

    def batch(self, size: int) -> list[Task]:
        """``size`` examples, whole scenes first (the last scene may be cut short)."""
        tasks: list[Task] = []
        while len(tasks) < size:
            tasks.extend(self.sample())
        return tasks[:size]

    def scene(self, kind: str) -> list[Task]:
        """The examples of a fresh scene of ``kind`` (image, video or pair)."""
        rng = self.rng
        self.media_id += 1
        if kind == "pair":
            differ = rng.choice(PAIR_DIFFERENCES)
            first, second = random_pair(rng, differ, sizes=self.config.shape_sizes)
            size = rng.choice(IMAGE_SIZES)
            images = [self.image(first, size), self.image(second, size)]
            questions = [
                make_pair_question(first, second, rng),
                make_picture_question(first, second, rng, 1),
                make_picture_question(first, second, rng, 2),
            ]
            return [
                Task(
                    "pair",
                    q["category"],
                    q["prompt"],
                    qa_target(q, self.config.qa_format),
                    images,
                    None,
                    self.media_id,
                    (first, second),
                )
                for q in questions
            ]
        video = kind == "video"
        spec = random_scene(rng, video=video, sizes=self.config.shape_sizes)
        if video:
            frames, fps = self.clip(spec)
            media: Any = frames
        else:
            media, fps = self.image(spec, rng.choice(IMAGE_SIZES)), None
        prompt = rng.choice(self.video_prompts if video else self.image_prompts)
        truth = spec.description()
        caption = Task(kind, "caption", prompt, truth, media, fps, self.media_id, (spec,))
        categories = CATEGORIES if video else tuple(c for c in CATEGORIES if c != "direction")
        tasks = [caption]
        for category in rng.sample(categories, min(self.config.questions, len(categories))):
            q = make_question(spec, rng, (category,))
            tasks.append(
                Task(
                    kind,
                    category,
                    q["prompt"],
                    qa_target(q, self.config.qa_format),
                    media,
                    fps,
                    self.media_id,
                    (spec,),
                )
            )
        return tasks

    def image(self, spec: SceneSpec, size: tuple[int, int]) -> Image.Image:
        image = render_image(spec, size)
        if self.rng.random() < self.config.jpeg_fraction:
            image = jpeg_roundtrip(image)
        return image

    def clip(self, spec: SceneSpec) -> tuple[np.ndarray, float]:
        rng = self.rng
        seconds, fps = rng.choice(VIDEO_SECONDS), rng.choice(VIDEO_SOURCE_FPS)
        size = rng.choice(VIDEO_SIZES)
        if rng.random() < self.config.encode_fraction:
            return encoded_clip(spec, seconds, fps, size, self.work)
        return sampled_clip(spec, seconds, fps, size)
