"""The training loop and the run that writes a model folder."""

from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vlmcap.tiny.model import generation_config, trained_corpus, write_assets
from vlmcap.tiny.training.config import IGNORE, TrainConfig
from vlmcap.tiny.training.encoding import CAPTION_FIELDS, Encoder, collate, forward
from vlmcap.tiny.training.patch_init import (
    init_patch_embedding,
    patch_kmeans_filters,
    shape_colour_direction,
)
from vlmcap.tiny.training.probe import ATTRIBUTES, attribute_probe
from vlmcap.tiny.training.tasks import TaskSampler

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    out: Path
    seconds: float
    parameters: int
    final_loss: float
    evals: list[dict[str, Any]]


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
    model: Any, batches: Sequence[tuple[dict[str, Any], list[str]]], probe: Any = None
) -> dict[str, float]:
    """Teacher-forced scores on pre-encoded batches: exact match per category (``all`` over
    every example), for captions the share of right count, colour and shape words, and with a
    ``probe`` its accuracy per attribute (``probe_shape``...)."""
    import torch

    hits: dict[str, list[bool]] = defaultdict(list)
    model.eval()
    with torch.no_grad():
        for batch, categories in batches:
            _, right, probe_right = forward(model, batch, probe=probe)
            if probe_right is not None:
                for i, (name, _) in enumerate(ATTRIBUTES):
                    hits[f"probe_{name}"].extend(probe_right[:, i].tolist())
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


def _optimizer(model: Any, config: TrainConfig, probe: Any = None) -> Any:
    import torch

    groups: dict[tuple[bool, bool], list[Any]] = {}
    named = list(model.named_parameters())
    if probe is not None:  # trained with the tower it reads
        named += [(f"visual.probe.{n}", p) for n, p in probe.named_parameters()]
    for name, p in named:
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
    probe = None
    if config.probe_weight > 0:
        probe = attribute_probe(model.config.text_config.hidden_size).to(config.device)
    optimizer = _optimizer(model, config, probe)
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
            loss = forward(model, batch, config.focal_gamma, probe, config.probe_weight).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for group in optimizer.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
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
            scores = evaluate_batches(model, eval_batches, probe)
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
