"""Train the tiny Qwen2.5-VL to see the synthetic shapes world, on a CPU, in minutes.

    python -m vlmcap.testing.train_tiny [--out DIR] [--steps N] [--seed S]

Every step draws fresh scenes (``vlmcap.testing.synthetic``) and turns each into a request
exactly as vlmcap builds it at inference: the tiny plugin's ``make_request`` (chat template and
the very prompt texts: the default image and video prompts, the short styles, the
multiple-choice prompts) and the model's own processor, called the way vLLM calls it (images
resized by the processor; video frames sampled at 2 fps from short clips, as ``sample_video``
does, and passed as one video with their metadata). The target is the ground-truth description
for a caption prompt and the option letter for a question; the loss covers those tokens and the
end-of-turn token, nothing else.

Flow::

    write_assets (tokenizer, processor configs) -> model at its initialisation (seeded)
    each step: TaskSampler.sample x batch -> Encoder.encode (make_request -> processor) -> collate
               -> cross-entropy on the answer tokens -> AdamW (warm-up, cosine decay)
    every --eval-every steps: exact match per category on a fixed held-out batch
    save: bf16 safetensors + tokenizer + processor + generation config + vlmcap_tiny.json

The same seed and thread count give the same weights.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import math
import random
import shlex
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from PIL import Image

from vlmcap.media.images import fit_pixels
from vlmcap.media.video import sample_video
from vlmcap.media.windows import fps_targets
from vlmcap.testing.synthetic import (
    CATEGORIES,
    PLAIN_RGB,
    RGB,
    SceneSpec,
    make_pair_question,
    make_question,
    random_pair,
    random_scene,
    render_image,
    render_video_frames,
    write_video,
)
from vlmcap.testing.tiny_model import (
    SHIPPED_MODEL_DIR,
    TRAINED_SPEC,
    TinySpec,
    generation_config,
    trained_corpus,
    write_assets,
)

if TYPE_CHECKING:
    import torch

    from vlmcap.plugins.base import EngineInputs
    from vlmcap.plugins.tiny import TinyQwen25VLPlugin

logger = logging.getLogger(__name__)

#: How vlmcap samples clips by default (``MediaOptions``): 2 fps, 448 x 448 frames at most.
VIDEO_FPS = 2.0
VIDEO_MAX_FRAMES = 16
VIDEO_MAX_PIXELS = 448 * 448
#: Canvas sizes drawn in training; the defaults of ``make_dataset`` come up most often.
IMAGE_SIZES = ((224, 224), (224, 224), (224, 224), (160, 120), (256, 192), (192, 256), (112, 112))
VIDEO_SIZES = ((160, 120), (160, 120), (160, 120), (128, 96), (192, 144), (224, 168))
#: Clip lengths (s) and source rates (fps): 3 to 6 frames at 2 fps, 2 to 3 temporal patches.
VIDEO_SECONDS = (1.5, 2.0, 2.0, 2.0, 2.5, 3.0)
VIDEO_SOURCE_FPS = (8.0, 8.0, 10.0, 12.0)
IGNORE = -100
#: How the two images of a training pair differ: at random (mostly in colour, the easy cue),
#: or in shape or count alone, so that the answer hinges on them.
PAIR_DIFFERENCES: tuple[str | None, ...] = (None, None, "shape", "count")


@dataclass(frozen=True)
class TaskMix:
    """How often each kind of scene is drawn. An image or a clip gives a caption example and
    ``TrainConfig.questions`` questions; a pair of images gives its two "which image shows X?"
    questions (one per image)."""

    image: float = 0.4
    video: float = 0.4
    pair: float = 0.2

    def names(self) -> tuple[str, ...]:
        return tuple(asdict(self))

    def weights(self) -> tuple[float, ...]:
        return tuple(asdict(self).values())


@dataclass(frozen=True)
class TrainConfig:
    """One training run; the defaults build the shipped model."""

    out: Path = SHIPPED_MODEL_DIR
    steps: int = 6000
    batch_size: int = 16
    lr: float = 7e-4
    #: Learning rate of the vision tower relative to ``lr``.
    vision_lr_scale: float = 1.0
    min_lr_ratio: float = 0.05
    warmup_steps: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    #: Focal weighting of the answer tokens (0: plain cross-entropy).
    focal_gamma: float = 0.0
    #: Start the patch embedding colour-blind (``init_patch_embedding``).
    colour_blind_init: bool = True
    #: With ``colour_blind_init``: spatial filters from k-means over shape patches
    #: (``patch_kmeans_filters``) instead of random ones.
    kmeans_init: bool = False
    seed: int = 0
    threads: int = 2
    device: str = "cpu"  # a torch device; the shipped model is trained on the CPU
    bf16_autocast: bool = False  # bfloat16 matrix products (CPUs with AVX512-BF16 or AMX)
    #: Share of clips that go through a real mp4 encode and vlmcap's decoder (the others are
    #: rendered frames picked and resized the same way, which is much faster).
    encode_fraction: float = 0.1
    #: Share of images re-encoded as JPEG (quality 92, as ``write_image`` saves .jpg).
    jpeg_fraction: float = 0.2
    log_every: int = 50
    eval_every: int = 250
    eval_size: int = 160
    mix: TaskMix = field(default_factory=TaskMix)
    #: Questions asked about each image or clip (different categories), beside its caption;
    #: they share the scene's vision features, so extra questions cost only their text.
    questions: int = 1
    #: What a question's answer looks like: ``letter`` ("B") or ``word`` ("circle (B)": the
    #: attribute first, then the letter of the option that says it, which a small model learns
    #: far sooner than picking the letter straight away).
    qa_format: str = "letter"
    #: Side range (px, on the drawn canvas) of the shapes in training scenes.
    shape_sizes: tuple[int, int] = (24, 40)
    spec: TinySpec = TRAINED_SPEC
    command: str = ""  # how the run was started, kept in the model folder


@dataclass
class Task:
    """One training or evaluation example before encoding."""

    kind: str  # image, video or pair
    category: str  # caption, colour, shape, count, direction or pair
    prompt: str
    target: str
    media: Any  # a PIL image, a list of two, or (T, H, W, 3) uint8 frames
    fps: float | None = None
    description: str = ""  # ground truth of the (first) scene
    media_id: int = 0  # tasks of one scene share their media (and its vision features)


@dataclass
class Encoded:
    """One example as tensors: prompt and answer ids, labels on the answer only, pixels."""

    input_ids: list[int]
    labels: list[int]
    category: str
    token_types: list[int]  # 0 text, 1 image, 2 video (the processor's ``mm_token_type_ids``)
    pixel_values: torch.Tensor | None = None
    image_grid_thw: torch.Tensor | None = None
    pixel_values_videos: torch.Tensor | None = None
    video_grid_thw: torch.Tensor | None = None
    second_per_grid_ts: list[float] = field(default_factory=list)
    media_id: int = 0  # examples with the same id show the same media


@dataclass
class TrainResult:
    out: Path
    seconds: float
    parameters: int
    final_loss: float
    evals: list[dict[str, Any]]


# ---- media ----------------------------------------------------------------------------------


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


QA_FORMATS = ("letter", "word")


def qa_target(question: dict[str, Any], fmt: str) -> str:
    """The trained answer to a ``make_question`` / ``make_pair_question`` question."""
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
            order = [0, 1] if rng.random() < 0.5 else [1, 0]
            return [
                Task(
                    "pair",
                    "pair",
                    (q := make_pair_question(first, second, rng, target))["prompt"],
                    qa_target(q, self.config.qa_format),
                    images,
                    None,
                    first.description(),
                    self.media_id,
                )
                for target in order
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
        caption = Task(kind, "caption", prompt, truth, media, fps, truth, self.media_id)
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
                    truth,
                    self.media_id,
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


# ---- encoding -------------------------------------------------------------------------------


def processor_inputs(processor: Any, request: EngineInputs) -> Any:
    """Run the HF processor on vLLM engine inputs the way vLLM's Qwen2.5-VL processor does:
    the prompt text, the images, and each video's frames with its ``VideoMetadata``."""
    from transformers.video_utils import VideoMetadata

    mm = request["multi_modal_data"]
    kwargs: dict[str, Any] = {}
    if "image" in mm:
        images = mm["image"]
        kwargs["images"] = list(images) if isinstance(images, list | tuple) else [images]
    if "video" in mm:
        frames, meta = mm["video"]
        kwargs["videos"] = [frames]
        kwargs["video_metadata"] = [
            VideoMetadata(**{k: v for k, v in meta.items() if k != "do_sample_frames"})
        ]
    return processor(text=[request["prompt"]], return_tensors="pt", **kwargs)


