"""Build a tiny Qwen3-VL (real architecture, real tokenizer and processor, random weights).

The folder it writes is a complete Hugging Face model directory that vLLM and transformers load
like the real ``Qwen/Qwen3-VL-8B-Instruct``: ``config.json`` (``Qwen3VLConfig``: a Qwen3 text
model with interleaved multimodal RoPE, a vision tower of 16-pixel patches with DeepStack
mergers), safetensors weights, a byte-level BPE tokenizer with Qwen's special tokens and a chat
template that renders media the way Qwen3-VL's own template does, and the configs of
``Qwen3VLProcessor`` (its image processor and its video processor). About a million parameters;
built in a few seconds on a CPU, for tests that run the real engine on every Qwen3-VL path.

Qwen3-VL resizes pictures and frames to multiples of 32 pixels (patch 16 x spatial merge 2)
where Qwen2.5-VL uses 28, and it writes each video as one ``<t seconds>`` label plus one
``<|vision_start|>...<|vision_end|>`` block per temporal patch: vLLM's processor expands the
chat template's single ``<|vision_start|><|video_pad|><|vision_end|>`` into that, from the
frames' metadata (``fps`` and ``frames_indices``).

    python -m vlmcap.tiny.qwen3_vl [OUT_DIR]   # no OUT_DIR: build into the vlmcap cache
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from vlmcap import envs
from vlmcap.tiny import model as qwen25

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase, Qwen3VLConfig

logger = logging.getLogger(__name__)

#: Qwen3-VL's vision geometry (the real 4B/8B values): 16-pixel patches, 2 x 2 patches merged
#: into one language token, 2 frames per temporal patch. Pictures are resized to multiples of
#: ``PIXEL_MULTIPLE``.
PATCH_SIZE = 16
SPATIAL_MERGE_SIZE = 2
TEMPORAL_PATCH_SIZE = 2
PIXEL_MULTIPLE = PATCH_SIZE * SPATIAL_MERGE_SIZE
#: Qwen3-VL normalises pixels to [-1, 1] (mean and std 0.5), not with CLIP's statistics.
IMAGE_MEAN = (0.5, 0.5, 0.5)
IMAGE_STD = (0.5, 0.5, 0.5)
#: The real checkpoints' RoPE base of the text model.
ROPE_THETA = 5_000_000.0
#: The real ``mrope_section`` is [24, 20, 20] for a head of 128: time, height, width shares of
#: the rotary frequencies, interleaved. The tiny model keeps the proportions for its head.
MROPE_SHARES = (24, 20, 20)
#: Tokens of Qwen3-VL's vocabulary beyond those the Qwen2.5-VL builder adds.
EXTRA_SPECIAL_TOKENS = ("<|vision_pad|>",)
#: Bumped when the folder's contents change for the same spec (new cache folder).
BUILD_VERSION = "q3vl-v1"
#: The marker file written last: a folder holding it is complete.
MARKER_FILE = qwen25.MARKER_FILE

# Qwen3-VL Instruct's chat template, less its tool-calling branches: no default system turn
# (unlike Qwen2.5-VL's), one ``<|vision_start|><|image_pad|><|vision_end|>`` per picture and
# one ``<|vision_start|><|video_pad|><|vision_end|>`` per video, with "Picture N: " /
# "Video N: " labels only when the caller passes ``add_vision_id=True``.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}"
    "{% set video_count = namespace(value=0) %}"
    "{% macro render(content) %}"
    "{% if content is string %}{{ content }}"
    "{% else %}{% for item in content %}"
    "{% if item.type == 'image' or 'image' in item or 'image_url' in item %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif item.type == 'video' or 'video' in item %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in item %}{{ item.text }}"
    "{% endif %}{% endfor %}{% endif %}"
    "{% endmacro %}"
    "{% for message in messages %}"
    "<|im_start|>{{ message.role }}\n{{ render(message.content) }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Video labels the engine writes into prompts, so that their pieces are tokens of the vocabulary.
_CORPUS_EXTRA = (
    "<0.2 seconds> <0.8 seconds> <1.2 seconds> <1.8 seconds> <2.5 seconds> <3.0 seconds>",
    "<4.0 seconds> <5.5 seconds> <6.0 seconds> <7.5 seconds> <8.0 seconds> <9.0 seconds>",
    "Video 1: Video 2: Picture 1: Picture 2:",
    "What happens in this video? What is different between the two pictures?",
)


@dataclass(frozen=True)
class TinyQwen3VLSpec:
    """Sizes of the tiny Qwen3-VL; the defaults keep it near one million parameters."""

    text_hidden: int = 128
    text_layers: int = 2
    text_heads: int = 4
    text_kv_heads: int = 2
    text_head_dim: int = 32  # set on its own, as in Qwen3 (the 4B has 32 heads of 128 in 2560)
    text_intermediate: int = 256
    vision_depth: int = 3
    vision_hidden: int = 64
    vision_heads: int = 2
    vision_intermediate: int = 128
    #: Vision layers whose features are merged and added to the first text layers' input
    #: (DeepStack); at most ``text_layers`` of them.
    deepstack_visual_indexes: tuple[int, ...] = (0, 1)
    #: Learned position grid of the vision tower (a square: 16 x 16, interpolated per image).
    num_position_embeddings: int = 256
    vocab_target: int = 512
    #: Pixel budget of one picture (``shortest_edge`` / ``longest_edge`` of the processor).
    image_min_pixels: int = 2 * PIXEL_MULTIPLE * 2 * PIXEL_MULTIPLE
    image_max_pixels: int = 224 * 224
    #: Pixel budget of one whole clip (frames x height x width, as Qwen3-VL counts it).
    video_min_pixels: int = 2 * PIXEL_MULTIPLE * 2 * PIXEL_MULTIPLE
    video_max_pixels: int = 8 * 128 * 128
    max_position_embeddings: int = 4096
    init_std: float = 0.3  # wide init so greedy decoding is not one repeated token
    seed: int = 0

    def __post_init__(self) -> None:
        if len(self.deepstack_visual_indexes) > self.text_layers:
            raise ValueError("more DeepStack vision layers than text layers to add them to")
        if any(not 0 <= i < self.vision_depth for i in self.deepstack_visual_indexes):
            raise ValueError("a DeepStack index is not a vision layer")
        side = round(self.num_position_embeddings**0.5)
        if side * side != self.num_position_embeddings:
            raise ValueError("num_position_embeddings must be a square number")

    def digest(self) -> str:
        """A short hash of everything that decides the folder's contents."""
        payload = json.dumps(asdict(self), sort_keys=True) + CHAT_TEMPLATE + BUILD_VERSION
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


