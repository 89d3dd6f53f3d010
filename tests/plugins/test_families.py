"""Every shipped family through the real offline engine, on its tiny model.

One engine per family (module-scoped, one at a time): Qwen3-VL (``tiny-qwen3-vl``, also
driven through the ``tiny-cosmos-reason2`` plugin), and the generic plugin on two other
architectures (``tiny-gemma3``, ``tiny-smolvlm``). Each family captions a picture, several
pictures and a clip, runs stage 2, answers QA questions, and fails an item it cannot take with
a message naming the model and the input, while the items around it succeed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import engine_config
from vlmcap.config import VLMConfig
from vlmcap.core import Lifecycle
from vlmcap.engine import caption_items
from vlmcap.engine.transport import completion_of
from vlmcap.pipeline.backend import OfflineBackend
from vlmcap.pipeline.qa import answer_questions
from vlmcap.plugins.registry import get_plugin
from vlmcap.qa.dataset import load_questions
from vlmcap.qa.results import metrics_path
from vlmcap.records import Item, Status
from vlmcap.rows import CaptionRow
from vlmcap.tiny.qa_set import write_question_set

pytestmark = pytest.mark.engine


@dataclass(frozen=True)
class Family:
    variant: str
    #: What the chat template writes for one picture (before vLLM expands it).
    image_marker: str
    #: What it writes for one clip: the video marker, or one picture marker per frame.
    video_marker: str
    clip_as_frames: bool


FAMILIES = (
    Family(
        "tiny-qwen3-vl", "<|vision_start|><|image_pad|>", "<|vision_start|><|video_pad|>", False
    ),
    Family("tiny-gemma3", "<start_of_image>", "<start_of_image>", True),
    Family("tiny-smolvlm", "<image>", "<image>", True),
)
#: Frames of the test clips (even: Qwen merges frames in pairs).
CLIP_FRAMES = 4


def picture(seed: int, size: tuple[int, int] = (96, 64)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def clip(seed: int, frames: int = CLIP_FRAMES) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.random((frames, 3, 64, 96), dtype=np.float32))


def family_config(variant: str, **overrides: Any) -> VLMConfig:
    plugin = get_plugin(variant)
    values: dict[str, Any] = {"model": variant, "model_path": plugin.model_path}
    values.update(overrides)
    return engine_config(Path(plugin.model_path), **values)


@pytest.fixture(scope="module", params=FAMILIES, ids=lambda f: f.variant)
def family(request: pytest.FixtureRequest) -> Iterator[tuple[Family, Any, Any]]:
    """(family, plugin, vllm.LLM): one engine per family, stopped before the next starts."""
    from vlmcap.engine import load_engine
    from vlmcap.runtime import shutdown_llm

    fam: Family = request.param
    plugin, llm = load_engine(family_config(fam.variant))
    yield fam, plugin, llm
    shutdown_llm(llm)


def test_the_prompt_has_one_marker_per_picture_and_the_clip_the_family_s_way(family):
    fam, plugin, _ = family
    processor = plugin.processor()

    def prompt(media: Any) -> str:
        return str(
            plugin.engine_inputs(plugin.make_request("Describe.", media), processor)["prompt"]
        )

    assert prompt(picture(1)).count(fam.image_marker) == 1
    assert prompt([picture(1), picture(2)]).count(fam.image_marker) == 2
    clip_markers = prompt(clip(3)).count(fam.video_marker)
    assert clip_markers == (CLIP_FRAMES if fam.clip_as_frames else 1)
    assert plugin.capabilities.video is not fam.clip_as_frames


def test_a_picture_several_pictures_and_a_clip_are_captioned(family):
    fam, plugin, llm = family
    items = [
        Item("one.png", picture(1)),
        Item("two.png", [picture(2), picture(3, (64, 96))]),
        Item("clip.mp4", clip(4), fps=2.0),
    ]
    records = caption_items(items, llm, plugin, family_config(fam.variant))
    by_key = {r.key: r for r in records}
    assert all(r.status == Status.OK and r.text for r in records), [r.error for r in records]
    # the second picture costs prompt tokens: it reached the model
    assert by_key["two.png"].prompt_tokens > by_key["one.png"].prompt_tokens
    assert by_key["clip.mp4"].prompt_tokens > by_key["one.png"].prompt_tokens
    assert all("<end_of_turn>" not in r.text and "<|im_end|>" not in r.text for r in records)


def test_stage_two_refines_the_first_text(family):
    fam, plugin, llm = family
    config = family_config(fam.variant, stage2=True)
    (record,) = caption_items([Item("one.png", picture(5))], llm, plugin, config)
    assert record.status == Status.OK, record.error
    assert record.stage1_text and record.text
    single = caption_items([Item("one.png", picture(5))], llm, plugin, family_config(fam.variant))
    # two requests: the second prompt carries the first text
    assert record.prompt_tokens > single[0].prompt_tokens


def test_an_input_the_model_cannot_take_fails_that_item_only(family):
    fam, plugin, llm = family
    too_many = plugin.capabilities.max_images + 1
    items = [
        Item("before.png", picture(6)),
        Item("many.png", [picture(10 + i) for i in range(too_many)]),
        Item("after.png", picture(7)),
    ]
    records = caption_items(items, llm, plugin, family_config(fam.variant))
    status = {r.key: r for r in records}
    assert status["before.png"].status == status["after.png"].status == Status.OK
    failed = status["many.png"]
    assert failed.status == Status.FAILED
    assert fam.variant in failed.error and f"this item has {too_many}" in failed.error


def test_qa_questions_are_answered_and_scored(family, tmp_path):
    fam, plugin, llm = family
    root = tmp_path / "qa"
    path = write_question_set(root, n_images=4, n_pairs=2, seed=5)
    questions = load_questions(path, root).questions
    config = family_config(fam.variant, max_output_tokens=12)
    backend = OfflineBackend(llm, plugin, config)
    summary = answer_questions(questions, backend, plugin, config, tmp_path)
    metrics = json.loads(metrics_path(tmp_path, fam.variant).read_text())
    assert metrics["total_questions"] == len(questions) == summary.ok + summary.failed
    # random weights may write only blanks (an empty answer fails); most answer something
    assert summary.ok > len(questions) // 2
    assert any(len(q.images) == 2 for q in questions)  # the pair questions carry two pictures
    assert 0.0 <= metrics["overall_accuracy"] <= 1.0


@pytest.mark.parametrize("family", FAMILIES[:1], indirect=True, ids=lambda f: f.variant)
def test_reasoning_is_kept_apart_from_the_caption(family):
    """Cosmos-Reason2 on the Qwen3-VL engine: the engine is made to write the reasoning format
    (structured output), and the record keeps the answer as its text, the thinking apart."""
    _, _, llm = family
    from vllm import SamplingParams
    from vllm.sampling_params import StructuredOutputsParams

    plugin = get_plugin("tiny-cosmos-reason2", llm.llm_engine.model_config.model)
    config = family_config("tiny-cosmos-reason2")
    lifecycle = Lifecycle(plugin, config)
    record = lifecycle.new_record(Item("clip.mp4", clip(8), fps=2.0))
    staged = lifecycle.first(record)
    assert staged is not None
    inputs = plugin.engine_inputs(staged.request, plugin.processor())
    assert "immediately after the </think> tag" in inputs["prompt"]
    form = StructuredOutputsParams(regex=r"<think>[a-z ]{8,30}</think>\n\n[a-z ]{4,20}")
    params = SamplingParams(max_tokens=64, seed=3, structured_outputs=form)
    (output,) = llm.generate([inputs], params, use_tqdm=False)
    written = output.outputs[0].text
    assert lifecycle.settle(record, completion_of(output)) is False
    thinking, answer = written.removeprefix("<think>").split("</think>")
    assert record.status == Status.OK
    assert record.text == answer.strip() and record.reasoning == thinking.strip()
    row = CaptionRow.from_record(record, {}).to_json()
    assert row["reasoning"] == thinking.strip() and "<think>" not in row["caption"]
