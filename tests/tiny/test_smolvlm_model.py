"""The tiny SmolVLM2: a deterministic build that transformers loads back, and vLLM's real CPU
engine running it on one picture and on two; vLLM refuses video for this architecture.

One engine for the module (about 25-40 s to start on a CPU), shut down at the end.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from vlmcap.tiny.smolvlm import (
    TILES_PER_SIDE,
    TinySmolVLMSpec,
    build_tiny_smolvlm,
    ensure_tiny_smolvlm,
)

#: New tokens per request; with ``ignore_eos`` every request runs to exactly this many.
MAX_TOKENS = 12
#: Most pictures one prompt may carry in the module's engine.
MAX_IMAGES = 2
#: The default spec's tile side and ``<image>`` tokens per tile (128 px / 16 px / 4, squared).
TILE = 128
TOKENS_PER_TILE = 4
#: Frames of the test clip and their rate.
CLIP_FRAMES = 8
CLIP_FPS = 1.0
CLIP_SIDE = 224


def tile_grid(width: int, height: int) -> tuple[int, int]:
    """(rows, columns) of tiles SmolVLM cuts a picture into: the longest side scaled to four
    tiles (up or down), the other side kept in proportion and made even, both rounded up to
    whole tiles."""
    longest = TILES_PER_SIDE * TILE
    if width >= height:
        new_w, new_h = longest, int(longest / (width / height))
        new_h += new_h % 2
    else:
        new_h, new_w = longest, int(longest * (width / height))
        new_w += new_w % 2
    return math.ceil(new_h / TILE), math.ceil(new_w / TILE)


def image_tokens(width: int, height: int) -> int:
    """``<image>`` tokens of one picture: its tiles plus the global copy, or the global copy
    alone when the picture is a single tile."""
    rows, cols = tile_grid(width, height)
    tiles = rows * cols + 1 if rows * cols > 1 else 1
    return tiles * TOKENS_PER_TILE


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def noise_image(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def noise_clip(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (CLIP_FRAMES, CLIP_SIDE, CLIP_SIDE, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("smolvlm-cache")


@pytest.fixture(scope="module")
def model_dir(model_cache: Path) -> Path:
    return ensure_tiny_smolvlm(model_cache)


@pytest.fixture(scope="module")
def processor(model_dir: Path) -> Any:
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(model_dir)


# ---- the build ------------------------------------------------------------------------------


def test_the_same_spec_gives_the_same_folder_and_a_new_spec_another(model_cache, model_dir):
    weights = model_dir / "model.safetensors"
    built_at = weights.stat().st_mtime_ns
    assert ensure_tiny_smolvlm(model_cache) == model_dir
    assert weights.stat().st_mtime_ns == built_at  # found in the cache, not built again
    assert TinySmolVLMSpec().digest() == TinySmolVLMSpec().digest()
    assert TinySmolVLMSpec(seed=1).digest() != TinySmolVLMSpec().digest()
    assert model_dir.name == f"tiny-smolvlm-{TinySmolVLMSpec().digest()}"
    assert not list(model_cache.rglob(".building-*"))  # no temporary folder left


def test_a_second_build_is_byte_identical(model_dir, tmp_path):
    again = build_tiny_smolvlm(tmp_path / "again")
    names = ("model.safetensors", "tokenizer.json", "tokenizer_config.json", "config.json")
    for name in (*names, "processor_config.json", "chat_template.jinja"):
        assert file_digest(again / name) == file_digest(model_dir / name), name


def test_a_tile_that_does_not_split_into_merged_patches_is_refused():
    with pytest.raises(ValueError, match="scale factor"):
        TinySmolVLMSpec(tile_side=96)  # 6 x 6 patches cannot merge 4 x 4


def test_transformers_loads_the_config_back_with_smolvlm_geometry(model_dir, processor):
    from transformers import AutoConfig, SmolVLMConfig

    config = AutoConfig.from_pretrained(model_dir)
    assert isinstance(config, SmolVLMConfig)
    assert config.model_type == "smolvlm"
    assert config.architectures == ["SmolVLMForConditionalGeneration"]
    vision, text = config.vision_config, config.text_config
    assert text.model_type == "llama"
    assert (vision.image_size, vision.patch_size, config.scale_factor) == (TILE, 16, 4)
    assert processor.image_seq_len == TOKENS_PER_TILE == (TILE // 16 // 4) ** 2
    tokenizer = processor.tokenizer
    assert tokenizer.convert_tokens_to_ids("<image>") == config.image_token_id
    assert processor.image_token_id == config.image_token_id
    assert tokenizer.eos_token == "<end_of_utterance>"
    assert tokenizer.convert_tokens_to_ids("<end_of_utterance>") == text.eos_token_id
    assert len(tokenizer) == text.vocab_size
    for token in ("<fake_token_around_image>", "<global-img>", "<row_1_col_1>", "<row_6_col_6>"):
        assert len(tokenizer.encode(token, add_special_tokens=False)) == 1, token


def test_the_model_is_small(model_dir):
    marker = json.loads((model_dir / "vlmcap_tiny.json").read_text())
    assert 500_000 < marker["parameters"] < 2_000_000
    assert (model_dir / "model.safetensors").stat().st_size < 4_000_000


def test_the_chat_template_renders_media_as_smolvlm2_does(processor):
    def render(messages: list[dict[str, Any]]) -> str:
        return str(
            processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        )

    one = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hi"}]}]
    assert render(one) == "<|im_start|>User:<image>Hi<end_of_utterance>\nAssistant:"
    two = [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "Hi"}]
    assert render([{"role": "user", "content": two}]) == (
        "<|im_start|>User:<image><image>Hi<end_of_utterance>\nAssistant:"
    )
    # A turn that does not open with an image gets a space after the colon; a video is
    # ``<video>``; a single ``<|im_start|>`` opens the whole conversation.
    later = [
        {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
        {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Hi"}]},
    ]
    assert render(later) == (
        "<|im_start|>System: Be brief.<end_of_utterance>\n"
        "User: <video>Hi<end_of_utterance>\nAssistant:"
    )


def test_the_processor_cuts_a_picture_into_tiles_and_a_global_copy(processor):
    out = processor.image_processor(
        images=[noise_image(200, 150, 0)], return_row_col_info=True, return_tensors="pt"
    )
    assert tile_grid(200, 150) == (3, 4)  # scaled to 512 x 384, then 128-px tiles
    assert (out["rows"], out["cols"]) == ([[3]], [[4]])
    assert tuple(out["pixel_values"].shape) == (1, 3 * 4 + 1, 3, TILE, TILE)


def test_the_processor_writes_a_clip_as_timestamped_single_tile_frames(processor):
    from transformers.video_utils import VideoMetadata

    content = [{"type": "video"}, {"type": "text", "text": "What happens?"}]
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
    )
    metadata = VideoMetadata(
        total_num_frames=CLIP_FRAMES,
        fps=CLIP_FPS,
        duration=CLIP_FRAMES / CLIP_FPS,
        frames_indices=list(range(CLIP_FRAMES)),
    )
    out = processor(
        text=[prompt], videos=[[noise_clip(4)]], video_metadata=[metadata], return_tensors="pt"
    )
    text = processor.tokenizer.decode(out["input_ids"][0])
    assert "series of eight frames from a 0:00:08 [H:MM:SS] video" in text
    assert [f"Frame from 00:0{i}:" in text for i in range(CLIP_FRAMES)] == [True] * CLIP_FRAMES
    assert text.count("<global-img>") == CLIP_FRAMES and "<row_1_col_1>" not in text
    assert text.count("<image>") == CLIP_FRAMES * TOKENS_PER_TILE


# ---- vLLM's real engine ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def smolvlm_engine(model_dir: Path, processor: Any) -> Iterator[tuple[Any, Any]]:
    """(vllm.LLM, processor) on the tiny SmolVLM2, started once for the module."""
    from vllm import LLM

    from vlmcap.runtime import before_engine_start, shutdown_llm

    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    before_engine_start()
    llm = LLM(
        model=str(model_dir),
        enforce_eager=True,
        max_model_len=2048,
        gpu_memory_utilization=0.3,
        limit_mm_per_prompt={"image": MAX_IMAGES},
        enable_chunked_prefill=False,
        seed=0,
    )
    try:
        yield llm, processor
    finally:
        shutdown_llm(llm)


def generate(engine: tuple[Any, Any], items: list[dict[str, Any]], mm_data: dict[str, Any]) -> Any:
    """One request: the chat template's prompt over ``items`` plus a question, sampled with a
    seed for ``MAX_TOKENS`` tokens."""
    from vllm import SamplingParams

    llm, processor = engine
    messages = [{"role": "user", "content": [*items, {"type": "text", "text": "Describe."}]}]
    prompt = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    params = SamplingParams(max_tokens=MAX_TOKENS, temperature=0.8, seed=7, ignore_eos=True)
    (out,) = llm.generate([{"prompt": prompt, "multi_modal_data": mm_data}], params)
    return out


def prompt_text(engine: tuple[Any, Any], out: Any) -> str:
    return str(engine[1].tokenizer.decode(out.prompt_token_ids))


def assert_ran_to_completion(out: Any) -> None:
    (completion,) = out.outputs
    assert completion.finish_reason == "length"
    assert len(completion.token_ids) == MAX_TOKENS


@pytest.mark.engine
def test_one_picture(smolvlm_engine):
    out = generate(smolvlm_engine, [{"type": "image"}], {"image": noise_image(200, 150, 1)})
    assert_ran_to_completion(out)
    image_id = smolvlm_engine[1].image_token_id
    assert out.prompt_token_ids.count(image_id) == image_tokens(200, 150) == 52
    text = prompt_text(smolvlm_engine, out)
    assert text.startswith("<|im_start|>User:<fake_token_around_image><row_1_col_1><image>")
    assert "<row_3_col_4>" in text and "<row_4_col_1>" not in text and "<row_1_col_5>" not in text
    assert text.count("<global-img>") == 1
    assert text.endswith("<fake_token_around_image>Describe.<end_of_utterance>\nAssistant:")


@pytest.mark.engine
def test_two_pictures(smolvlm_engine):
    images = [noise_image(224, 224, 2), noise_image(96, 320, 3)]
    out = generate(smolvlm_engine, [{"type": "image"}, {"type": "image"}], {"image": images})
    assert_ran_to_completion(out)
    image_id = smolvlm_engine[1].image_token_id
    expected = image_tokens(224, 224) + image_tokens(96, 320)
    assert out.prompt_token_ids.count(image_id) == expected == 17 * 4 + 9 * 4
    text = prompt_text(smolvlm_engine, out)
    assert text.count("<global-img>") == 2
    # The square one is 4 x 4 tiles, the tall one 4 rows of 2.
    first, second = text.split("<global-img>")[0], text.split("<global-img>")[1]
    assert "<row_4_col_4>" in first
    assert "<row_4_col_2>" in second and "<row_1_col_3>" not in second


@pytest.mark.engine
def test_vllm_refuses_video_for_smolvlm(smolvlm_engine):
    from vllm.exceptions import VLLMValidationError

    metadata = {
        "fps": CLIP_FPS,
        "frames_indices": list(range(CLIP_FRAMES)),
        "total_num_frames": CLIP_FRAMES,
        "duration": CLIP_FRAMES / CLIP_FPS,
        "do_sample_frames": False,
    }
    with pytest.raises(VLLMValidationError, match=r"At most 0 video\(s\)"):
        generate(smolvlm_engine, [{"type": "video"}], {"video": (noise_clip(4), metadata)})
    # The engine still serves pictures after the refusal.
    assert_ran_to_completion(
        generate(smolvlm_engine, [{"type": "image"}], {"image": noise_image(64, 64, 5)})
    )
