"""Build a tiny Qwen2.5-VL (real architecture, real tokenizer and processor, random weights).

The folder it writes is a complete Hugging Face model directory that vLLM and transformers load
like the real ``Qwen/Qwen2.5-VL-7B-Instruct``: ``config.json``, safetensors weights, a byte-level
BPE tokenizer with Qwen's special tokens and chat template, and the image/video processor configs.
About a million parameters; built in a few seconds on a CPU. Tests that need varied text run on
it.

``TRAINED_SPEC`` is the shape of the model that ``vlmcap.tiny.train`` trains on the
synthetic scenes; the package ships the trained folder (``shipped_model_path()``), which the
``tiny-qwen2.5-vl`` plugin loads; ``tiny-random-qwen2.5-vl`` loads the random build.

    python -m vlmcap.tiny.model OUT_DIR
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from vlmcap import envs

if TYPE_CHECKING:
    from transformers import GenerationConfig, PreTrainedTokenizerBase, Qwen2_5_VLConfig

logger = logging.getLogger(__name__)

#: Written last into a built model folder: a folder that has it is complete.
MARKER_FILE = "vlmcap_tiny.json"

SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

# Qwen2-VL style chat template: one placeholder per image/video, a default system turn. When a
# message holds several images each gets a "Picture N: " label first, as Qwen's own template
# does with ``add_vision_id``: a question about "picture 2" can find that image's tokens.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% set pictures = message['content'] | selectattr('type', 'in', "
    "['image', 'image_url']) | list | length %}{% set seen = namespace(n=0) %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set seen.n = seen.n + 1 %}{% if pictures > 1 %}Picture {{ seen.n }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

COLOURS = ("red", "green", "blue", "yellow", "purple", "orange", "white", "black")
SHAPES = ("circle", "square", "triangle", "star", "cross")
DIRECTIONS = ("left", "right", "up", "down", "still")

# Sentences the BPE is trained on: the words captions and prompts use become whole tokens.
_CORPUS_EXTRA = (
    "You are a helpful assistant.",
    "Describe this video in detail.",
    "Describe this image in detail.",
    "Write a very short caption for the given image.",
    "Answer with the correct option.",
    "Picture 1: Picture 2: Picture 3: Picture 4:",
    "Improve and refine the following description.",
    "a person walking along a path in the park on a sunny day",
    "the camera pans slowly across a city street with cars and people",
    "There is one shape on a plain background. The shape is moving.",
    "A B C D yes no one two three four",
)


@dataclass(frozen=True)
class TinySpec:
    """Sizes of the tiny model; the defaults keep it near one million parameters."""

    text_hidden: int = 128
    text_layers: int = 2
    text_heads: int = 4
    text_kv_heads: int = 2
    text_intermediate: int = 256
    vision_depth: int = 2
    vision_hidden: int = 64
    vision_heads: int = 2
    vision_intermediate: int = 128
    vocab_target: int = 512
    min_pixels: int = 56 * 56
    max_pixels: int = 224 * 224
    max_position_embeddings: int = 4096
    patch_size: int = 14  # vision patch side in px (Qwen2.5-VL's is 14)
    init_std: float = 0.3  # wide init so greedy decoding is not one repeated token
    seed: int = 0

    def digest(self) -> str:
        payload = json.dumps(asdict(self), sort_keys=True) + CHAT_TEMPLATE + "v1"
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


#: The trained model: a 4-layer, 128-wide vision tower (a 2-layer, 64-wide one learns colours but
#: not shapes), 4 text layers, a vocabulary where every caption and question word is one token,
#: images of at most 84 x 84 pixels in 7-pixel patches (36 vision tokens an image: a shape of
#: 15-25 px then spans several patches, which 14-pixel patches at the same budget do not give),
#: and weights initialised at the scale of the width.
TRAINED_SPEC = TinySpec(
    text_hidden=128,
    text_layers=4,
    text_heads=4,
    text_kv_heads=2,
    text_intermediate=384,
    vision_depth=4,
    vision_hidden=128,
    vision_heads=4,
    vision_intermediate=256,
    vocab_target=768,
    min_pixels=56 * 56,
    max_pixels=84 * 84,
    max_position_embeddings=4096,
    patch_size=7,
    init_std=0.08,  # about 1/sqrt(width): at 0.02 the image barely reaches the loss at first
    seed=0,
)

#: Where the package keeps the trained model folder.
SHIPPED_MODEL_DIR = Path(__file__).parent / "assets" / "tiny_vlm"


def shipped_model_path() -> Path:
    """The trained tiny model folder kept in the package (no network, no build)."""
    if not (SHIPPED_MODEL_DIR / "config.json").is_file():
        raise FileNotFoundError(
            f"the trained tiny model is missing from {SHIPPED_MODEL_DIR}; rebuild it with "
            "`python -m vlmcap.tiny.train` or use ensure_tiny_model() for random weights"
        )
    return SHIPPED_MODEL_DIR


def _corpus() -> list[str]:
    lines = list(_CORPUS_EXTRA)
    for c in COLOURS:
        for s in SHAPES:
            for d in DIRECTIONS:
                lines.append(f"a {c} {s} moving {d}" if d != "still" else f"a {c} {s}")
    return lines


def trained_corpus() -> list[str]:
    """Sentences for the trained model's tokenizer: the base corpus plus every caption and
    question form of the synthetic world, so that each of their words is a single token."""
    import random

    from vlmcap.prompts import STYLES
    from vlmcap.tiny import questions, synthetic

    lines = [*_corpus(), *STYLES.values()]
    rng = random.Random(0)
    for colour in COLOURS:
        for shape in SHAPES:
            for direction in DIRECTIONS:
                for count in (1, 2, 3):
                    spec = synthetic.SceneSpec(colour, shape, direction, count=count)
                    lines.append(spec.description())
                    for category in questions.CATEGORIES:
                        lines.append(questions.make_question(spec, rng, (category,))["prompt"])
    first, second = synthetic.SceneSpec("red", "circle"), synthetic.SceneSpec("blue", "star")
    lines.append(questions.make_pair_question(first, second, rng)["prompt"])
    for picture in (1, 2):
        for attribute in questions.PICTURE_CATEGORIES:
            q = questions.make_picture_question(first, second, rng, picture, attribute)
            lines.append(q["prompt"])
    return lines


def build_tokenizer(out_dir: Path, spec: TinySpec, lines: Sequence[str] | None = None) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_target,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(lines or _corpus()) * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        unk_token=None,
        additional_special_tokens=list(SPECIAL_TOKENS[1:]),
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.model_max_length = spec.max_position_embeddings
    fast.save_pretrained(out_dir)


def build_config(tokenizer: PreTrainedTokenizerBase, spec: TinySpec) -> Qwen2_5_VLConfig:
    """The ``Qwen2_5_VLConfig`` of a tiny model whose special-token ids are ``tokenizer``'s."""
    from transformers import Qwen2_5_VLConfig

    ids: dict[str, int] = {t: cast(int, tokenizer.convert_tokens_to_ids(t)) for t in SPECIAL_TOKENS}
    vocab = len(tokenizer)
    head_dim = spec.text_hidden // spec.text_heads
    half = head_dim // 2
    mrope = [half - 2 * (half // 3), half // 3, half // 3]  # sums to head_dim / 2

    token_ids: dict[str, Any] = {
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
    }
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": vocab,
            "hidden_size": spec.text_hidden,
            "intermediate_size": spec.text_intermediate,
            "num_hidden_layers": spec.text_layers,
            "num_attention_heads": spec.text_heads,
            "num_key_value_heads": spec.text_kv_heads,
            "max_position_embeddings": spec.max_position_embeddings,
            "max_window_layers": spec.text_layers,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 1000000.0,
                "mrope_section": mrope,
            },
            "initializer_range": spec.init_std,
            **token_ids,
        },
        vision_config={
            "depth": spec.vision_depth,
            "hidden_size": spec.vision_hidden,
            "intermediate_size": spec.vision_intermediate,
            "num_heads": spec.vision_heads,
            "out_hidden_size": spec.text_hidden,
            "patch_size": spec.patch_size,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 112,
            "fullatt_block_indexes": [spec.vision_depth - 1],
            "tokens_per_second": 2,
            "initializer_range": spec.init_std,
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
        **token_ids,
    )
    config.architectures = ["Qwen2_5_VLForConditionalGeneration"]
    return config


