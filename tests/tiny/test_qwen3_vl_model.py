"""The tiny Qwen3-VL: a deterministic build that transformers loads back, and vLLM's real CPU
engine running it on one picture, two pictures and a clip.

One engine for the module (about 40 s to start on a CPU), shut down at the end.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from vlmcap.tiny.qwen3_vl import (
    PIXEL_MULTIPLE,
    TinyQwen3VLSpec,
    build_tiny_qwen3_vl,
    ensure_tiny_qwen3_vl,
    mrope_section,
)

#: New tokens per request; with ``ignore_eos`` every request runs to exactly this many.
MAX_TOKENS = 12
#: Most pictures one prompt may carry in the module's engine.
MAX_IMAGES = 2
#: Frames of the test clip and their rate: timestamps are the middle of each 2-frame patch.
CLIP_FRAMES = 8
CLIP_FPS = 1.0
CLIP_SIDE = 224
#: 2 x 2 patches make one language token.
MERGE = 4


def vision_tokens(width: int, height: int) -> int:
    """Language tokens of one picture: each side rounded to a multiple of 32 pixels (Qwen3-VL;
    Qwen2.5-VL rounds to 28), then one token per 32 x 32 block."""
    return round(height / PIXEL_MULTIPLE) * round(width / PIXEL_MULTIPLE)


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def noise_image(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("qwen3-vl-cache")


@pytest.fixture(scope="module")
def model_dir(model_cache: Path) -> Path:
    return ensure_tiny_qwen3_vl(model_cache)


# ---- the build ------------------------------------------------------------------------------


def test_the_same_spec_gives_the_same_folder_and_a_new_spec_another(model_cache, model_dir):
    weights = model_dir / "model.safetensors"
    built_at = weights.stat().st_mtime_ns
    assert ensure_tiny_qwen3_vl(model_cache) == model_dir
    assert weights.stat().st_mtime_ns == built_at  # found in the cache, not built again
    assert TinyQwen3VLSpec().digest() == TinyQwen3VLSpec().digest()
    assert TinyQwen3VLSpec(seed=1).digest() != TinyQwen3VLSpec().digest()
    assert model_dir.name.endswith(TinyQwen3VLSpec().digest())
    assert not list(model_cache.rglob(".building-*"))  # no temporary folder left


def test_a_second_build_is_byte_identical(model_dir, tmp_path):
    again = build_tiny_qwen3_vl(tmp_path / "again")
    for name in ("model.safetensors", "tokenizer.json", "config.json", "processor_config.json"):
        assert file_digest(again / name) == file_digest(model_dir / name), name


def test_transformers_loads_the_config_back_with_qwen3_vl_geometry(model_dir):
    from transformers import AutoConfig, AutoTokenizer, Qwen3VLConfig

    config = AutoConfig.from_pretrained(model_dir)
    assert isinstance(config, Qwen3VLConfig)
    assert config.architectures == ["Qwen3VLForConditionalGeneration"]
    vision, text = config.vision_config, config.text_config
    assert (vision.patch_size, vision.spatial_merge_size, vision.temporal_patch_size) == (16, 2, 2)
    assert vision.out_hidden_size == text.hidden_size
    assert len(vision.deepstack_visual_indexes) <= text.num_hidden_layers
    section = text.rope_parameters["mrope_section"]
    assert sum(section) == text.head_dim // 2 == sum(mrope_section(text.head_dim))
    assert text.rope_parameters["mrope_interleaved"] is True
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    for token, field in (
        ("<|image_pad|>", config.image_token_id),
        ("<|video_pad|>", config.video_token_id),
        ("<|vision_start|>", config.vision_start_token_id),
        ("<|vision_end|>", config.vision_end_token_id),
        ("<|im_end|>", text.eos_token_id),
    ):
        assert tokenizer.convert_tokens_to_ids(token) == field, token
    assert len(tokenizer) == text.vocab_size


def test_the_model_is_small(model_dir):
    import json

    marker = json.loads((model_dir / "vlmcap_tiny.json").read_text())
    assert 500_000 < marker["parameters"] < 2_000_000
    assert (model_dir / "model.safetensors").stat().st_size < 4_000_000


def test_the_chat_template_renders_media_as_qwen3_vl_does(model_dir):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(model_dir)
    content = [
        {"type": "image"},
        {"type": "image"},
        {"type": "video"},
        {"type": "text", "text": "Hi"},
    ]
    messages = [{"role": "user", "content": content}]
    plain = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert plain == (
        "<|im_start|>user\n"
        + "<|vision_start|><|image_pad|><|vision_end|>" * 2
        + "<|vision_start|><|video_pad|><|vision_end|>Hi<|im_end|>\n<|im_start|>assistant\n"
    )  # no default system turn, unlike Qwen2.5-VL
    labelled = processor.apply_chat_template(
        [{"role": "system", "content": "Be brief."}, *messages],
        tokenize=False,
        add_generation_prompt=True,
        add_vision_id=True,
    )
    assert labelled.startswith("<|im_start|>system\nBe brief.<|im_end|>\n")
    assert "Picture 1: <|vision_start|>" in labelled and "Picture 2: <|vision_start|>" in labelled
    assert "Video 1: <|vision_start|><|video_pad|>" in labelled


def test_the_processor_resizes_to_multiples_of_32(model_dir):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(model_dir)
    out = processor.image_processor(images=[noise_image(200, 150, 0)], return_tensors="pt")
    grid_t, grid_h, grid_w = (int(v) for v in out["image_grid_thw"][0])
    assert (grid_t, grid_h * 16, grid_w * 16) == (1, 160, 192)
    assert grid_h * grid_w // MERGE == vision_tokens(200, 150) == 30  # 35 at Qwen2.5-VL's 28


# ---- vLLM's real engine ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def qwen3_engine(model_dir: Path) -> Iterator[tuple[Any, Any]]:
    """(vllm.LLM, processor) on the tiny Qwen3-VL, started once for the module."""
    from transformers import AutoProcessor
    from vllm import LLM

    from vlmcap.runtime import before_engine_start, shutdown_llm

    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    before_engine_start()
    llm = LLM(
        model=str(model_dir),
        enforce_eager=True,
        max_model_len=2048,
        gpu_memory_utilization=0.3,
        limit_mm_per_prompt={"image": MAX_IMAGES, "video": 1},
        enable_chunked_prefill=False,
        seed=0,
    )
    try:
        yield llm, AutoProcessor.from_pretrained(model_dir)
    finally:
        shutdown_llm(llm)


def generate(engine: tuple[Any, Any], items: list[dict[str, Any]], mm_data: dict[str, Any]) -> Any:
    """One request: the chat template's prompt over ``items`` plus a question, sampled with a
    seed for ``MAX_TOKENS`` tokens."""
    from vllm import SamplingParams

    llm, processor = engine
    messages = [{"role": "user", "content": [*items, {"type": "text", "text": "Describe."}]}]
    prompt = processor.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True, add_vision_id=True
    )
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
def test_one_picture(qwen3_engine):
    out = generate(qwen3_engine, [{"type": "image"}], {"image": noise_image(200, 150, 1)})
    assert_ran_to_completion(out)
    assert prompt_text(qwen3_engine, out).count("<|image_pad|>") == vision_tokens(200, 150)


@pytest.mark.engine
def test_two_pictures(qwen3_engine):
    images = [noise_image(224, 224, 2), noise_image(96, 320, 3)]
    out = generate(qwen3_engine, [{"type": "image"}, {"type": "image"}], {"image": images})
    assert_ran_to_completion(out)
    text = prompt_text(qwen3_engine, out)
    assert text.count("<|image_pad|>") == vision_tokens(224, 224) + vision_tokens(96, 320)
    assert text.index("Picture 1: ") < text.index("Picture 2: ")


@pytest.mark.engine
def test_a_clip_with_its_timestamps(qwen3_engine):
    rng = np.random.default_rng(4)
    frames = rng.integers(0, 256, (CLIP_FRAMES, CLIP_SIDE, CLIP_SIDE, 3), dtype=np.uint8)
    metadata = {
        "fps": CLIP_FPS,
        "frames_indices": list(range(CLIP_FRAMES)),
        "total_num_frames": CLIP_FRAMES,
        "duration": CLIP_FRAMES / CLIP_FPS,
        "do_sample_frames": False,
    }
    out = generate(qwen3_engine, [{"type": "video"}], {"video": (frames, metadata)})
    assert_ran_to_completion(out)
    text = prompt_text(qwen3_engine, out)
    # One "<t seconds>" label per 2-frame patch: the middle of frames (0, 1), (2, 3), ...
    assert re.findall(r"<(\d+\.\d) seconds>", text) == ["0.5", "2.5", "4.5", "6.5"]
    # 8 frames of 224 x 224 cost 8 x 224 x 224 pixels, over the clip budget of 8 x 128 x 128:
    # frames shrink to 128 x 128, 16 tokens for each of the 4 temporal patches.
    assert text.count("<|video_pad|>") == 4 * 16
