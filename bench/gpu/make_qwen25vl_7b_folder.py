"""Write a Qwen2.5-VL-7B-shaped model folder (config, tokenizer, processor) for vLLM's dummy
weights (``load_format="dummy"``): published config values, a byte-level tokenizer whose
special-token ids match the real ones, a processor config and a chat template; 4.6 MB.

    python bench/gpu/make_qwen25vl_7b_folder.py DIR
"""

import json
import os
import sys

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast, Qwen2_5_VLConfig

WORDS = [
    "a", "the", "video", "image", "describe", "this", "in", "detail",
    "user", "assistant", "system", "red", "car", "road",
]  # fmt: skip
SPECIAL = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
]  # fmt: skip
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for c in message['content'] %}{% if c['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif c['type'] == 'video' %}"
    "<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in c %}{{ c['text'] }}"
    "{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def write_json(path: str, data: dict) -> None:
    with open(path, "w") as f:
        json.dump(data, f)


def main(out: str) -> None:
    os.makedirs(out, exist_ok=True)
    vocab = {c: i for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    for w in WORDS:
        for t in (w, "Ġ" + w):
            if t not in vocab:
                vocab[t] = len(vocab)
    i = 0
    while len(vocab) < 151643:
        vocab[f"<filler_{i}>"] = len(vocab)
        i += 1
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIAL)
    ids = {t: tok.token_to_id(t) for t in SPECIAL}
    assert ids["<|image_pad|>"] == 151655 and ids["<|video_pad|>"] == 151656, ids
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    hf.chat_template = CHAT_TEMPLATE
    hf.save_pretrained(out)
    cfg = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": 152064,
            "hidden_size": 3584,
            "intermediate_size": 18944,
            "num_hidden_layers": 28,
            "num_attention_heads": 28,
            "num_key_value_heads": 4,
            "max_position_embeddings": 128000,
            "rope_theta": 1000000.0,
            "rms_norm_eps": 1e-6,
            "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
            "tie_word_embeddings": False,
            "torch_dtype": "bfloat16",
            "bos_token_id": 151643,
            "eos_token_id": 151645,
        },
        vision_config={
            "depth": 32,
            "hidden_size": 1280,
            "intermediate_size": 3420,
            "num_heads": 16,
            "out_hidden_size": 3584,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 112,
            "fullatt_block_indexes": [7, 15, 23, 31],
            "in_chans": 3,
            "hidden_act": "silu",
        },
        image_token_id=151655,
        video_token_id=151656,
        vision_start_token_id=151652,
        vision_end_token_id=151653,
        bos_token_id=151643,
        eos_token_id=151645,
        tie_word_embeddings=False,
        torch_dtype="bfloat16",
    )
    cfg.architectures = ["Qwen2_5_VLForConditionalGeneration"]  # else vLLM sees no generator
    cfg.save_pretrained(out)
    write_json(
        f"{out}/preprocessor_config.json",
        {
            "min_pixels": 3136,
            "max_pixels": 12845056,
            "patch_size": 14,
            "temporal_patch_size": 2,
            "merge_size": 2,
            "image_mean": [0.48145466, 0.4578275, 0.40821073],
            "image_std": [0.26862954, 0.26130258, 0.27577711],
            "image_processor_type": "Qwen2VLImageProcessor",
            "processor_class": "Qwen2_5_VLProcessor",
        },
    )
    write_json(f"{out}/chat_template.json", {"chat_template": hf.chat_template})
    write_json(
        f"{out}/generation_config.json",
        {"bos_token_id": 151643, "eos_token_id": 151645, "pad_token_id": 151643},
    )
    print("made", out)


if __name__ == "__main__":
    main(sys.argv[1])
