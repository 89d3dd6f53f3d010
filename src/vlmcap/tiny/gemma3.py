"""Build a tiny Gemma 3 (real architecture, real tokenizer and processor, random weights).

The folder it writes is a complete Hugging Face model directory that vLLM and transformers load
like the real ``google/gemma-3-4b-it``: ``config.json`` (``Gemma3Config``: a Gemma 3 text model
with interleaved sliding-window and global attention layers, a SigLIP vision tower, an
average-pooling projector), safetensors weights, a Gemma-style BPE tokenizer (spaces as ``▁``,
byte fallback) with Gemma's special tokens and Gemma 3's chat template, and the configs of
``Gemma3Processor`` and ``Gemma3ImageProcessor``. About a million parameters; built in a few
seconds on a CPU, for tests that run the real engine on the Gemma 3 path.

Gemma 3 squeezes every picture to one fixed square (896 px in the real model, ``IMAGE_SIZE``
here), cuts it into 14-pixel patches and average-pools 4 x 4 patches into one language token
(64 x 64 patches -> 256 tokens there, 16 x 16 -> 16 here), whatever the picture's aspect ratio.
The chat template writes one ``<start_of_image>`` per picture; the processor expands it into
``\\n\\n<start_of_image>`` + ``mm_tokens_per_image`` x ``<image_soft_token>`` +
``<end_of_image>\\n\\n``. vLLM's Gemma 3 processor looks up the tokens ``"\\n"`` to
``"\\n\\n\\n\\n"`` by their text in the vocabulary, so the tokenizer has them as pieces, as
Gemma's own does.

    python -m vlmcap.tiny.gemma3 [OUT_DIR]   # no OUT_DIR: build into the vlmcap cache
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
from vlmcap.tiny.gemma3_tokenizer import (
    BOI,
    BOS,
    CHAT_TEMPLATE,
    END_OF_TURN,
    EOI,
    EOS,
    IMAGE_TOKEN,
    PAD,
    build_tokenizer,
    corpus,
)

if TYPE_CHECKING:
    from transformers import Gemma3Config, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

#: Gemma 3's vision geometry: SigLIP's 14-pixel patches, and 4 x 4 patches average-pooled into
#: one language token (the real 896 px / 14 = 64 patches a side pool to 16 x 16 = 256 tokens).
PATCH_SIZE = 14
POOL_KERNEL = 4
#: The square every picture is resized to (the real model's is 896): 16 x 16 patches.
IMAGE_SIZE = 224
#: Language tokens one picture becomes: (224 / 14 / 4) ** 2.
MM_TOKENS_PER_IMAGE = (IMAGE_SIZE // PATCH_SIZE // POOL_KERNEL) ** 2
#: Gemma 3 normalises pixels to [-1, 1] (mean and std 0.5) after a bilinear resize.
IMAGE_MEAN = (0.5, 0.5, 0.5)
IMAGE_STD = (0.5, 0.5, 0.5)
BILINEAR = 2  # PIL's code for bilinear resampling, as the real preprocessor_config.json has it
#: RoPE bases of the real checkpoints: global layers at 1e6 with linear scaling 8 (4B and up),
#: sliding-window layers at 1e4.
GLOBAL_ROPE_THETA = 1_000_000.0
GLOBAL_ROPE_SCALING = 8.0
LOCAL_ROPE_THETA = 10_000.0
#: The real model's sampling defaults (its generation_config.json); vLLM applies them to
#: requests that do not set their own.
DEFAULT_TOP_K = 64
DEFAULT_TOP_P = 0.95

#: Bumped when the folder's contents change for the same spec (new cache folder).
BUILD_VERSION = "gemma3-v1"
#: The weights file and the prefix of the vision tower's tensors in it: transformers 5 writes
#: the first, Gemma 3 checkpoints (and vLLM's loader) have the second.
WEIGHTS_FILE = "model.safetensors"
VISION_PREFIX = "vision_tower."
CHECKPOINT_VISION_PREFIX = "vision_tower.vision_model."
#: The marker file written last: a folder holding it is complete.
MARKER_FILE = qwen25.MARKER_FILE


@dataclass(frozen=True)
class TinyGemma3Spec:
    """Sizes of the tiny Gemma 3; the defaults keep it near one million parameters."""

    text_hidden: int = 128
    text_layers: int = 2
    text_heads: int = 4
    text_kv_heads: int = 2
    text_head_dim: int = 32  # set on its own, as in Gemma 3 (the 4B has 8 heads of 256 in 2560)
    text_intermediate: int = 512
    #: Window of the sliding-attention layers (1024 in the real 4B); every ``global_every``-th
    #: layer attends globally (the real ratio is 5 local : 1 global, here 1 : 1).
    sliding_window: int = 512
    global_every: int = 2
    vision_layers: int = 2
    vision_hidden: int = 64
    vision_heads: int = 2
    vision_intermediate: int = 256
    image_size: int = IMAGE_SIZE
    patch_size: int = PATCH_SIZE
    mm_tokens_per_image: int = MM_TOKENS_PER_IMAGE
    #: Pieces the BPE learns beyond its bytes and special tokens.
    vocab_target: int = 384
    max_position_embeddings: int = 8192
    #: Normal init of the linear layers and of the vision-to-text projector.
    init_std: float = 0.3
    #: Random weights decode one repeated token unless the embeddings stay small beside the
    #: blocks' outputs (Gemma scales them by sqrt(hidden) and ties them to the output head, so
    #: a large embedding makes each step copy its input token), attention is sharp enough to
    #: depend on the context (a gain on the q/k norms) and the logits are spread (a gain on
    #: the final norm). Gemma's norms multiply by (1 + weight): a gain g is a weight of g - 1.
    embed_std: float = 0.03
    qk_norm_gain: float = 5.0
    final_norm_gain: float = 10.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise ValueError("image_size must be a multiple of patch_size")
        side = round(self.mm_tokens_per_image**0.5)
        if side * side != self.mm_tokens_per_image:
            raise ValueError("mm_tokens_per_image must be a square number")
        if (self.image_size // self.patch_size) % side:
            raise ValueError("patches per side must be a multiple of tokens per side (pooling)")
        if not 1 <= self.global_every <= self.text_layers:
            raise ValueError("global_every must be between 1 and text_layers")

    @property
    def layer_types(self) -> list[str]:
        """Attention kind of each text layer: every ``global_every``-th one is global."""
        return [
            "full_attention" if (i + 1) % self.global_every == 0 else "sliding_attention"
            for i in range(self.text_layers)
        ]

    def digest(self) -> str:
        """A short hash of everything that decides the folder's contents."""
        payload = "\n".join(
            [json.dumps(asdict(self), sort_keys=True), CHAT_TEMPLATE, BUILD_VERSION, *corpus()]
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


def build_config(tokenizer: PreTrainedTokenizerBase, spec: TinyGemma3Spec) -> Gemma3Config:
    """The ``Gemma3Config`` of a tiny model whose special-token ids are ``tokenizer``'s."""
    from transformers import Gemma3Config

    def token_id(token: str) -> int:
        return cast(int, tokenizer.convert_tokens_to_ids(token))

    token_ids: dict[str, Any] = {
        "bos_token_id": token_id(BOS),
        "eos_token_id": [token_id(EOS), token_id(END_OF_TURN)],
        "pad_token_id": token_id(PAD),
    }
    config = Gemma3Config(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": spec.text_hidden,
            "intermediate_size": spec.text_intermediate,
            "num_hidden_layers": spec.text_layers,
            "num_attention_heads": spec.text_heads,
            "num_key_value_heads": spec.text_kv_heads,
            "head_dim": spec.text_head_dim,
            "query_pre_attn_scalar": spec.text_head_dim,  # the real models scale by head_dim
            "max_position_embeddings": spec.max_position_embeddings,
            "sliding_window": spec.sliding_window,
            "layer_types": spec.layer_types,
            "rope_parameters": {
                "full_attention": {
                    "rope_type": "linear",
                    "factor": GLOBAL_ROPE_SCALING,
                    "rope_theta": GLOBAL_ROPE_THETA,
                },
                "sliding_attention": {"rope_type": "default", "rope_theta": LOCAL_ROPE_THETA},
            },
            "initializer_range": spec.init_std,
            "tie_word_embeddings": True,
            **token_ids,
        },
        vision_config={
            "hidden_size": spec.vision_hidden,
            "intermediate_size": spec.vision_intermediate,
            "num_hidden_layers": spec.vision_layers,
            "num_attention_heads": spec.vision_heads,
            "image_size": spec.image_size,
            "patch_size": spec.patch_size,
            "vision_use_head": False,
            "initializer_range": spec.init_std,
        },
        mm_tokens_per_image=spec.mm_tokens_per_image,
        boi_token_index=token_id(BOI),
        eoi_token_index=token_id(EOI),
        image_token_index=token_id(IMAGE_TOKEN),
        initializer_range=spec.init_std,
        tie_word_embeddings=True,
        **token_ids,
    )
    config.architectures = ["Gemma3ForConditionalGeneration"]
    return config


