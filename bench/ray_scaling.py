"""The Ray path against one machine, and against ``ray.data.llm``, on the same pictures.

    python bench/ray_scaling.py [--images 160] [--repeats 2] [--max-output-tokens 32] [--quick]

Contenders, one process, a local Ray cluster started once (each run starts its own engines, so
no run reuses another's caches; vLLM's multimodal and prefix caches are off anyway):

    one_machine    ``caption_files`` with the offline engine in this process (what
                   ``vlmcap caption`` runs), the engine started inside the timed call
    ray_1          ``caption_files`` with ``RayBackend``: decode tasks, 1 engine actor
    ray_2          the same with 2 engine actors
    ray_data_llm   Ray's own ``ray.data.llm`` vLLM processor, 1 engine actor, on the same
                   pictures and prompt (base64 images in OpenAI-style messages), where it runs

Each run reports its wall time (engine start-up included) and its steady rate: rows from the
first row to the last, per second, which leaves the start-up out. Ratios: ``ray_1`` vs
``one_machine`` (the Ray path's overhead; target <= 15 % at 1 actor), ``ray_2`` vs ``ray_1``,
``ray_data_llm`` vs ``ray_1``. Result: ``bench/results/ray_scaling.json``.

On a 2-core machine two CPU engines share the same cores, so ``ray_2`` measures the cost of
running two engines there, not scaling; the GPU figures are ``bench/gpu/``'s.
"""

from __future__ import annotations

import argparse
import base64
import logging
import os
import shutil
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from common import machine_info, ratio, run_alternating, summarize, write_result

logger = logging.getLogger("bench.ray_scaling")

#: How a base64 PNG is given to an OpenAI-style message.
PNG_URL = "data:image/png;base64,"
#: Picture sides of the synthetic set (the tiny model's grid is 28 px).
IMAGE_SIZES = (112, 168, 224)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--images", type=int, default=None, help="synthetic pictures [160; 24 quick]")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats [2; 1 quick]")
    p.add_argument("--quick", action="store_true", help="a small smoke run")
    p.add_argument("--max-output-tokens", type=int, default=32)
    p.add_argument("--max-inflight", type=int, default=64)
    p.add_argument(
        "--skip", action="append", default=[], help="leave this contender out (repeatable)"
    )
    p.add_argument("--pause", type=float, default=2.0, help="untimed seconds between runs")
    p.add_argument("--out", default=None, help="result file [bench/results/ray_scaling.json]")
    return p.parse_args(argv)


