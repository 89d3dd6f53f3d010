"""Where the vision tower's patch embedding starts: colour-blind filters."""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from vlmcap.tiny.synthetic import PLAIN_RGB, RGB, random_scene, render_image
from vlmcap.tiny.training.config import IMAGE_SIZES


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