class Encoder:
    """Tasks -> tensors, through the tiny plugin's ``make_request`` and the model's processor."""

    def __init__(self, model_dir: Path) -> None:
        from vlmcap.plugins.tiny import TinyQwen25VLPlugin

        self.plugin = TinyQwen25VLPlugin(model_dir)
        self.processor = self.plugin.processor()
        tokenizer = self.processor.tokenizer
        self.tokenizer = tokenizer
        self.end_id = int(tokenizer.convert_tokens_to_ids("<|im_end|>"))
        self.pad_id = int(tokenizer.pad_token_id)

    def request(self, task: Task) -> EngineInputs:
        return self.plugin.make_request(task.prompt, task.media, self.processor, fps=task.fps)

    def answer_ids(self, text: str) -> list[int]:
        ids: list[int] = self.tokenizer.encode(text, add_special_tokens=False)
        return [*ids, self.end_id]

    def encode(self, task: Task) -> Encoded:
        inputs = processor_inputs(self.processor, self.request(task))
        prompt = [int(i) for i in inputs["input_ids"][0]]
        answer = self.answer_ids(task.target)
        second = inputs.get("second_per_grid_ts")
        types = [int(t) for t in inputs["mm_token_type_ids"][0]]
        return Encoded(
            input_ids=prompt + answer,
            labels=[IGNORE] * len(prompt) + answer,
            category=task.category,
            token_types=types + [0] * len(answer),
            pixel_values=inputs.get("pixel_values"),
            image_grid_thw=inputs.get("image_grid_thw"),
            pixel_values_videos=inputs.get("pixel_values_videos"),
            video_grid_thw=inputs.get("video_grid_thw"),
            second_per_grid_ts=[float(s) for s in second] if second is not None else [],
            media_id=task.media_id,
        )