def make_pictures(root: Path, n: int) -> Path:
    """``n`` pictures of coloured shapes on a few sizes."""
    from PIL import Image, ImageDraw

    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        side = IMAGE_SIZES[i % len(IMAGE_SIZES)]
        image = Image.new("RGB", (side, side), ((i * 37) % 256, (i * 91) % 256, (i * 53) % 256))
        draw = ImageDraw.Draw(image)
        draw.ellipse((side // 4, side // 4, 3 * side // 4, 3 * side // 4), fill=(250, 250, 250))
        image.save(root / f"pic{i:05d}.png")
    return root


class RowClock:
    """When the first and the last row of a run came out (``time.perf_counter``)."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.last: float | None = None
        self.rows = 0

    def row(self, *_: Any) -> None:
        now = time.perf_counter()
        if self.first is None:
            self.first = now
        self.last = now
        self.rows += 1

    def steady_rate(self) -> float | None:
        if self.first is None or self.last is None or self.rows < 2 or self.last <= self.first:
            return None
        return (self.rows - 1) / (self.last - self.first)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    images = args.images or (24 if args.quick else 160)
    repeats = args.repeats or (1 if args.quick else 2)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

    from vlmcap.config import VLMConfig
    from vlmcap.distributed.cluster import connect, disconnect
    from vlmcap.media.inputs import discover
    from vlmcap.options.ray import RayOptions
    from vlmcap.tiny.model import ensure_tiny_model

    work = Path(tempfile.mkdtemp(prefix="vlmcap-bench-ray-"))
    cluster = connect(RayOptions(ray=True, engines=2))
    try:
        files = discover([make_pictures(work / "src", images)]).files
        config = VLMConfig.build(
            model="tiny-qwen2.5-vl",
            model_path=str(ensure_tiny_model()),
            max_output_tokens=args.max_output_tokens,
            max_inflight=args.max_inflight,
            mm_cache=False,
            prefix_caching=False,
            enforce_eager=True,
        )
        contenders = build_contenders(files, config, work)
        for name in args.skip:
            contenders.pop(name)
        probe = probe_ray_data_llm(contenders, files, config)

        def show(name: str, sample: Any) -> None:
            tag = "warm-up" if sample.repeat < 0 else f"repeat {sample.repeat}"
            logger.info("%-8s %-13s %7.2f s  %s", tag, name, sample.seconds, sample.value)

        # every run starts its own engines: the warm-up only fills the OS's file caches
        samples = run_alternating(contenders, repeats, pause_s=args.pause, on_sample=show)
        result = report(samples, args, images=images, repeats=repeats, probe=probe)
        path = write_result("ray_scaling", result, args.out)
        logger.info("wrote %s", path)
    finally:
        disconnect(cluster)
        shutil.rmtree(work, ignore_errors=True)


def build_contenders(files: Any, config: Any, work: Path) -> dict[str, Any]:
    """The contenders (see the module docstring), each writing into a fresh output folder."""
    from vlmcap.distributed import RayBackend
    from vlmcap.engine import load_engine
    from vlmcap.options.ray import RayOptions
    from vlmcap.pipeline.backend import OfflineBackend
    from vlmcap.pipeline.caption import caption_files
    from vlmcap.plugins.registry import get_plugin
    from vlmcap.runtime import shutdown_llm

    plugin = get_plugin(config.model, config.model_path)
    runs = {"n": 0}

    def caption(backend: Any) -> dict[str, Any]:
        runs["n"] += 1
        out = work / f"out{runs['n']}"
        clock = RowClock()
        summary = caption_files(files, backend, plugin, config, out, on_row=clock.row)
        shutil.rmtree(out)
        return {"rows": summary.rows, "ok": summary.ok, "steady_items_per_s": clock.steady_rate()}

    def one_machine() -> dict[str, Any]:
        _, llm = load_engine(config)
        try:
            return caption(OfflineBackend(llm, plugin, config))
        finally:
            shutdown_llm(llm)

    def on_ray(engines: int) -> Any:
        options = RayOptions(ray=True, engines=engines, ray_batch=8)
        return lambda: caption(RayBackend(plugin, config, options))

    return {
        "one_machine": one_machine,
        "ray_1": on_ray(1),
        "ray_2": on_ray(2),
        "ray_data_llm": lambda: ray_data_llm(files, config),
    }


def probe_ray_data_llm(contenders: dict[str, Any], files: Any, config: Any) -> Any:
    """Run ``ray.data.llm`` once on two pictures; where it cannot run here, drop it from the
    contenders and keep why."""
    if "ray_data_llm" not in contenders:
        return {"ran": False, "why": "skipped"}
    try:
        value = ray_data_llm(files[:2], config)
    except Exception as exc:  # noqa: BLE001 - any failure of the other tool is reported as such
        contenders.pop("ray_data_llm")
        logger.warning("ray.data.llm does not run here: %s", exc)
        return {
            "ran": False,
            "why": f"{type(exc).__name__}: {exc}",
            "trace": traceback.format_exc(),
        }
    return {"ran": True, "probe": value}


def ray_data_llm(files: Any, config: Any) -> dict[str, Any]:
    """The same pictures through ``ray.data.llm``'s vLLM processor, 1 engine actor on CPUs."""
    import ray.data
    from ray.data.llm import build_processor, vLLMEngineProcessorConfig

    from vlmcap.engine.args import engine_kwargs
    from vlmcap.plugins.registry import get_plugin

    plugin = get_plugin(config.model, config.model_path)
    prompt = plugin.prompt_for("image", config.prompt_style, config.prompt_text)
    rows = [{"path": str(f.path)} for f in files]
    processor_config = vLLMEngineProcessorConfig(
        model_source=config.model_path,
        # the engine settings vlmcap's own engine gets (model folder aside)
        engine_kwargs={
            **{k: v for k, v in engine_kwargs(plugin, config).items() if k != "model"},
            "distributed_executor_backend": "mp",
        },
        placement_group_config={"bundles": [{"CPU": 1}]},
        concurrency=1,
        batch_size=8,
        max_concurrent_batches=max(1, config.max_inflight // 8),
        prepare_multimodal_stage={"enabled": True},
        chat_template_stage={"enabled": True},
        tokenize_stage={"enabled": True},
        detokenize_stage={"enabled": True},
    )

    def preprocess(row: dict[str, Any]) -> dict[str, Any]:
        data = base64.b64encode(Path(row["path"]).read_bytes()).decode()
        return {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image_url",
                            "image_url": {"url": f"data:image/png;base64,{data}"},
                        },
                        {"type": "text", "text": prompt},
                    ],
                }
            ],
            "sampling_params": {"temperature": 0.0, "max_tokens": config.max_output_tokens},
        }

    def postprocess(row: dict[str, Any]) -> dict[str, Any]:
        return {"text": row.get("generated_text"), "error": row.get("__inference_error__")}

    processor = build_processor(processor_config, preprocess=preprocess, postprocess=postprocess)
    clock = RowClock()
    ok = 0
    for row in processor(ray.data.from_items(rows)).iter_rows():
        clock.row()
        ok += bool(row.get("text")) and not row.get("error")
    return {"rows": clock.rows, "ok": ok, "steady_items_per_s": clock.steady_rate()}


