"""Score the trained tiny model on fresh synthetic media, through the real vLLM engine.

    python -m vlmcap.tiny.evaluate [--model-path DIR] [--seed S] [--out JSON]

The held-out set is written to disk with ``make_dataset`` (PNG images, mp4 clips) under a seed
that training never uses, and read back with vlmcap's own loader (``load_file``: clips sampled
at 2 fps), so the requests are the ones ``vlmcap caption`` would send. Each file is captioned
with the plugin's default prompt and asked one multiple-choice question; each pair of images
is asked "which image shows X?" and one question about picture 1 or 2. Answers are read with
``vlmcap.qa.choices.extract_choice`` (a letter or an option's text). Everything goes through
``load_engine`` + ``caption_items``.

The helpers ``shuffled_media`` and ``swapped_pairs`` break the pipeline on purpose (media moved
to the wrong item, the two images of a pair swapped): tests use them to show that the scores
detect such bugs.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import re
import shlex
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlmcap.media.images import load_image
from vlmcap.media.inputs import MediaFile
from vlmcap.pipeline.load import MediaOptions, load_file
from vlmcap.qa.choices import extract_choice
from vlmcap.records import Item
from vlmcap.tiny.model import COLOURS, SHAPES
from vlmcap.tiny.questions import (
    CATEGORIES,
    make_pair_question,
    make_picture_question,
    make_question,
    random_pair,
)
from vlmcap.tiny.synthetic import SceneSpec, make_dataset, write_image

if TYPE_CHECKING:
    from vllm import LLM

    from vlmcap.config import VLMConfig
    from vlmcap.plugins.base import VLMPlugin

logger = logging.getLogger(__name__)

#: Seed of the held-out set: training draws from 0 (and 1_000_003 for its own checks).
EVAL_SEED = 20_261_123
_WORD = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class Question:
    """A multiple-choice item: the request, its right letter and its options (A, B, ...)."""

    item: Item
    answer: str
    category: str
    options: tuple[str, ...]


@dataclass
class EvalSet:
    """Caption items (one per file) with their ground truth, and questions."""

    captions: list[Item]
    truths: dict[str, SceneSpec]  # caption key -> scene
    questions: list[Question] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.captions)


def build_eval_set(
    root: Path,
    plugin: VLMPlugin,
    *,
    n_images: int = 100,
    n_videos: int = 100,
    n_pairs: int = 50,
    seed: int = EVAL_SEED,
) -> EvalSet:
    """Write the held-out media under ``root`` and load it the way ``vlmcap caption`` does.

    Caption prompts are the plugin's defaults (``prompt_for(kind)``); every file also gets one
    question from ``make_question`` (images: colour, shape or count; clips: any category).
    """
    rows = make_dataset(root, n_images=n_images, n_videos=n_videos, seed=seed)
    prompts = {kind: plugin.prompt_for(kind) for kind in ("image", "video")}
    rng = random.Random(seed + 1)
    out = EvalSet(captions=[], truths={})
    for row in rows:
        media = MediaFile(root / row["path"], row["path"], row["kind"])
        loaded = load_file(media, MediaOptions(), prompts, frozenset())
        if loaded.error is not None or len(loaded.items) != 1:
            raise RuntimeError(f"cannot load {row['path']}: {loaded.error}")
        item = loaded.items[0]
        spec = SceneSpec.from_dict(row)
        out.captions.append(item)
        out.truths[item.key] = spec
        categories = CATEGORIES if row["kind"] == "video" else CATEGORIES[:3]
        q = make_question(spec, rng, categories)
        qa_item = replace(item, key=f"{item.key}#qa", prompt=q["prompt"], max_tokens=4)
        out.questions.append(_question(qa_item, q))
    for i in range(n_pairs):
        first, second = random_pair(rng)
        paths = [
            write_image(root / f"pairs/pair_{i:04d}_{j}.png", s)
            for j, s in enumerate((first, second))
        ]
        images = [load_image(p) for p in paths]
        for name, q in (
            ("which", make_pair_question(first, second, rng)),
            ("picture", make_picture_question(first, second, rng)),
        ):
            item = Item(
                key=f"pairs/pair_{i:04d}#{name}",
                media=images,
                prompt=q["prompt"],
                max_tokens=4,
                meta={"kind": "pair"},
            )
            out.questions.append(_question(item, q))
    return out


def _question(item: Item, q: dict[str, Any]) -> Question:
    return Question(item, q["answer"], q["category"], tuple(q["options"]))


# ---- deliberately broken pipelines ------------------------------------------------------------


def shuffled_media(questions: Sequence[Question]) -> list[Question]:
    """Each question gets the media of the next question of the same kind (a key/media mix-up)."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, q in enumerate(questions):
        groups[_kind(q.item)].append(i)
    out = list(questions)
    for indices in groups.values():
        for a, b in zip(indices, indices[1:] + indices[:1], strict=True):
            src = questions[b].item
            out[a] = replace(
                questions[a], item=replace(questions[a].item, media=src.media, fps=src.fps)
            )
    return out