def mrope_section(head_dim: int) -> list[int]:
    """Time, height and width shares of ``head_dim / 2`` rotary frequencies, in the real
    model's proportions (``[24, 20, 20]`` for a head of 128); they sum to ``head_dim / 2``."""
    half = head_dim // 2
    total = sum(MROPE_SHARES)
    spatial = [half * share // total for share in MROPE_SHARES[1:]]
    return [half - sum(spatial), *spatial]


def corpus() -> list[str]:
    """Sentences the BPE is trained on: the Qwen2.5-VL builder's plus Qwen3-VL's video labels."""
    return [*qwen25._corpus(), *_CORPUS_EXTRA]


def build_tokenizer(out_dir: Path, spec: TinyQwen3VLSpec) -> PreTrainedTokenizerBase:
    """Train the byte-level BPE (the Qwen2.5-VL builder's), add Qwen3-VL's extra special tokens
    and chat template, save it in ``out_dir`` and return it."""
    from transformers import AutoTokenizer

    base = qwen25.TinySpec(
        vocab_target=spec.vocab_target, max_position_embeddings=spec.max_position_embeddings
    )
    qwen25.build_tokenizer(out_dir, base, corpus())
    tokenizer = AutoTokenizer.from_pretrained(out_dir)
    tokenizer.add_special_tokens({"additional_special_tokens": list(EXTRA_SPECIAL_TOKENS)})
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(out_dir)
    return cast("PreTrainedTokenizerBase", tokenizer)


def build_config(tokenizer: PreTrainedTokenizerBase, spec: TinyQwen3VLSpec) -> Qwen3VLConfig:
    """The ``Qwen3VLConfig`` of a tiny model whose special-token ids are ``tokenizer``'s."""
    from transformers import Qwen3VLConfig

    def token_id(token: str) -> int:
        return cast(int, tokenizer.convert_tokens_to_ids(token))

    token_ids: dict[str, Any] = {
        "bos_token_id": token_id("<|endoftext|>"),
        "eos_token_id": token_id("<|im_end|>"),
        "pad_token_id": token_id("<|endoftext|>"),
    }
    config = Qwen3VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": spec.text_hidden,
            "intermediate_size": spec.text_intermediate,
            "num_hidden_layers": spec.text_layers,
            "num_attention_heads": spec.text_heads,
            "num_key_value_heads": spec.text_kv_heads,
            "head_dim": spec.text_head_dim,
            "max_position_embeddings": spec.max_position_embeddings,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": ROPE_THETA,
                "mrope_section": mrope_section(spec.text_head_dim),
                "mrope_interleaved": True,
            },
            "initializer_range": spec.init_std,
            "tie_word_embeddings": False,
            **token_ids,
        },
        vision_config={
            "depth": spec.vision_depth,
            "hidden_size": spec.vision_hidden,
            "intermediate_size": spec.vision_intermediate,
            "num_heads": spec.vision_heads,
            "out_hidden_size": spec.text_hidden,
            "patch_size": PATCH_SIZE,
            "spatial_merge_size": SPATIAL_MERGE_SIZE,
            "temporal_patch_size": TEMPORAL_PATCH_SIZE,
            "num_position_embeddings": spec.num_position_embeddings,
            "deepstack_visual_indexes": list(spec.deepstack_visual_indexes),
            "initializer_range": spec.init_std,
        },
        image_token_id=token_id("<|image_pad|>"),
        video_token_id=token_id("<|video_pad|>"),
        vision_start_token_id=token_id("<|vision_start|>"),
        vision_end_token_id=token_id("<|vision_end|>"),
        tie_word_embeddings=False,
    )
    config.architectures = ["Qwen3VLForConditionalGeneration"]
    return config


