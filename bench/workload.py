"""What the engine benchmarks share: the seeded workload (``make_items``), its command-line
options, ``--engine-arg`` and the benchmark's config (caches off, eager unless told).

    p = argparse.ArgumentParser()
    add_workload_args(p)  # --image-sides --video-frames --video-side --video-share --max-tokens
    add_engine_arg(p)     # --engine-arg KEY=VALUE (repeatable)
    args = read_args(p.parse_args(argv), p)
    items, desc = make_items(args.requests, seed, **workload_kwargs(args))
    config = bench_config(args.engine_overrides, model=args.model, model_path=args.model_path)
"""

from __future__ import annotations

import argparse
import json
import random
from fractions import Fraction
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vlmcap.config import VLMConfig
    from vlmcap.records import Item

IMAGE_SIDES = (56, 84, 112, 168, 224, 320, 448)
VIDEO_FRAMES = (4, 6, 8)
VIDEO_SIDE = 112
MAX_TOKENS = (8, 48)
#: Share of the requests that are clips (the rest are pictures).
VIDEO_SHARE = 1 / 3
#: The share is read as the nearest fraction with at most this denominator (1/3 stays 1/3).
SHARE_DENOMINATOR = 1000


def make_items(
    n: int,
    seed: int,
    *,
    sides: tuple[int, ...] = IMAGE_SIDES,
    video_frames: tuple[int, ...] = VIDEO_FRAMES,
    video_side: int = VIDEO_SIDE,
    max_tokens_range: tuple[int, int] = MAX_TOKENS,
    video_share: float = VIDEO_SHARE,
) -> tuple[list[Item], dict[str, Any]]:
    """Seeded mix: images of varied sizes (width and height each one of ``sides``) and, spread
    evenly among them, ``video_share`` of videos (``video_frames`` frames of ``video_side``
    squared; default a third, of 4-8 frames at 112x112), each with its own ``max_tokens`` in
    ``max_tokens_range`` (default 8..48) so requests finish at different steps. Share 1 is the
    caption-shaped workload: clips only."""
    import numpy as np
    from PIL import Image

    from vlmcap.records import Item

    rng = random.Random(seed)
    nprng = np.random.default_rng(seed)
    side = video_side
    share = Fraction(video_share).limit_denominator(SHARE_DENOMINATOR)
    items: list[Item] = []
    for i in range(n):
        max_tokens = rng.randint(*max_tokens_range)
        # request i is a clip when the running count of clips steps up at i
        if int((i + 1) * share) > int(i * share):
            frames = rng.choice(video_frames)
            # uint8 (T, H, W, 3), the form vlmcap's video decoder gives the plugins
            media: Any = nprng.integers(0, 256, (frames, side, side, 3), dtype=np.uint8)
            items.append(Item(f"vid{i:04d}", media, fps=2.0, max_tokens=max_tokens))
            items[-1].meta["shape"] = [frames, 3, side, side]
        else:
            w, h = rng.choice(sides), rng.choice(sides)
            pixels = nprng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            items.append(Item(f"img{i:04d}", Image.fromarray(pixels), max_tokens=max_tokens))
            items[-1].meta["shape"] = [w, h]
    tokens = [it.max_tokens or 0 for it in items]
    videos = [it for it in items if it.key.startswith("vid")]
    desc = {
        "requests": n,
        "seed": seed,
        "images": n - len(videos),
        "videos": len(videos),
        "video_share": video_share,
        "image_sides_px": list(sides),
        "video": f"{'/'.join(map(str, video_frames))} frames of {side}x{side} random noise "
        "(uint8, as decoded) at fps 2.0",
        "max_tokens_range": list(max_tokens_range),
        "max_tokens_sum": sum(tokens),
        "shapes": {it.key: it.meta["shape"] for it in items},
        "max_tokens": {it.key: it.max_tokens for it in items},
    }
    return items, desc


# ---- options --------------------------------------------------------------------------------


def _csv(values: tuple[int, ...]) -> str:
    return ",".join(map(str, values))