def swapped_pairs(questions: Sequence[Question]) -> list[Question]:
    """The two images of every two-image question in the wrong order."""
    out = []
    for q in questions:
        media = q.item.media
        if isinstance(media, list) and len(media) == 2:
            out.append(replace(q, item=replace(q.item, media=media[::-1])))
        else:
            out.append(q)
    return out


def _kind(item: Item) -> str:
    if isinstance(item.media, list):
        return "pair"
    return "video" if getattr(item.media, "ndim", None) == 4 else "image"


# ---- scoring ----------------------------------------------------------------------------------


def caption_checks(caption: str | None, spec: SceneSpec) -> dict[str, bool]:
    """Which facts of ``spec`` the caption gets right (word-level, other colours/shapes absent)."""
    words = set(_WORD.findall((caption or "").lower()))
    colours = {c for c in COLOURS if c in words}
    shapes = {s for s in SHAPES if s in words or f"{s}s" in words or f"{s}es" in words}
    colour = colours == {spec.colour}
    shape = shapes == {spec.shape}
    count_word = ("one", "two", "three")[spec.count - 1]
    count = count_word in words if spec.count > 1 else not words & {"two", "three"}
    if spec.moving:
        direction = f"moving {spec.direction}" in (caption or "")
    else:
        direction = "moving" not in words
    return {
        "colour": colour,
        "shape": shape,
        "colour_and_shape": colour and shape,
        "count": count,
        "direction": direction,
        "exact": (caption or "").strip().rstrip(".").lower() == spec.description(),
    }


def caption_scores(records: Sequence[Any], truths: dict[str, SceneSpec]) -> dict[str, Any]:
    """Per media kind: the share of captions right on each fact, and failures."""
    tallies: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        spec = truths[record.key]
        kind = "video" if record.key.startswith("videos/") else "image"
        for name, ok in caption_checks(record.text, spec).items():
            if name == "direction" and kind == "image":
                continue
            tallies[kind][name].append(ok)
    return {
        kind: {"n": len(t["colour"]), **{k: _share(v) for k, v in t.items()}}
        for kind, t in sorted(tallies.items())
    }


def qa_scores(records: Sequence[Any], questions: Sequence[Question]) -> dict[str, Any]:
    """Overall and per-category accuracy of the options the answers pick."""
    by_key = {r.key: r for r in records}
    per: dict[str, list[bool]] = defaultdict(list)
    four: list[bool] = []  # chance 25 %: all but "which image shows X"
    for q in questions:
        ok = extract_choice(by_key[q.item.key].text, q.options) == q.answer
        per[q.category].append(ok)
        per["all"].append(ok)
        if len(q.options) == 4:
            four.append(ok)
    return {
        "accuracy": _share(per.pop("all", [])),
        "n": len(questions),
        "accuracy_four_options": _share(four),
        "n_four_options": len(four),
        "per_category": {k: {"accuracy": _share(v), "n": len(v)} for k, v in sorted(per.items())},
    }


def _share(values: Sequence[bool]) -> float:
    return round(sum(values) / len(values), 4) if values else 0.0


def ask(
    questions: Sequence[Question], llm: LLM, plugin: VLMPlugin, config: VLMConfig
) -> dict[str, Any]:
    """Run the questions through the engine and score them."""
    from vlmcap.engine import caption_items

    records = caption_items([q.item for q in questions], llm, plugin, config)
    return qa_scores(records, questions)


# ---- command ----------------------------------------------------------------------------------


def engine_config(model_path: Path, max_model_len: int = 2048) -> VLMConfig:
    """Engine settings of the evaluation: the tiny plugin, vlmcap's default sampling."""
    from vlmcap.config import VLMConfig

    return VLMConfig.build(
        model="tiny-qwen2.5-vl",
        model_path=str(model_path),
        max_output_tokens=16,
        enforce_eager=True,
        max_model_len=max_model_len,
    )