def write_assets(out_dir: Path, spec: TinyQwen3VLSpec) -> Qwen3VLConfig:
    """Everything of a model folder but the weights: tokenizer and processor configs. Returns
    the model config (the model's ``save_pretrained`` writes it)."""
    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor, Qwen3VLVideoProcessor

    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(out_dir, spec)
    config = build_config(tokenizer, spec)
    geometry: dict[str, Any] = {
        "patch_size": PATCH_SIZE,
        "merge_size": SPATIAL_MERGE_SIZE,
        "temporal_patch_size": TEMPORAL_PATCH_SIZE,
        "image_mean": list(IMAGE_MEAN),
        "image_std": list(IMAGE_STD),
    }
    image_processor = Qwen2VLImageProcessor(
        size={"shortest_edge": spec.image_min_pixels, "longest_edge": spec.image_max_pixels},
        **geometry,
    )
    video_processor = Qwen3VLVideoProcessor(
        size={"shortest_edge": spec.video_min_pixels, "longest_edge": spec.video_max_pixels},
        cap_pixels_per_frame=False,
        **geometry,
    )
    processor = Qwen3VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(out_dir)
    return config


def build_tiny_qwen3_vl(out_dir: Path, spec: TinyQwen3VLSpec | None = None) -> Path:
    """Write a complete tiny Qwen3-VL model folder into ``out_dir`` (created if missing)."""
    import torch
    from transformers import Qwen3VLForConditionalGeneration

    spec = spec or TinyQwen3VLSpec()
    out_dir = Path(out_dir)
    config = write_assets(out_dir, spec)
    torch.manual_seed(spec.seed)
    model = Qwen3VLForConditionalGeneration(config).eval()
    n_params = sum(p.numel() for p in model.parameters())
    marker = {"spec": asdict(spec), "parameters": n_params, "digest": spec.digest()}
    # generation_config reads only ``text_config``'s token ids, which Qwen3VLConfig has too.
    qwen25.save_random_model(model, config, out_dir, spec.init_std, marker)
    return out_dir


def tiny_qwen3_vl_dir(cache_dir: Path | None = None, spec: TinyQwen3VLSpec | None = None) -> Path:
    """Where ``ensure_tiny_qwen3_vl`` keeps the folder of ``spec`` (whether built yet or not)."""
    spec = spec or TinyQwen3VLSpec()
    return (cache_dir or envs.cache_dir()) / "models" / f"tiny-qwen3-vl-{spec.digest()}"


def ensure_tiny_qwen3_vl(
    cache_dir: Path | None = None, spec: TinyQwen3VLSpec | None = None
) -> Path:
    """The tiny Qwen3-VL folder in the cache, built on first use (``ensure_built``)."""
    spec = spec or TinyQwen3VLSpec()
    final = tiny_qwen3_vl_dir(cache_dir, spec)
    return qwen25.ensure_built(
        final, lambda folder: build_tiny_qwen3_vl(folder, spec), "tiny Qwen3-VL"
    )


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    print(build_tiny_qwen3_vl(target) if target else ensure_tiny_qwen3_vl())
