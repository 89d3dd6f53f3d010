"""The tiny Gemma 3's tokenizer: Gemma's special tokens, byte-fallback BPE pieces with spaces
as ``▁``, the newline runs vLLM's Gemma 3 processor looks up by text, and Gemma 3 instruct's
chat template (``vlmcap.tiny.gemma3`` builds the rest of the model folder)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from vlmcap.tiny import model as qwen25

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

#: Gemma's special tokens in Gemma's order (pad 0, eos 1, bos 2, unk 3, mask 4), then the turn
#: and image tokens (105, 106, 255999, 256000 and 262144 in the real vocabulary).
PAD, EOS, BOS, UNK, MASK = "<pad>", "<eos>", "<bos>", "<unk>", "<mask>"
START_OF_TURN, END_OF_TURN = "<start_of_turn>", "<end_of_turn>"
BOI, EOI, IMAGE_TOKEN = "<start_of_image>", "<end_of_image>", "<image_soft_token>"
SPECIAL_TOKENS = (PAD, EOS, BOS, UNK, MASK, START_OF_TURN, END_OF_TURN, BOI, EOI, IMAGE_TOKEN)
#: Gemma's BPE writes a space as this character, and bytes it has no piece for as ``<0xNN>``.
SPACE_PIECE = "\u2581"
BYTE_COUNT = 256
#: Runs of newlines that Gemma's vocabulary holds as single pieces and vLLM's Gemma 3 processor
#: looks up by text (it re-merges "\n" + "\n\n" around the image sequence).
NEWLINE_PIECES = ("\n", "\n\n", "\n\n\n", "\n\n\n\n")

# Gemma 3 instruct's chat template, rendering exactly what the real one does: ``<bos>`` first;
# a system turn is not a turn of its own but its text plus a blank line opens the first user
# turn; roles must alternate user / assistant; the assistant's role is written "model"; texts
# are trimmed; each image item becomes one ``<start_of_image>``; other items (video) are
# dropped, as the real template drops them.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- if messages[0]['content'] is string -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- else -%}"
    "{%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}"
    "{%- endif -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}"
    "{%- set first_user_prefix = '' -%}"
    "{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{%- endif -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{%- if message['content'] is string -%}"
    "{{ message['content'] | trim }}"
    "{%- elif message['content'] is iterable -%}"
    "{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}"
    "{{ '<start_of_image>' }}"
    "{%- elif item['type'] == 'text' -%}"
    "{{ item['text'] | trim }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- else -%}"
    "{{ raise_exception('Invalid content type') }}"
    "{%- endif -%}"
    "{{ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{ '<start_of_turn>model\n' }}"
    "{%- endif -%}"
)

# Runs of one to four newlines between words: the BPE learns each run as one piece.
_NEWLINE_RUNS = "a" + "".join(
    f"{run}{word}" for run, word in zip(NEWLINE_PIECES, "bcde", strict=True)
)
# Sentences the BPE is trained on beside the Qwen2.5-VL builder's: the role names, the words
# of pan-and-scan prompts and the newline runs the prompts hold.
_CORPUS_EXTRA = (
    "user\nmodel\nuser\nmodel\n",
    "Here is the original image and here are some crops to help you see better",
    "What is different between the two pictures? Be brief.\n\nDescribe.",
    *(_NEWLINE_RUNS,) * 8,
)
#: Copies of the corpus the BPE trainer sees (more weight for rare pairs, same merges).
_CORPUS_REPEATS = 4


def corpus() -> list[str]:
    """Sentences the BPE is trained on: the Qwen2.5-VL builder's plus Gemma's turn words and
    newline runs."""
    return [*qwen25._corpus(), *_CORPUS_EXTRA]


def byte_piece(value: int) -> str:
    """Gemma's byte-fallback piece of one byte, e.g. ``<0x0A>``."""
    return f"<0x{value:02X}>"


def train_pieces(vocab_target: int) -> tuple[list[str], list[tuple[str, str]]]:
    """Train a BPE of ``vocab_target`` pieces on ``corpus()`` the way Gemma's pieces look
    (spaces as ``▁`` at the start of a word, newline runs on their own) and return its pieces
    in id order and its merges.

    The pre-tokenizer only shapes training: Gemma's tokenizer applies the merges to whole
    texts, and since no merge crosses a word start or joins a newline to a letter, that gives
    the same pieces."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Replace(" ", SPACE_PIECE)
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex("\n+"), behavior="isolated"),
            pre_tokenizers.Split(SPACE_PIECE, behavior="merged_with_next"),
        ]
    )
    trainer = trainers.BpeTrainer(vocab_size=vocab_target, show_progress=False)
    tok.train_from_iterator(corpus() * _CORPUS_REPEATS, trainer=trainer)
    trained = json.loads(tok.to_str())["model"]
    pieces = sorted(trained["vocab"], key=trained["vocab"].__getitem__)
    merges = [cast("tuple[str, str]", tuple(m)) for m in trained["merges"]]
    missing = [p for p in NEWLINE_PIECES if p not in trained["vocab"]]
    if missing:
        raise RuntimeError(f"the BPE did not learn the newline pieces {missing!r}")
    return pieces, merges


def build_tokenizer(
    out_dir: Path, *, vocab_target: int, max_length: int
) -> PreTrainedTokenizerBase:
    """A ``GemmaTokenizer`` over Gemma's special tokens, the 256 byte pieces and the trained
    pieces, with Gemma 3's chat template and named image tokens, ``max_length`` tokens long at
    most; saved in ``out_dir``.

    It is built through ``GemmaTokenizer`` itself because transformers rebuilds that class's
    pipeline (normaliser, decoder, byte fallback) from the vocabulary when it loads it."""
    from tokenizers import AddedToken
    from transformers import GemmaTokenizer

    pieces, merges = train_pieces(vocab_target)
    ordered = [*SPECIAL_TOKENS, *(byte_piece(b) for b in range(BYTE_COUNT)), *pieces]
    vocab: dict[str, int] = {}
    for piece in ordered:
        vocab.setdefault(piece, len(vocab))
    tokenizer = GemmaTokenizer(
        vocab=vocab,
        merges=cast(Any, merges),  # pairs, as tokenizers' BPE takes them; annotated as str
        unk_token=UNK,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        mask_token=MASK,
        add_bos_token=True,
        add_eos_token=False,
        extra_special_tokens={"boi_token": BOI, "eoi_token": EOI, "image_token": IMAGE_TOKEN},
        spaces_between_special_tokens=False,
        model_max_length=max_length,
    )
    turn_tokens = [AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS]
    tokenizer.add_tokens(turn_tokens, special_tokens=True)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(out_dir)
    return cast("PreTrainedTokenizerBase", tokenizer)