def evaluate(eval_set: EvalSet, llm: LLM, plugin: VLMPlugin, config: VLMConfig) -> dict[str, Any]:
    """Caption and QA scores of one engine on ``eval_set``, with a few sample captions."""
    from vlmcap.engine import caption_items

    started = time.perf_counter()
    records = caption_items(eval_set.captions, llm, plugin, config)
    failed = [r.key for r in records if r.text is None]
    qa = ask(eval_set.questions, llm, plugin, config)
    return {
        "caption": caption_scores(records, eval_set.truths),
        "qa": qa,
        "failed": failed,
        "training_format_matches_engine": same_prompt_tokens(records, plugin),
        "examples": [
            {"key": r.key, "truth": eval_set.truths[r.key].description(), "caption": r.text}
            for r in records[:: max(1, len(records) // 8)]
        ],
        "seconds": round(time.perf_counter() - started, 1),
    }


def same_prompt_tokens(records: Sequence[Any], plugin: VLMPlugin) -> dict[str, int]:
    """How many records' prompt lengths in vLLM equal what the training code builds for the
    same item (plugin request + processor, as ``train_tiny`` encodes its examples)."""
    from vlmcap.tiny.training.encoding import processor_inputs

    processor = plugin.processor()
    same = 0
    checked = [r for r in records if r.item is not None]
    for record in checked:
        item = record.item
        request = plugin.engine_inputs(
            plugin.make_request(record.prompt, item.media, fps=item.fps), processor
        )
        length = int(processor_inputs(processor, request)["input_ids"].shape[1])
        same += length == record.prompt_tokens
    return {"checked": len(checked), "same_length": same}


def _folder_facts(model_path: Path) -> dict[str, Any]:
    weights = sum(p.stat().st_size for p in model_path.glob("*.safetensors"))
    folder = sum(p.stat().st_size for p in model_path.rglob("*") if p.is_file())
    info: dict[str, Any] = {"weights_bytes": weights, "folder_bytes": folder}
    meta = model_path / "vlmcap_tiny.json"
    if meta.is_file():
        record = json.loads(meta.read_text())
        train = record.get("train", {})
        info["training"] = {
            k: train[k]
            for k in (
                "steps",
                "batch_size",
                "lr",
                "seed",
                "threads",
                "seconds",
                "parameters",
                "final_loss",
            )
            if k in train
        }
        info["training"]["command"] = train.get("command")
        info["spec"] = record.get("spec")
    return info


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m vlmcap.tiny.evaluate", description=__doc__.split("\n")[0]
    )
    p.add_argument("--model-path", type=Path, default=None, help="default: the shipped model")
    p.add_argument("--images", type=int, default=100)
    p.add_argument("--videos", type=int, default=100)
    p.add_argument("--pairs", type=int, default=50)
    p.add_argument("--seed", type=int, default=EVAL_SEED)
    p.add_argument("--out", type=Path, default=Path("bench/results/tiny_eval.json"))
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    from vlmcap.engine import load_engine
    from vlmcap.tiny.model import shipped_model_path

    model_path = a.model_path or shipped_model_path()
    config = engine_config(model_path)
    with tempfile.TemporaryDirectory(prefix="vlmcap-eval-") as tmp:
        started = time.perf_counter()
        plugin, llm = load_engine(config)
        load_s = time.perf_counter() - started
        try:
            eval_set = build_eval_set(
                Path(tmp),
                plugin,
                n_images=a.images,
                n_videos=a.videos,
                n_pairs=a.pairs,
                seed=a.seed,
            )
            result = evaluate(eval_set, llm, plugin, config)
            broken = {
                "shuffled_media": ask(shuffled_media(eval_set.questions), llm, plugin, config),
                "swapped_pairs": ask(swapped_pairs(eval_set.questions), llm, plugin, config),
            }
        finally:
            llm.llm_engine.engine_core.shutdown()
    import vllm

    report = {
        "command": shlex.join(["python", "-m", "vlmcap.tiny.evaluate", *sys.argv[1:]])
        if argv is None
        else shlex.join(["python", "-m", "vlmcap.tiny.evaluate", *argv]),
        "model_path": str(model_path),
        "held_out": {"seed": a.seed, "images": a.images, "videos": a.videos, "pairs": a.pairs},
        "engine": {"vllm": vllm.__version__, "load_seconds": round(load_s, 1)},
        **result,
        "broken_pipelines": {
            name: {k: r[k] for k in ("accuracy", "accuracy_four_options", "per_category")}
            for name, r in broken.items()
        },
        **_folder_facts(model_path),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=2) + "\n")
    qa = {k: report["qa"][k] for k in ("accuracy", "accuracy_four_options")}
    print(json.dumps({"caption": report["caption"], "qa": qa}, indent=2))


if __name__ == "__main__":
    main()