def write_assets(out_dir: Path, spec: TinyGemma3Spec) -> Gemma3Config:
    """Everything of a model folder but the weights: tokenizer and processor configs. Returns
    the model config (the model's ``save_pretrained`` writes it)."""
    from transformers import Gemma3ImageProcessor, Gemma3Processor

    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(
        out_dir, vocab_target=spec.vocab_target, max_length=spec.max_position_embeddings
    )
    config = build_config(tokenizer, spec)
    image_processor = Gemma3ImageProcessor(
        size={"height": spec.image_size, "width": spec.image_size},
        resample=BILINEAR,
        image_mean=list(IMAGE_MEAN),
        image_std=list(IMAGE_STD),
        do_pan_and_scan=False,
    )
    processor = Gemma3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
        image_seq_length=spec.mm_tokens_per_image,
    )
    processor.save_pretrained(out_dir)
    return config


def generation_config(config: Gemma3Config) -> Any:
    """What ``generation_config.json`` holds: Gemma 3's end tokens (``<eos>`` and
    ``<end_of_turn>``) and its sampling defaults."""
    from transformers import GenerationConfig

    text: Any = config.text_config
    return GenerationConfig(
        bos_token_id=text.bos_token_id,
        eos_token_id=text.eos_token_id,
        pad_token_id=text.pad_token_id,
        do_sample=True,
        top_k=DEFAULT_TOP_K,
        top_p=DEFAULT_TOP_P,
    )