def collate(batch: Sequence[Encoded], pad_id: int, share: bool = True) -> dict[str, Any]:
    """Right-padded ids, mask and labels, and the grids of every image and video in order.

    With ``share`` the pixels of media that several examples show (one scene's caption and
    question) are kept once, with an index from each occurrence to them, so that ``forward``
    runs the vision tower once per scene; without it every example brings its own pixels, the
    plain transformers batch.
    """
    import torch

    length = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), length), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), length), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), length), dtype=torch.long)
    types = torch.zeros((len(batch), length), dtype=torch.int)
    for row, e in enumerate(batch):
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids)
        labels[row, :n] = torch.tensor(e.labels)
        mask[row, :n] = 1
        types[row, :n] = torch.tensor(e.token_types)
    out: dict[str, Any] = {
        "input_ids": ids,
        "attention_mask": mask,
        "labels": labels,
        "mm_token_type_ids": types,
    }
    for grid in ("image_grid_thw", "video_grid_thw"):
        parts = [getattr(e, grid) for e in batch if getattr(e, grid) is not None]
        if parts:
            out[grid] = torch.cat(parts)
    seconds = [s for e in batch for s in e.second_per_grid_ts]
    if seconds:
        out["second_per_grid_ts"] = torch.tensor(seconds)
    for pixels, grid in (
        ("pixel_values", "image_grid_thw"),
        ("pixel_values_videos", "video_grid_thw"),
    ):
        if grid not in out:
            continue
        if not share:
            out[pixels] = torch.cat(
                [getattr(e, pixels) for e in batch if getattr(e, grid) is not None]
            )
            continue
        keys: dict[tuple[int, int], int] = {}
        unique_pixels: list[Any] = []
        unique_grids: list[Any] = []
        index: list[int] = []
        for e in batch:
            g = getattr(e, grid)
            if g is None:
                continue
            chunks = torch.split(getattr(e, pixels), [int(t.prod()) for t in g])
            for j, (chunk, thw) in enumerate(zip(chunks, g, strict=True)):
                key = (e.media_id, j)
                if key not in keys:
                    keys[key] = len(unique_pixels)
                    unique_pixels.append(chunk)
                    unique_grids.append(thw)
                index.append(keys[key])
        out[f"shared_{pixels}"] = torch.cat(unique_pixels)
        out[f"shared_{grid}"] = torch.stack(unique_grids)
        out[f"{grid}_index"] = index
    return out