def generation_config(config: Qwen2_5_VLConfig) -> GenerationConfig:
    """What ``generation_config.json`` holds: the end, padding and start token ids."""
    from transformers import GenerationConfig

    text: Any = config.text_config
    return GenerationConfig(
        eos_token_id=text.eos_token_id,
        pad_token_id=text.pad_token_id,
        bos_token_id=text.bos_token_id,
    )


def write_assets(
    out_dir: Path, spec: TinySpec, lines: Sequence[str] | None = None
) -> Qwen2_5_VLConfig:
    """Everything of a model folder but the weights: tokenizer and processor configs. Returns
    the model config; the model's ``save_pretrained`` writes it (set its ``generation_config``
    to ``generation_config(config)`` first)."""
    from transformers import (
        AutoTokenizer,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    out_dir.mkdir(parents=True, exist_ok=True)
    build_tokenizer(out_dir, spec, lines)
    tokenizer = AutoTokenizer.from_pretrained(out_dir)
    config = build_config(tokenizer, spec)
    pixels = {"min_pixels": spec.min_pixels, "max_pixels": spec.max_pixels}
    image_processor = Qwen2VLImageProcessor(patch_size=spec.patch_size, **pixels)
    video_processor = Qwen2VLVideoProcessor(
        patch_size=spec.patch_size, cap_pixels_per_frame=False, **pixels
    )
    processor = Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(out_dir)
    return config


def save_random_model(
    model: Any, config: Any, out_dir: Path, init_std: float, marker: dict[str, Any]
) -> None:
    """Save a freshly initialised tiny model as bf16 safetensors with its generation config and
    the ``MARKER_FILE`` (written last: a folder that has it is complete). Wide embeddings and
    head give varied greedy text from random weights."""
    import torch

    with torch.no_grad():
        model.get_input_embeddings().weight.normal_(0.0, 1.0)
        model.lm_head.weight.normal_(0.0, init_std)
    model.generation_config = generation_config(config)
    model.to(torch.bfloat16).save_pretrained(out_dir, safe_serialization=True)
    (out_dir / MARKER_FILE).write_text(json.dumps(marker, indent=2))


def build_model_folder(out_dir: Path, spec: TinySpec | None = None) -> Path:
    """Write a complete tiny Qwen2.5-VL model folder into ``out_dir`` (created if missing)."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    spec = spec or TinySpec()
    config = write_assets(out_dir, spec)
    torch.manual_seed(spec.seed)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    save_random_model(model, config, out_dir, spec.init_std, {"spec": asdict(spec)})
    return out_dir


def tiny_model_dir(cache_dir: Path | None = None, spec: TinySpec | None = None) -> Path:
    """Where ``ensure_tiny_model`` keeps the folder of ``spec`` (whether built yet or not)."""
    spec = spec or TinySpec()
    return (cache_dir or envs.cache_dir()) / "models" / f"tiny-qwen2.5-vl-{spec.digest()}"


def ensure_built(final: Path, build: Callable[[Path], object], what: str) -> Path:
    """``final``, built by ``build(folder)`` on first use, atomically: into a temporary folder
    beside it, then renamed (a process that loses the race keeps the winner's)."""
    if (final / MARKER_FILE).is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=final.parent))
    try:
        build(tmp)
        try:
            os.replace(tmp, final)
        except OSError:  # another process finished first
            if not (final / MARKER_FILE).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("built %s at %s", what, final)
    return final


def ensure_tiny_model(cache_dir: Path | None = None, spec: TinySpec | None = None) -> Path:
    """The tiny model folder in the cache, built on first use (``ensure_built``)."""
    spec = spec or TinySpec()
    final = tiny_model_dir(cache_dir, spec)
    return ensure_built(final, lambda folder: build_model_folder(folder, spec), "tiny Qwen2.5-VL")


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    print(build_model_folder(target) if target else ensure_tiny_model())