def save_random_model(
    model: Any, config: Gemma3Config, out_dir: Path, spec: TinyGemma3Spec, marker: dict[str, Any]
) -> None:
    """Save a freshly initialised tiny Gemma 3 as bf16 safetensors with its generation config
    and the ``MARKER_FILE`` (written last: a folder that has it is complete).

    The embeddings (tied to the output head) and the norm gains are set as the spec says, so
    that greedy text varies; the projector from vision to text, which transformers starts at
    zero, gets a normal init, or no image would reach the text model."""
    import torch

    text = model.model.language_model
    with torch.no_grad():
        model.get_input_embeddings().weight.normal_(0.0, spec.embed_std)
        model.model.multi_modal_projector.mm_input_projection_weight.normal_(0.0, spec.init_std)
        text.norm.weight.fill_(spec.final_norm_gain - 1.0)
        for layer in text.layers:
            layer.self_attn.q_norm.weight.fill_(spec.qk_norm_gain - 1.0)
            layer.self_attn.k_norm.weight.fill_(spec.qk_norm_gain - 1.0)
    model.generation_config = generation_config(config)
    model.to(torch.bfloat16).save_pretrained(out_dir, safe_serialization=True)
    rename_to_checkpoint_keys(out_dir / WEIGHTS_FILE)
    (out_dir / MARKER_FILE).write_text(json.dumps(marker, indent=2))


def rename_to_checkpoint_keys(weights: Path) -> None:
    """Rewrite ``weights`` with the tensor names of the real checkpoints.

    transformers 5 saves the SigLIP tower as ``vision_tower.embeddings...``, without the
    ``vision_model.`` level that ``google/gemma-3-*`` checkpoints have and that vLLM's
    ``Gemma3ForConditionalGeneration`` loads (it reads no other layout); transformers reads
    both."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(weights)
    renamed: dict[str, Any] = {}
    for name, tensor in tensors.items():
        moved = name.startswith(VISION_PREFIX) and not name.startswith(CHECKPOINT_VISION_PREFIX)
        renamed[CHECKPOINT_VISION_PREFIX + name.removeprefix(VISION_PREFIX) if moved else name] = (
            tensor
        )
    save_file(renamed, weights, metadata={"format": "pt"})


def build_tiny_gemma3(out_dir: Path, spec: TinyGemma3Spec | None = None) -> Path:
    """Write a complete tiny Gemma 3 model folder into ``out_dir`` (created if missing)."""
    import torch
    from transformers import Gemma3ForConditionalGeneration

    spec = spec or TinyGemma3Spec()
    out_dir = Path(out_dir)
    config = write_assets(out_dir, spec)
    torch.manual_seed(spec.seed)
    model = Gemma3ForConditionalGeneration(config).eval()
    n_params = sum(p.numel() for p in model.parameters())
    marker = {"spec": asdict(spec), "parameters": n_params, "digest": spec.digest()}
    save_random_model(model, config, out_dir, spec, marker)
    return out_dir


def tiny_gemma3_dir(cache_dir: Path | None = None, spec: TinyGemma3Spec | None = None) -> Path:
    """Where ``ensure_tiny_gemma3`` keeps the folder of ``spec`` (whether built yet or not)."""
    spec = spec or TinyGemma3Spec()
    return (cache_dir or envs.cache_dir()) / "models" / f"tiny-gemma3-{spec.digest()}"


def ensure_tiny_gemma3(cache_dir: Path | None = None, spec: TinyGemma3Spec | None = None) -> Path:
    """The tiny Gemma 3 folder in the cache, built on first use (``ensure_built``)."""
    spec = spec or TinyGemma3Spec()
    final = tiny_gemma3_dir(cache_dir, spec)
    return qwen25.ensure_built(
        final, lambda folder: build_tiny_gemma3(folder, spec), "tiny Gemma 3"
    )


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    print(build_tiny_gemma3(target) if target else ensure_tiny_gemma3())
