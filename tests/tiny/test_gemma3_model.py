"""The tiny Gemma 3: a deterministic build that transformers loads back, a chat template that
renders like Gemma 3's, and vLLM's real CPU engine running it on one picture and on two.

One engine for the module (about 20-40 s to start on a CPU), shut down at the end. vLLM runs
Gemma 3 on pictures only: a clip is refused, which the last test pins down.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from vlmcap.tiny.gemma3 import (
    CHECKPOINT_VISION_PREFIX,
    MARKER_FILE,
    TinyGemma3Spec,
    build_tiny_gemma3,
    ensure_tiny_gemma3,
)
from vlmcap.tiny.gemma3_tokenizer import BOI, BOS, EOI, IMAGE_TOKEN, NEWLINE_PIECES

#: New tokens per request; with ``ignore_eos`` every request runs to exactly this many.
MAX_TOKENS = 12
#: Most pictures one prompt may carry in the module's engine.
MAX_IMAGES = 2
#: The tiny model's geometry: every picture is squeezed to 224 x 224, 16 x 16 patches of 14 px,
#: pooled 4 x 4 into 16 soft tokens (the real model: 896 px, 64 x 64 patches, 256 tokens).
SIDE = 224
TOKENS_PER_IMAGE = 16
#: What the processor writes for one picture besides its soft tokens: "\n\n", <start_of_image>,
#: <end_of_image>, "\n\n".
PICTURE = f"\n\n{BOI}{IMAGE_TOKEN * TOKENS_PER_IMAGE}{EOI}\n\n"


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def noise_image(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def user_turn(*items: dict[str, Any], text: str = "Describe.") -> list[dict[str, Any]]:
    return [{"role": "user", "content": [*items, {"type": "text", "text": text}]}]


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gemma3-cache")


@pytest.fixture(scope="module")
def model_dir(model_cache: Path) -> Path:
    return ensure_tiny_gemma3(model_cache)


@pytest.fixture(scope="module")
def processor(model_dir: Path) -> Any:
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(model_dir)


# ---- the build ------------------------------------------------------------------------------


def test_the_same_spec_gives_the_same_folder_and_a_new_spec_another(model_cache, model_dir):
    weights = model_dir / "model.safetensors"
    built_at = weights.stat().st_mtime_ns
    assert ensure_tiny_gemma3(model_cache) == model_dir
    assert weights.stat().st_mtime_ns == built_at  # found in the cache, not built again
    assert TinyGemma3Spec().digest() == TinyGemma3Spec().digest()
    assert TinyGemma3Spec(seed=1).digest() != TinyGemma3Spec().digest()
    assert model_dir.name == f"tiny-gemma3-{TinyGemma3Spec().digest()}"
    assert not list(model_cache.rglob(".building-*"))  # no temporary folder left


def test_a_second_build_is_byte_identical(model_dir, tmp_path):
    again = build_tiny_gemma3(tmp_path / "again")
    names = sorted(p.name for p in model_dir.iterdir())
    assert names == sorted(p.name for p in again.iterdir())
    for name in names:
        assert file_digest(again / name) == file_digest(model_dir / name), name


def test_a_spec_whose_pooling_does_not_divide_the_patch_grid_is_refused():
    with pytest.raises(ValueError, match="pooling"):
        TinyGemma3Spec(mm_tokens_per_image=9)  # 16 patches a side do not pool to 3


def test_transformers_loads_the_config_back_with_gemma3_geometry(model_dir):
    from transformers import AutoConfig, AutoTokenizer, Gemma3Config

    config = AutoConfig.from_pretrained(model_dir)
    assert isinstance(config, Gemma3Config)
    assert config.architectures == ["Gemma3ForConditionalGeneration"]
    assert (config.model_type, config.text_config.model_type) == ("gemma3", "gemma3_text")
    vision, text = config.vision_config, config.text_config
    assert vision.model_type == "siglip_vision_model" and vision.vision_use_head is False
    assert (vision.image_size, vision.patch_size) == (SIDE, 14)
    per_side = vision.image_size // vision.patch_size
    assert config.mm_tokens_per_image == TOKENS_PER_IMAGE == (per_side // 4) ** 2
    assert text.layer_types == ["sliding_attention", "full_attention"]
    assert text.rope_parameters["full_attention"]["rope_type"] == "linear"
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    for token, field in (
        (BOI, config.boi_token_index),
        (EOI, config.eoi_token_index),
        (IMAGE_TOKEN, config.image_token_index),
        (BOS, text.bos_token_id),
        ("<end_of_turn>", text.eos_token_id[1]),
        ("<eos>", text.eos_token_id[0]),
    ):
        assert tokenizer.convert_tokens_to_ids(token) == field, token
    assert len(tokenizer) == text.vocab_size
    generation = json.loads((model_dir / "generation_config.json").read_text())
    assert generation["eos_token_id"] == text.eos_token_id  # stops at <end_of_turn> too


def test_the_weights_carry_the_real_checkpoint_names_and_load_in_transformers(model_dir):
    import torch
    from safetensors import safe_open
    from transformers import Gemma3ForConditionalGeneration

    with safe_open(model_dir / "model.safetensors", "pt") as weights:
        names = set(weights.keys())
        patch = weights.get_tensor(CHECKPOINT_VISION_PREFIX + "embeddings.patch_embedding.weight")
    assert all(n.startswith(CHECKPOINT_VISION_PREFIX) for n in names if "vision_tower" in n)
    model, info = Gemma3ForConditionalGeneration.from_pretrained(
        model_dir, dtype=torch.bfloat16, output_loading_info=True
    )
    assert not info["missing_keys"] and not info["unexpected_keys"]
    loaded = model.model.vision_tower.get_input_embeddings().weight
    assert torch.equal(loaded, patch)  # read from the file, not initialised afresh


def test_the_model_is_small(model_dir):
    marker = json.loads((model_dir / MARKER_FILE).read_text())
    assert 500_000 < marker["parameters"] < 2_000_000
    assert (model_dir / "model.safetensors").stat().st_size < 4_000_000


def test_the_tokenizer_is_gemma_s_with_newline_pieces_and_byte_fallback(processor):
    tokenizer = processor.tokenizer
    assert type(tokenizer).__name__ == "GemmaTokenizer"
    vocab = tokenizer.get_vocab()
    assert all(piece in vocab for piece in NEWLINE_PIECES)  # vLLM looks them up by text
    assert tokenizer("a\n\n\nb", add_special_tokens=False).input_ids == [
        vocab["a"],
        vocab["\n\n\n"],
        vocab["b"],
    ]
    assert (tokenizer.boi_token, tokenizer.eoi_token, tokenizer.image_token) == (
        BOI,
        EOI,
        IMAGE_TOKEN,
    )
    text = "Zoë's café ✓ at 3 am"  # characters the BPE never saw: byte pieces
    ids = tokenizer(text).input_ids
    assert ids[0] == vocab[BOS] and "<0xC3>" in tokenizer.convert_ids_to_tokens(ids)
    assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_the_chat_template_renders_as_gemma3_does(processor):
    one = processor.apply_chat_template(
        user_turn({"type": "image"}), tokenize=False, add_generation_prompt=True
    )
    assert one == (
        "<bos><start_of_turn>user\n<start_of_image>Describe.<end_of_turn>\n<start_of_turn>model\n"
    )
    # A system message opens the first user turn; a video item is dropped; texts are trimmed.
    folded = processor.apply_chat_template(
        [
            {"role": "system", "content": "Be brief."},
            *user_turn({"type": "image"}, {"type": "video"}, {"type": "image"}, text=" Hi \n"),
            {"role": "assistant", "content": "Two."},
            {"role": "user", "content": "Sure?"},
        ],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert folded == (
        "<bos><start_of_turn>user\nBe brief.\n\n<start_of_image><start_of_image>Hi<end_of_turn>\n"
        "<start_of_turn>model\nTwo.<end_of_turn>\n<start_of_turn>user\nSure?<end_of_turn>\n"
        "<start_of_turn>model\n"
    )
    with pytest.raises(Exception, match="alternate"):
        processor.apply_chat_template(
            [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], tokenize=False
        )


def test_the_processor_squeezes_every_picture_to_one_square(processor):
    images = [noise_image(640, 100, 0), noise_image(50, 300, 1)]
    prompt = processor.apply_chat_template(
        user_turn({"type": "image"}, {"type": "image"}), tokenize=False, add_generation_prompt=True
    )
    out = processor(text=prompt, images=images, return_tensors="pt")
    assert tuple(out["pixel_values"].shape) == (2, 3, SIDE, SIDE)  # no pan-and-scan crops
    text = processor.tokenizer.decode(out["input_ids"][0])
    assert text.count(PICTURE) == 2 and text.count(IMAGE_TOKEN) == 2 * TOKENS_PER_IMAGE


# ---- vLLM's real engine ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def gemma3_engine(model_dir: Path) -> Iterator[Any]:
    """A ``vllm.LLM`` on the tiny Gemma 3, started once for the module."""
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
        yield llm
    finally:
        shutdown_llm(llm)


def generate(llm: Any, prompt: str, mm_data: dict[str, Any], *, temperature: float = 0.8) -> Any:
    """One request for ``MAX_TOKENS`` tokens, sampled with a seed (greedy at temperature 0)."""
    from vllm import SamplingParams

    params = SamplingParams(max_tokens=MAX_TOKENS, temperature=temperature, seed=7, ignore_eos=True)
    request: dict[str, Any] = {"prompt": prompt}
    if mm_data:
        request["multi_modal_data"] = mm_data
    (out,) = llm.generate([request], params)
    return out


def render(processor: Any, n_images: int) -> str:
    items = [{"type": "image"}] * n_images
    return str(
        processor.apply_chat_template(user_turn(*items), tokenize=False, add_generation_prompt=True)
    )


def assert_ran_to_completion(out: Any) -> None:
    (completion,) = out.outputs
    assert completion.finish_reason == "length"
    assert len(completion.token_ids) == MAX_TOKENS


@pytest.mark.engine
def test_one_picture_expands_as_the_hf_processor_does(gemma3_engine, processor):
    image = noise_image(200, 150, 1)
    prompt = render(processor, 1)
    out = generate(gemma3_engine, prompt, {"image": image})
    assert_ran_to_completion(out)
    expected = processor(text=prompt, images=[image])["input_ids"][0]
    assert list(out.prompt_token_ids) == list(expected)
    image_id = processor.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    assert out.prompt_token_ids.count(image_id) == TOKENS_PER_IMAGE


@pytest.mark.engine
def test_two_pictures_of_any_shape_cost_the_same(gemma3_engine, processor):
    images = [noise_image(640, 100, 2), noise_image(96, 320, 3)]
    out = generate(gemma3_engine, render(processor, 2), {"image": images})
    assert_ran_to_completion(out)
    text = processor.tokenizer.decode(out.prompt_token_ids)
    assert text.count(PICTURE) == 2
    assert text.count(IMAGE_TOKEN) == 2 * TOKENS_PER_IMAGE


@pytest.mark.engine
def test_the_picture_reaches_the_text_model(gemma3_engine, processor):
    prompt = render(processor, 1)
    red, blue = (Image.new("RGB", (200, 150), colour) for colour in ("red", "blue"))
    first = generate(gemma3_engine, prompt, {"image": red}, temperature=0.0).outputs[0]
    second = generate(gemma3_engine, prompt, {"image": blue}, temperature=0.0).outputs[0]
    assert first.token_ids != second.token_ids
    assert len(set(first.token_ids)) > 1  # greedy text is not one repeated token


@pytest.mark.engine
def test_offline_prompts_get_a_second_bos_unless_the_template_s_is_dropped(
    gemma3_engine, processor
):
    # vLLM's offline ``generate`` tokenises a text prompt with special tokens, so the template's
    # own <bos> is doubled (the real Gemma 3 does the same); the OpenAI server does not add one.
    bos = processor.tokenizer.convert_tokens_to_ids(BOS)
    prompt = render(processor, 0)
    doubled = generate(gemma3_engine, prompt, {}).prompt_token_ids
    single = generate(gemma3_engine, prompt.removeprefix(BOS), {}).prompt_token_ids
    assert doubled[:2] == [bos, bos] and doubled.count(bos) == 2
    assert single[0] == bos and single.count(bos) == 1 and single == doubled[1:]


@pytest.mark.engine
def test_a_clip_is_refused(gemma3_engine, processor):
    from vllm.exceptions import VLLMValidationError

    frames = np.zeros((4, 64, 64, 3), dtype=np.uint8)
    with pytest.raises(VLLMValidationError, match=r"At most 0 video\(s\)"):
        generate(gemma3_engine, render(processor, 0), {"video": frames})
