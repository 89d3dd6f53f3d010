"""A lower bound on the GPU time of a breakdown run's workload (``floor_estimate``), from the
model's published config and the ceilings of the GPU measured apart.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from breakdown_report import Run, rounded

#: Ceilings measured on an H200 of this workplace (bf16 8192^3 matrix product on random data;
#: device-to-device copy counting bytes read and written), used only by the floor estimate.
H200_BF16_FLOPS = 788e12
H200_COPY_BYTES_PER_S = 4.3e12


def floor_estimate(model_path: str | None, runs: list[Run]) -> dict[str, Any] | None:
    """A lower bound on the GPU time of the workload from its matrix-product FLOPs (LLM on every
    prompt and output token, vision tower on every patch) at the measured bf16 rate, and from
    reading the LLM's weights once per decode step at the measured copy bandwidth; attention
    score FLOPs, KV-cache reads and kernel launch gaps are left out."""
    if not model_path or not runs:
        return None
    try:
        cfg = json.loads((Path(model_path) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    text = cfg.get("text_config") or cfg
    vision = cfg.get("vision_config") or {}
    try:
        h, inter, layers = text["hidden_size"], text["intermediate_size"], text["num_hidden_layers"]
        heads, kv = text["num_attention_heads"], text.get("num_key_value_heads", 0)
        vocab = text["vocab_size"]
    except KeyError:
        return None
    kv = kv or heads
    head_dim = h // heads
    per_layer = 2 * h * h + 2 * h * kv * head_dim + 3 * h * inter
    llm_matmul = layers * per_layer + vocab * h  # + lm_head
    llm_weight_bytes = 2 * (llm_matmul + vocab * h)  # bf16, embedding table included
    run = runs[-1]
    prompt = sum(r.prompt_tokens for r in run.records)
    output = sum(r.output_tokens for r in run.records)
    flops = 2.0 * llm_matmul * (prompt + output)
    vit = None
    if vision:
        vh, vi, depth = vision["hidden_size"], vision["intermediate_size"], vision["depth"]
        merge = vision.get("spatial_merge_size", 2)
        out_h = vision.get("out_hidden_size", h)
        vit_per_patch = depth * (4 * vh * vh + 3 * vh * vi)
        merger_per_token = (vh * merge * merge) ** 2 + vh * merge * merge * out_h
        mm_tokens = 0
        for shape in run.shapes:
            if len(shape) == 4:  # frames, channels, side, side
                frames, _, side_h, side_w = shape
                t = max(1, frames // vision.get("temporal_patch_size", 2))
                mm_tokens += t * (side_h // 28) * (side_w // 28)
            elif len(shape) == 2:
                w, hh = shape
                mm_tokens += (w // 28) * (hh // 28)
        patches = mm_tokens * merge * merge
        vit = 2.0 * (vit_per_patch * patches + merger_per_token * mm_tokens)
        flops += vit
    decode_steps = max((r.output_tokens for r in run.records), default=0)
    compute_s = flops / H200_BF16_FLOPS
    weights_s = decode_steps * llm_weight_bytes / H200_COPY_BYTES_PER_S
    floor_s = max(compute_s, weights_s)
    return {
        "flops": flops,
        "vision_flops": vit,
        "prompt_tokens": prompt,
        "output_tokens": output,
        "llm_matmul_params": llm_matmul,
        "decode_steps_at_least": decode_steps,
        "compute_s": rounded(compute_s),
        "weight_reads_s": rounded(weights_s),
        "floor_s": rounded(floor_s),
        "floor_items_per_s": rounded(len(run.records) / floor_s, 2) if floor_s else None,
        "sum_s": rounded(compute_s + weights_s),
        "measured_over_floor": rounded(run.wall_s / floor_s, 2) if floor_s else None,
        "ceilings": {
            "bf16_flops": H200_BF16_FLOPS,
            "copy_bytes_per_s": H200_COPY_BYTES_PER_S,
            "source": "measured on an H200 of this workplace (bf16 8192^3 product, random "
            "data; device-to-device copy), not in this run",
        },
        "method": "floor_s = max(compute_s, weight_reads_s); compute_s: 2 x matrix parameters "
        "x tokens (LLM: prompt + output tokens; vision tower: 4 patches per image token) over "
        "the bf16 rate; weight_reads_s: one read of the LLM weights (bf16) per decode step, "
        "at least as many steps as the longest output, over the copy bandwidth. Attention, "
        "KV-cache traffic and launch gaps are not counted, so the true floor is higher; "
        "sum_s adds the two terms (no overlap of prefill and decode)",
    }