def add_workload_args(
    p: argparse.ArgumentParser,
    *,
    sides: tuple[int, ...] = IMAGE_SIDES,
    frames: tuple[int, ...] = VIDEO_FRAMES,
    side: int = VIDEO_SIDE,
    max_tokens: tuple[int, int] = MAX_TOKENS,
) -> None:
    """The workload's options, with this benchmark's defaults."""
    tokens = f"{max_tokens[0]}-{max_tokens[1]}"
    p.add_argument(
        "--image-sides",
        default=_csv(sides),
        help=f"comma-separated image widths/heights in px to draw from [{_csv(sides)}]",
    )
    p.add_argument(
        "--video-frames",
        default=_csv(frames),
        help=f"comma-separated frame counts to draw from [{_csv(frames)}]",
    )
    p.add_argument("--video-side", type=int, default=side, help=f"clip frame side in px [{side}]")
    p.add_argument(
        "--video-share",
        type=float,
        default=VIDEO_SHARE,
        help="share of the requests that are clips (1: the caption-shaped workload) [1/3]",
    )
    p.add_argument("--max-tokens", default=tokens, help=f"per-request max_tokens LO-HI [{tokens}]")


def add_engine_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--engine-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a VLMConfig field or an extra vllm.LLM keyword (VALUE parsed as JSON if it can "
        "be, e.g. load_format=dummy, enforce_eager=false, gpu_memory_utilization=0.4); "
        "repeatable",
    )


def read_args(args: argparse.Namespace, p: argparse.ArgumentParser) -> argparse.Namespace:
    """The workload's options (where ``add_workload_args`` added them) as tuples, checked, and
    ``--engine-arg`` (where added) as ``args.engine_overrides``."""
    if hasattr(args, "video_share"):
        if not 0 <= args.video_share <= 1:
            p.error(f"--video-share must be within 0..1, got {args.video_share}")
        args.image_sides = tuple(int(c) for c in args.image_sides.split(",") if c.strip())
        args.video_frames = tuple(int(c) for c in args.video_frames.split(",") if c.strip())
        lo, _, hi = args.max_tokens.partition("-")
        args.max_tokens = (int(lo), int(hi or lo))
    if hasattr(args, "engine_arg"):
        args.engine_overrides = parse_engine_args(args.engine_arg, p)
    return args


def parse_size(text: str, flag: str, parser: argparse.ArgumentParser) -> tuple[int, int]:
    """``"640x360"`` -> ``(640, 360)``; anything else is a usage error naming ``flag``."""
    w, sep, h = text.lower().partition("x")
    if not sep or not w.isdigit() or not h.isdigit():
        parser.error(f"{flag} wants WxH in pixels, got {text!r}")
    return int(w), int(h)


def workload_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """``make_items`` keywords from the options ``read_args`` read."""
    return {
        "sides": args.image_sides,
        "video_frames": args.video_frames,
        "video_side": args.video_side,
        "max_tokens_range": args.max_tokens,
        "video_share": args.video_share,
    }


def parse_engine_args(
    pairs: list[str], parser: argparse.ArgumentParser | None = None
) -> dict[str, Any]:
    """``["load_format=dummy", "enforce_eager=false"]`` -> ``{"load_format": "dummy", ...}``."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            msg = f"--engine-arg wants KEY=VALUE, got {pair!r}"
            if parser is None:
                raise ValueError(msg)
            parser.error(msg)
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out[key.strip().replace("-", "_")] = value
    return out


def config_values(overrides: dict[str, Any], **defaults: Any) -> dict[str, Any]:
    """VLMConfig values: ``defaults`` < ``overrides`` naming a VLMConfig field; the other
    overrides go to ``engine_args`` (extra ``vllm.LLM`` keywords)."""
    from vlmcap.config import VLMConfig

    values = dict(defaults)
    extra = dict(values.pop("engine_args", {}))
    for key, value in overrides.items():
        if key in VLMConfig.model_fields and key != "engine_args":
            values[key] = value
        else:
            extra[key] = value
    if extra:
        values["engine_args"] = extra
    return values


def bench_config(overrides: dict[str, Any], **values: Any) -> VLMConfig:
    """The benchmarks' config: vLLM's multimodal and prefix caches off and eager mode (a
    benchmark compares fresh work), then ``values``, then ``overrides`` (``--engine-arg``)."""
    from vlmcap.config import VLMConfig

    defaults: dict[str, Any] = {"mm_cache": False, "prefix_caching": False, "enforce_eager": True}
    return VLMConfig.build(**config_values(overrides, **{**defaults, **values}))