def _shared_encoder_outputs(model: Any, batch: dict[str, Any], device: Any) -> dict[str, Any]:
    """Vision features of each distinct image and video, once, laid out per occurrence."""
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    out: dict[str, Any] = {}
    for kind, pixels, grid, encode in (
        ("image", "pixel_values", "image_grid_thw", model.model.get_image_features),
        ("video", "pixel_values_videos", "video_grid_thw", model.model.get_video_features),
    ):
        if f"{grid}_index" not in batch:
            continue
        features = encode(
            batch[f"shared_{pixels}"].to(device),
            batch[f"shared_{grid}"].to(device),
            return_dict=True,
        ).pooler_output
        laid_out = tuple(features[i] for i in batch[f"{grid}_index"])
        out[kind] = BaseModelOutputWithPooling(pooler_output=cast(Any, laid_out))
    return out


def forward(
    model: Any, batch: dict[str, Any], focal_gamma: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy over the answer tokens, and whether each answer token (at its label
    position, shifted like the logits) is the model's top choice.

    ``focal_gamma`` > 0 weighs each token by ``(1 - p) ** focal_gamma`` (focal loss, ``p`` the
    probability of the right token): tokens the model already gets (colours, grammar) stop
    dominating the gradient, and the hard ones (shapes, motion) get it.
    """
    import torch
    import torch.nn.functional as F

    device = next(model.parameters()).device
    inputs: dict[str, Any] = {
        k: v.to(device)
        for k, v in batch.items()
        if isinstance(v, torch.Tensor) and k != "labels" and not k.startswith("shared_")
    }
    if any(k.endswith("_index") for k in batch):
        inputs["mm_encoder_outputs"] = _shared_encoder_outputs(model, batch, device)
    logits = model(**inputs).logits[:, :-1].float()
    labels = batch["labels"][:, 1:].to(device)
    flat = labels.reshape(-1)
    losses = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), flat, ignore_index=IGNORE, reduction="none"
    )
    keep = flat != IGNORE
    if focal_gamma > 0:
        weights = (1 - torch.exp(-losses.detach())) ** focal_gamma
        loss = (weights * losses)[keep].sum() / keep.sum()
    else:
        loss = losses[keep].mean()
    right = (logits.detach().argmax(-1) == labels) | (labels == IGNORE)
    return loss, right


#: What the first answer tokens of a caption say: "two blue squares ...", "a red circle ...".
CAPTION_FIELDS = ("count", "colour", "shape")


# ---- training -------------------------------------------------------------------------------


def shape_colour_direction(processor: Any, seed: int = 0) -> np.ndarray:
    """The RGB direction (unit, in the processor's normalised pixel space) along which every
    palette colour stands furthest from the grey backgrounds: the best of a seeded search."""
    ip = processor.image_processor
    mean, std = np.asarray(ip.image_mean), np.asarray(ip.image_std)
    grey = (np.asarray(PLAIN_RGB) / 255 - mean) / std
    deltas = np.stack([(np.asarray(rgb) / 255 - mean) / std - grey for rgb in RGB.values()])
    candidates = np.random.default_rng(seed).normal(size=(4096, 3))
    candidates /= np.linalg.norm(candidates, axis=1, keepdims=True)
    best = np.abs(candidates @ deltas.T).min(axis=1).argmax()
    return np.asarray(candidates[best])


def patch_kmeans_filters(
    processor: Any,
    direction: np.ndarray,
    *,
    n: int,
    shape_sizes: tuple[int, int],
    seed: int,
    scenes: int = 400,
    iterations: int = 25,
) -> np.ndarray:
    """``n`` unit-norm ``(patch, patch)`` filters: spherical k-means centroids of the patches of
    plain-background scenes that hold part of a shape (the most contrasted half), seen through
    the colour ``direction`` (k-means features, Coates & Ng 2011): edges, corners and tips of the
    shapes at the scales the processor makes of them, for the tower to start from."""
    ip = processor.image_processor
    size, frames = int(ip.patch_size), int(ip.temporal_patch_size)
    rng = random.Random(seed)
    samples = []
    for _ in range(scenes):
        spec = random_scene(rng, video=False, backgrounds=("plain",), sizes=shape_sizes)
        image = render_image(spec, rng.choice(IMAGE_SIZES))
        pixels = np.asarray(ip(images=[image], return_tensors="np")["pixel_values"])
        patches = pixels.reshape(-1, 3, frames, size, size)[:, :, 0]  # both frames are the image
        samples.append(np.einsum("nchw,c->nhw", patches, direction).reshape(len(patches), -1))
    x = np.concatenate(samples)
    x = x - x.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(x, axis=1)
    x = x[norms > max(np.quantile(norms, 0.5), 1e-6)]
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    generator = np.random.default_rng(seed)
    centroids = x[generator.choice(len(x), n, replace=len(x) < n)].copy()
    for _ in range(iterations):
        assign = (x @ centroids.T).argmax(axis=1)
        for k in range(n):
            total = x[assign == k].sum(axis=0)
            norm = np.linalg.norm(total)
            centroids[k] = total / norm if norm > 0 else x[generator.integers(len(x))]
    return centroids.reshape(n, size, size)


def init_patch_embedding(
    model: Any, direction: np.ndarray, seed: int, spatial: np.ndarray | None = None
) -> None:
    """Start the vision tower colour-blind: every channel of the patch embedding sees the
    pixels through one colour direction (``shape_colour_direction``) with its own random
    spatial filter, so a shape gives the same features in every colour (up to sign) and the
    tower learns shapes once instead of once per colour; the last quarter of the channels take
    the difference of the two frames of a patch (motion). ``spatial`` (``(k, patch, patch)``)
    replaces the random filters of the first ``k`` channels. Training then refines all of it."""
    import torch

    weight = model.model.visual.patch_embed.proj.weight  # (hidden, 3, frames, patch, patch)
    hidden, channels, frames, height, width = weight.shape
    generator = torch.Generator().manual_seed(seed)
    filters = torch.randn(hidden, height, width, generator=generator)
    filters /= filters.flatten(1).norm(dim=1)[:, None, None]
    if spatial is not None:
        filters[: len(spatial)] = torch.as_tensor(spatial, dtype=filters.dtype)
    colour = torch.as_tensor(direction, dtype=weight.dtype)
    time = torch.ones(hidden, frames)
    time[hidden - hidden // 4 :, 1::2] = -1.0  # motion channels: frame 1 minus frame 2
    time /= frames**0.5
    scale = model.config.vision_config.initializer_range * (channels * height * width) ** 0.5
    with torch.no_grad():
        weight.copy_(
            scale
            * colour[None, :, None, None, None]
            * time[:, None, :, None, None]
            * filters[:, None, None, :, :]
        )


def lr_at(step: int, config: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to ``min_lr_ratio`` of the peak."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    floor = config.min_lr_ratio
    return config.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def count_parameters(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


def evaluate_batches(
    model: Any, batches: Sequence[tuple[dict[str, Any], list[str]]]
) -> dict[str, float]:
    """Teacher-forced scores on pre-encoded batches: exact match per category (``all`` over
    every example) and, for captions, the share of right count, colour and shape words."""
    import torch

    hits: dict[str, list[bool]] = defaultdict(list)
    model.eval()
    with torch.no_grad():
        for batch, categories in batches:
            _, right = forward(model, batch)
            labels = batch["labels"][:, 1:]
            for row, category in enumerate(categories):
                ok = bool(right[row].all())
                hits[category].append(ok)
                hits["all"].append(ok)
                if category == "caption":
                    answer = (labels[row] != IGNORE).nonzero().flatten().tolist()
                    for name, pos in zip(CAPTION_FIELDS, answer, strict=False):
                        hits[f"caption_{name}"].append(bool(right[row, pos]))
    model.train()
    return {k: round(sum(v) / len(v), 3) for k, v in sorted(hits.items())}


def _optimizer(model: Any, config: TrainConfig) -> Any:
    import torch

    groups: dict[tuple[bool, bool], list[Any]] = {}
    for name, p in model.named_parameters():
        decays = p.ndim >= 2 and "embed" not in name
        groups.setdefault(("visual" in name, decays), []).append(p)
    return torch.optim.AdamW(
        [
            {
                "params": params,
                "weight_decay": config.weight_decay if decays else 0.0,
                "lr_scale": config.vision_lr_scale if visual else 1.0,
            }
            for (visual, decays), params in sorted(groups.items())
        ],
        lr=config.lr,
        betas=(0.9, 0.98),
        eps=1e-8,
    )


def held_out_batches(
    encoder: Encoder, config: TrainConfig, work: Path
) -> list[tuple[dict[str, Any], list[str]]]:
    """A fixed evaluation set from its own seed, encoded once: (batch, categories) pairs."""
    sampler = TaskSampler(encoder.plugin, config, config.seed + 1_000_003, work)
    batches = []
    for start in range(0, config.eval_size, config.batch_size):
        tasks = sampler.batch(min(config.batch_size, config.eval_size - start))
        encoded = [encoder.encode(t) for t in tasks]
        batches.append((collate(encoded, encoder.pad_id), [t.category for t in tasks]))
    return batches


def fit(model: Any, encoder: Encoder, config: TrainConfig, work: Path) -> dict[str, Any]:
    """The training loop; returns seconds, the smoothed final loss and the held-out checks."""
    import torch

    sampler = TaskSampler(encoder.plugin, config, config.seed, work)
    eval_batches = held_out_batches(encoder, config, work) if config.eval_every else []
    optimizer = _optimizer(model, config)
    started = time.perf_counter()
    evals: list[dict[str, Any]] = []
    running = 0.0
    for step in range(config.steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, config) * group["lr_scale"]
        tasks = sampler.batch(config.batch_size)
        batch = collate([encoder.encode(t) for t in tasks], encoder.pad_id)
        device = torch.device(config.device).type
        with torch.autocast(device, dtype=torch.bfloat16, enabled=config.bf16_autocast):
            loss, _ = forward(model, batch, config.focal_gamma)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        value = float(loss.detach())
        running = value if step == 0 else 0.95 * running + 0.05 * value
        done = step + 1
        if done % config.log_every == 0 or done == config.steps:
            elapsed = time.perf_counter() - started
            logger.info(
                "step %d/%d  loss %.4f  lr %.2e  %.0f s",
                done,
                config.steps,
                running,
                lr_at(step, config),
                elapsed,
            )
        if eval_batches and (done % config.eval_every == 0 or done == config.steps):
            scores = evaluate_batches(model, eval_batches)
            evals.append({"step": done, **scores})
            logger.info("step %d held-out exact match: %s", done, scores)
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "final_loss": round(running, 4),
        "evals": evals,
    }


def train(config: TrainConfig) -> TrainResult:
    """Train a tiny model and write its folder to ``config.out`` (replacing what is there)."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    config.out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".training-", dir=config.out.parent))
    work = Path(tempfile.mkdtemp(prefix="vlmcap-train-"))
    try:
        model_config = write_assets(staging, config.spec, trained_corpus())
        model_config.save_pretrained(staging)  # the processor loads beside a config
        model: Any = Qwen2_5_VLForConditionalGeneration(model_config)
        encoder = Encoder(staging)
        if config.colour_blind_init:
            direction = shape_colour_direction(encoder.processor, config.seed)
            spatial = None
            if config.kmeans_init:
                hidden = config.spec.vision_hidden
                spatial = patch_kmeans_filters(
                    encoder.processor,
                    direction,
                    n=hidden - hidden // 4,
                    shape_sizes=config.shape_sizes,
                    seed=config.seed,
                )
            init_patch_embedding(model, direction, config.seed, spatial)
        model.to(config.device).train()
        parameters = count_parameters(model)
        logger.info("training a %s-parameter tiny Qwen2.5-VL", f"{parameters:,}")
        stats = fit(model, encoder, config, work)
        model.generation_config = generation_config(model_config)
        model.to("cpu", torch.bfloat16).save_pretrained(staging, safe_serialization=True)
        settings = {k: v for k, v in asdict(config).items() if k not in ("out", "spec")}
        record = {
            "spec": asdict(config.spec),
            "train": {**settings, "parameters": parameters, **stats},
        }
        (staging / "vlmcap_tiny.json").write_text(json.dumps(record, indent=2) + "\n")
        if config.out.exists():
            shutil.rmtree(config.out)
        staging.rename(config.out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    logger.info(
        "saved the trained tiny model to %s (%.0f s of training)", config.out, stats["seconds"]
    )
    return TrainResult(
        config.out, stats["seconds"], parameters, stats["final_loss"], stats["evals"]
    )


def parse_args(argv: Sequence[str] | None = None) -> TrainConfig:
    defaults = TrainConfig()
    p = argparse.ArgumentParser(
        prog="python -m vlmcap.testing.train_tiny", description=__doc__.split("\n")[0]
    )
    p.add_argument("--out", type=Path, default=defaults.out, help="model folder to write")
    p.add_argument("--steps", type=int, default=defaults.steps)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--lr", type=float, default=defaults.lr)
    p.add_argument(
        "--vision-lr-scale",
        type=float,
        default=defaults.vision_lr_scale,
        help="learning rate of the vision tower relative to --lr",
    )
    p.add_argument(
        "--random-patch-init",
        action="store_true",
        help="start the patch embedding at random (default: colour-blind)",
    )
    p.add_argument(
        "--kmeans-init",
        action="store_true",
        help="colour-blind patch embedding with k-means filters of shape patches",
    )
    p.add_argument("--warmup-steps", type=int, default=defaults.warmup_steps)
    p.add_argument("--threads", type=int, default=defaults.threads)
    p.add_argument("--device", default=defaults.device)
    p.add_argument("--encode-fraction", type=float, default=defaults.encode_fraction)
    p.add_argument("--log-every", type=int, default=defaults.log_every)
    p.add_argument("--eval-every", type=int, default=defaults.eval_every, help="0: never")
    p.add_argument("--eval-size", type=int, default=defaults.eval_size)
    p.add_argument("--questions", type=int, default=defaults.questions)
    p.add_argument(
        "--shape-sizes",
        default="-".join(map(str, defaults.shape_sizes)),
        metavar="LO-HI",
        help="side range of the drawn shapes in px",
    )
    p.add_argument("--qa-format", choices=QA_FORMATS, default=defaults.qa_format)
    p.add_argument(
        "--spec",
        action="append",
        default=[],
        metavar="FIELD=INT",
        help="change one TinySpec field of the model (e.g. max_pixels=12544); repeatable",
    )
    a = p.parse_args(argv)
    args = sys.argv[1:] if argv is None else list(argv)
    if a.steps < 1 or a.batch_size < 1:
        p.error("--steps and --batch-size must be at least 1")
    lo, _, hi = a.shape_sizes.partition("-")
    try:
        sizes = (int(lo), int(hi or lo))
    except ValueError:
        p.error(f"--shape-sizes {a.shape_sizes!r}: give LO-HI in px, e.g. 24-40")
    spec_fields = {f.name: f.type for f in fields(TinySpec)}
    changes: dict[str, Any] = {}
    for item in a.spec:
        name, _, value = item.partition("=")
        if name not in spec_fields:
            p.error(f"--spec {item}: no TinySpec field {name!r} (fields: {', '.join(spec_fields)})")
        try:
            changes[name] = float(value) if "float" in str(spec_fields[name]) else int(value)
        except ValueError:
            p.error(f"--spec {item}: {value!r} is not a number")
    return TrainConfig(
        out=a.out,
        steps=a.steps,
        seed=a.seed,
        batch_size=a.batch_size,
        lr=a.lr,
        vision_lr_scale=a.vision_lr_scale,
        colour_blind_init=not a.random_patch_init,
        kmeans_init=a.kmeans_init,
        warmup_steps=min(a.warmup_steps, a.steps),
        threads=a.threads,
        device=a.device,
        encode_fraction=a.encode_fraction,
        log_every=a.log_every,
        eval_every=a.eval_every,
        eval_size=a.eval_size,
        questions=a.questions,
        qa_format=a.qa_format,
        shape_sizes=sizes,
        spec=replace(defaults.spec, **changes),
        command=shlex.join(["python", "-m", "vlmcap.testing.train_tiny", *args]),
    )


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    result = train(parse_args(argv))
    print(
        json.dumps(
            {
                "out": str(result.out),
                "seconds": round(result.seconds, 1),
                "parameters": result.parameters,
                "final_loss": round(result.final_loss, 4),
            }
        )
    )


if __name__ == "__main__":
    main()
