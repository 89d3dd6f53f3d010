"""Build a tiny SmolVLM2 (real architecture, real tokenizer and processor, random weights).

The folder it writes is a complete Hugging Face model directory that vLLM and transformers load
like the real ``HuggingFaceTB/SmolVLM2-2.2B-Instruct`` (model type ``smolvlm``, architecture
``SmolVLMForConditionalGeneration``): ``config.json`` (``SmolVLMConfig``: a SigLIP-style vision
tower, a pixel-shuffle connector and a Llama text model), safetensors weights, a byte-level BPE
tokenizer with SmolVLM's special tokens (``<image>``, ``<fake_token_around_image>``,
``<global-img>``, ``<row_R_col_C>``, ``<end_of_utterance>``) and SmolVLM2's own chat template, and
the configs of ``SmolVLMProcessor`` with its image and video processors. Under a million
parameters; built in a few seconds on a CPU.

How SmolVLM sees a picture: its longest side is resized to ``tiles_per_side`` tiles (the
other side keeping the aspect ratio), both sides are rounded up to whole tiles, and the picture
is cut into those square tiles plus one "global" copy of the whole picture shrunk to one tile.
Every tile goes through the vision tower on its own; the connector merges ``scale_factor`` x
``scale_factor`` patches into one language token, so each tile costs
``(tile_side / PATCH_SIZE / SCALE_FACTOR) ** 2`` ``<image>`` tokens. Small pictures are scaled
up too, so every picture is split (the global copy alone is sent only with
``do_image_splitting=False``). Video frames are each shrunk to one tile, without splitting.

The first SmolVLM checkpoints (``SmolVLM-256M-Instruct`` and the like) are model type
``idefics3``; this builder follows SmolVLM2, whose checkpoints are ``smolvlm``.

    python -m vlmcap.tiny.smolvlm [OUT_DIR]   # no OUT_DIR: build into the vlmcap cache
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
    from transformers import PreTrainedTokenizerBase, SmolVLMConfig

logger = logging.getLogger(__name__)

#: The small SmolVLM2 checkpoints' vision geometry (256M / 500M: 16-pixel patches, 4 x 4
#: patches merged into one token; the 2.2B uses 14-pixel patches merged 3 x 3).
PATCH_SIZE = 16
SCALE_FACTOR = 4
#: SmolVLM2 resizes the longest side of a picture to four tiles (2048 px for 512-px tiles).
TILES_PER_SIDE = 4
#: SmolVLM normalises pixels to [-1, 1] (mean and std 0.5).
IMAGE_MEAN = (0.5, 0.5, 0.5)
IMAGE_STD = (0.5, 0.5, 0.5)
#: ``PILImageResampling.LANCZOS``, the real ``preprocessor_config.json``'s ``resample``.
RESAMPLE_LANCZOS = 1
#: SmolVLM2's video sampling: one frame a second, at most 64 frames.
VIDEO_FPS = 1
#: RoPE base of SmolLM2, the text model of the small SmolVLM2 checkpoints.
ROPE_THETA = 100_000.0
RMS_NORM_EPS = 1e-5
#: The real vocabulary holds ``<row_R_col_C>`` tokens for grids of up to 6 x 6 tiles.
GRID_TOKEN_SIDE = 6

#: SmolLM2's own special tokens, first in the vocabulary (ids 0, 1, 2 as in the real one).
BASE_SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
FAKE_IMAGE_TOKEN = "<fake_token_around_image>"
IMAGE_TOKEN = "<image>"
GLOBAL_IMAGE_TOKEN = "<global-img>"
END_OF_UTTERANCE = "<end_of_utterance>"
#: Bumped when the folder's contents change for the same spec (new cache folder).
BUILD_VERSION = "smolvlm2-v1"
#: The marker file written last: a folder holding it is complete.
MARKER_FILE = qwen25.MARKER_FILE

# SmolVLM2 Instruct's chat template, verbatim: a single ``<|im_start|>`` opens the whole
# conversation, each turn is "Role:" (no space before a leading image, one space otherwise),
# an image item is ``<image>``, a video item ``<video>``, each turn ends with
# ``<end_of_utterance>\n`` and the generation prompt is "Assistant:". Content must be a list
# of items (a plain string renders as nothing, as with the real template).
CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}"
    "{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}"
    "{% elif line['type'] == 'video' %}{{ '<video>' }}"
    "{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

# Words of SmolVLM's prompts and of the processor's video text, so that they are tokens.
_CORPUS_EXTRA = (
    "User: Assistant: System: User:",
    "You are provided the following series of eight frames from a 0:00:08 [H:MM:SS] video.",
    "Frame from 00:00: Frame from 00:01: Frame from 00:02: Frame from 00:03:",
    "You are a helpful language and vision assistant.",
    "What is in this image? What happens in this video?",
)


@dataclass(frozen=True)
class TinySmolVLMSpec:
    """Sizes of the tiny SmolVLM2; the defaults keep it under a million parameters and a
    picture under 70 ``<image>`` tokens."""

    text_hidden: int = 128
    text_layers: int = 2
    text_heads: int = 4
    text_kv_heads: int = 2
    text_intermediate: int = 256
    vision_layers: int = 2
    vision_hidden: int = 64
    vision_heads: int = 2
    vision_intermediate: int = 128
    #: Side of one square tile in pixels, the vision tower's ``image_size`` (512 in the real
    #: 256M). 128 px of 16-px patches merged 4 x 4 make 4 ``<image>`` tokens a tile.
    tile_side: int = 128
    #: Frames the processor samples from a clip at most (transformers' path; real: 64).
    video_max_frames: int = 8
    vocab_target: int = 512
    max_position_embeddings: int = 4096
    init_std: float = 0.3  # wide init so greedy decoding is not one repeated token
    seed: int = 0

    def __post_init__(self) -> None:
        if self.tile_side % PATCH_SIZE:
            raise ValueError("tile_side must be a whole number of patches")
        if (self.tile_side // PATCH_SIZE) % SCALE_FACTOR:
            raise ValueError("a tile's patch grid must be a multiple of the scale factor")
        if self.text_hidden % self.text_heads or self.text_heads % self.text_kv_heads:
            raise ValueError("text heads must divide the width and be a multiple of KV heads")

    @property
    def image_seq_len(self) -> int:
        """``<image>`` tokens of one tile (the processor's ``image_seq_len``)."""
        return (self.tile_side // PATCH_SIZE // SCALE_FACTOR) ** 2

    def digest(self) -> str:
        """A short hash of everything that decides the folder's contents."""
        payload = json.dumps(asdict(self), sort_keys=True) + CHAT_TEMPLATE + BUILD_VERSION
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


def grid_tokens() -> list[str]:
    """The ``<row_R_col_C>`` tokens that mark each tile's place, row by row."""
    sides = range(1, GRID_TOKEN_SIDE + 1)
    return [f"<row_{row}_col_{col}>" for row in sides for col in sides]


def vision_special_tokens() -> list[str]:
    """SmolVLM's tokens added to SmolLM2's vocabulary, in the real vocabulary's order."""
    return [GLOBAL_IMAGE_TOKEN, *grid_tokens(), FAKE_IMAGE_TOKEN, IMAGE_TOKEN, END_OF_UTTERANCE]


def corpus() -> list[str]:
    """Sentences the BPE is trained on: the Qwen2.5-VL builder's plus SmolVLM's prompt words."""
    return [*qwen25._corpus(), *_CORPUS_EXTRA]


def build_tokenizer(out_dir: Path, spec: TinySmolVLMSpec) -> PreTrainedTokenizerBase:
    """Train a byte-level BPE with SmolLM2's special tokens, add SmolVLM's, save it with the
    chat template in ``out_dir`` and return it."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_target,
        special_tokens=list(BASE_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    repeats = 4  # repeated lines give their words enough counts to be merged
    tok.train_from_iterator(corpus() * repeats, trainer=trainer)
    tok.add_special_tokens([AddedToken(t, special=True) for t in vision_special_tokens()])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token=END_OF_UTTERANCE,
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
        additional_special_tokens=vision_special_tokens(),
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.model_max_length = spec.max_position_embeddings
    fast.save_pretrained(out_dir)
    return cast("PreTrainedTokenizerBase", fast)


def build_config(tokenizer: PreTrainedTokenizerBase, spec: TinySmolVLMSpec) -> SmolVLMConfig:
    """The ``SmolVLMConfig`` of a tiny model whose special-token ids are ``tokenizer``'s."""
    from transformers import SmolVLMConfig

    def token_id(token: str) -> int:
        return cast(int, tokenizer.convert_tokens_to_ids(token))

    pad_id = token_id("<|im_end|>")
    config = SmolVLMConfig(
        text_config={
            "model_type": "llama",
            "vocab_size": len(tokenizer),
            "hidden_size": spec.text_hidden,
            "intermediate_size": spec.text_intermediate,
            "num_hidden_layers": spec.text_layers,
            "num_attention_heads": spec.text_heads,
            "num_key_value_heads": spec.text_kv_heads,
            "head_dim": spec.text_hidden // spec.text_heads,
            "max_position_embeddings": spec.max_position_embeddings,
            "rope_parameters": {"rope_type": "default", "rope_theta": ROPE_THETA},
            "rms_norm_eps": RMS_NORM_EPS,
            "initializer_range": spec.init_std,
            "tie_word_embeddings": False,
            "bos_token_id": token_id("<|im_start|>"),
            "eos_token_id": token_id(END_OF_UTTERANCE),
            "pad_token_id": pad_id,
        },
        vision_config={
            "hidden_size": spec.vision_hidden,
            "intermediate_size": spec.vision_intermediate,
            "num_hidden_layers": spec.vision_layers,
            "num_attention_heads": spec.vision_heads,
            "image_size": spec.tile_side,
            "patch_size": PATCH_SIZE,
            "initializer_range": spec.init_std,
        },
        scale_factor=SCALE_FACTOR,
        image_token_id=token_id(IMAGE_TOKEN),
        pad_token_id=pad_id,
        tie_word_embeddings=False,
    )
    config.architectures = ["SmolVLMForConditionalGeneration"]
    return config


def write_assets(out_dir: Path, spec: TinySmolVLMSpec) -> SmolVLMConfig:
    """Everything of a model folder but the weights: tokenizer and processor configs. Returns
    the model config (the model's ``save_pretrained`` writes it)."""
    from transformers import SmolVLMImageProcessor, SmolVLMProcessor, SmolVLMVideoProcessor

    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(out_dir, spec)
    config = build_config(tokenizer, spec)
    tile = {"longest_edge": spec.tile_side}
    common: dict[str, Any] = {
        "image_mean": list(IMAGE_MEAN),
        "image_std": list(IMAGE_STD),
        "resample": RESAMPLE_LANCZOS,
        "max_image_size": tile,
    }
    image_processor = SmolVLMImageProcessor(
        size={"longest_edge": TILES_PER_SIDE * spec.tile_side},
        do_image_splitting=True,
        **common,
    )
    video_processor = SmolVLMVideoProcessor(
        size=tile,
        video_sampling={"fps": VIDEO_FPS, "max_frames": spec.video_max_frames, "video_size": tile},
        **common,
    )
    processor = SmolVLMProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        image_seq_len=spec.image_seq_len,
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(out_dir)
    return config


def build_tiny_smolvlm(out_dir: Path, spec: TinySmolVLMSpec | None = None) -> Path:
    """Write a complete tiny SmolVLM2 model folder into ``out_dir`` (created if missing)."""
    import torch
    from transformers import SmolVLMForConditionalGeneration

    spec = spec or TinySmolVLMSpec()
    out_dir = Path(out_dir)
    config = write_assets(out_dir, spec)
    torch.manual_seed(spec.seed)
    model = SmolVLMForConditionalGeneration(config).eval()
    n_params = sum(p.numel() for p in model.parameters())
    marker = {"spec": asdict(spec), "parameters": n_params, "digest": spec.digest()}
    # generation_config reads ``text_config``'s start, end and padding ids, which are set.
    qwen25.save_random_model(model, config, out_dir, spec.init_std, marker)
    return out_dir


def tiny_smolvlm_dir(cache_dir: Path | None = None, spec: TinySmolVLMSpec | None = None) -> Path:
    """Where ``ensure_tiny_smolvlm`` keeps the folder of ``spec`` (whether built yet or not)."""
    spec = spec or TinySmolVLMSpec()
    return (cache_dir or envs.cache_dir()) / "models" / f"tiny-smolvlm-{spec.digest()}"


def ensure_tiny_smolvlm(cache_dir: Path | None = None, spec: TinySmolVLMSpec | None = None) -> Path:
    """The tiny SmolVLM2 folder in the cache, built on first use (``ensure_built``)."""
    spec = spec or TinySmolVLMSpec()
    final = tiny_smolvlm_dir(cache_dir, spec)
    return qwen25.ensure_built(
        final, lambda folder: build_tiny_smolvlm(folder, spec), "tiny SmolVLM2"
    )


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    print(build_tiny_smolvlm(target) if target else ensure_tiny_smolvlm())
