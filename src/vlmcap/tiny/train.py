"""Train the tiny Qwen2.5-VL to see the synthetic shapes world, on a CPU, in minutes.

    python -m vlmcap.tiny.train [--out DIR] [--steps N] [--seed S]

Every step draws fresh scenes (``vlmcap.tiny.synthetic``) and turns each into a request
exactly as vlmcap builds it at inference: the tiny plugin's ``make_request`` (chat template and
the very prompt texts: the default image and video prompts, the short styles, the
multiple-choice prompts) and the model's own processor, called the way vLLM calls it (images
resized by the processor; video frames sampled at 2 fps from short clips, as ``sample_video``
does, and passed as one video with their metadata). The target is the ground-truth description
for a caption prompt and the right option's text for a question (``--qa-format``); the loss
covers those tokens and the end-of-turn token, plus an attribute probe on the vision features
(``tiny_training.probe``: colour, shape, count and motion of each image or clip), which makes the
tower learn shapes several times sooner than the caption loss alone.

Flow::

    write_assets (tokenizer, processor configs) -> model at its initialisation (seeded)
    each step: TaskSampler.sample x batch -> Encoder.encode (make_request -> processor) -> collate
               -> cross-entropy on the answer tokens + probe loss -> AdamW (warm-up, cosine)
    every --eval-every steps: exact match per category on a fixed held-out batch
    save: bf16 safetensors + tokenizer + processor + generation config + vlmcap_tiny.json

The same seed and thread count give the same weights.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from collections.abc import Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from vlmcap.tiny.model import TinySpec
from vlmcap.tiny.training.config import TaskMix, TrainConfig
from vlmcap.tiny.training.loop import train
from vlmcap.tiny.training.tasks import QA_FORMATS


def parse_args(argv: Sequence[str] | None = None) -> TrainConfig:
    defaults = TrainConfig()
    p = argparse.ArgumentParser(
        prog="python -m vlmcap.tiny.train", description=__doc__.split("\n")[0]
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
    p.add_argument(
        "--probe-weight",
        type=float,
        default=defaults.probe_weight,
        help="weight of the attribute probe's loss on the vision features (0: no probe)",
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
        "--mix",
        default=",".join(str(w) for w in defaults.mix.weights()),
        metavar="IMAGE,VIDEO,PAIR",
        help="relative shares of image, video and image-pair scenes",
    )
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
    try:
        mix = TaskMix(*(float(w) for w in a.mix.split(",")))
    except (TypeError, ValueError):
        p.error(f"--mix {a.mix!r}: give three weights, e.g. 0.35,0.35,0.3")
    if min(mix.weights()) < 0 or sum(mix.weights()) <= 0:
        p.error(f"--mix {a.mix!r}: weights must be non-negative and not all zero")
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
        probe_weight=a.probe_weight,
        warmup_steps=min(a.warmup_steps, a.steps),
        threads=a.threads,
        device=a.device,
        encode_fraction=a.encode_fraction,
        log_every=a.log_every,
        eval_every=a.eval_every,
        eval_size=a.eval_size,
        questions=a.questions,
        qa_format=a.qa_format,
        mix=mix,
        shape_sizes=sizes,
        spec=replace(defaults.spec, **changes),
        command=shlex.join(["python", "-m", "vlmcap.tiny.train", *args]),
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