def command_line(args: argparse.Namespace) -> str:
    given = {k: v for k, v in vars(args).items() if v not in (None, False, [])}
    flags = " ".join(
        f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}") for k, v in given.items()
    )
    return f"python bench/ray_scaling.py {flags}".strip()


def report(
    samples: dict[str, list[Any]],
    args: argparse.Namespace,
    *,
    images: int,
    repeats: int,
    probe: Any,
) -> dict[str, Any]:
    wall = {name: [s.seconds for s in runs] for name, runs in samples.items()}
    steady = {
        name: [s.value["steady_items_per_s"] or 0.0 for s in runs] for name, runs in samples.items()
    }
    per_wall = {name: [images / s for s in values] for name, values in wall.items()}
    ratios: dict[str, Any] = {}
    pairs = [("ray_1", "one_machine"), ("ray_2", "ray_1"), ("ray_data_llm", "ray_1")]
    for num, den in pairs:
        if num in samples and den in samples:
            ratios[f"{num}_vs_{den}"] = {
                "steady": ratio(steady[num], steady[den]),
                "wall": ratio(per_wall[num], per_wall[den]),
            }
    return {
        "benchmark": "ray_scaling",
        "machine": machine_info(),
        "command": "python bench/ray_scaling.py "
        + " ".join(
            f"--{k.replace('_', '-')} {v}"
            for k, v in vars(args).items()
            if v not in (None, False, [])
        ),
        "images": images,
        "repeats": repeats,
        "max_output_tokens": args.max_output_tokens,
        "max_inflight": args.max_inflight,
        "wall_s": {name: summarize(values) for name, values in wall.items()},
        "steady_items_per_s": {name: summarize(values) for name, values in steady.items()},
        "items_per_s_with_startup": {name: summarize(v) for name, v in per_wall.items()},
        "ratios": ratios,
        "runs": {name: [s.value for s in runs] for name, runs in samples.items()},
        "ray_data_llm": probe,
        "notes": (
            "2-core CPU machine: two engines share the same cores, so ray_2 is not a scaling "
            "figure. Wall times include each contender's engine start-up (every run starts "
            "its own engines); the steady rate runs from the first row to the last."
        ),
    }


if __name__ == "__main__":
    main()
