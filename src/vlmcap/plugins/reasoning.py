"""Reasoning formats in model output: the answer a task keeps, the reasoning kept apart.

Reasoning models (Cosmos-Reason1 and 2, thinking variants of Qwen3-VL and others) write
``<think>reasoning</think>`` and often ``<answer>answer</answer>``. ``split_reasoning`` reads
both forms, a reasoning cut short by the token limit, and text without either, so a model that
skips the format still yields its caption. Special tokens a server or tokenizer left in the
text (``<|im_end|>``, ``<end_of_turn>``...) are dropped from the answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ANSWER = re.compile(r"<answer>\s*(.*?)\s*(?:</answer>|$)", re.DOTALL)
_THINK = re.compile(r"<think>\s*(.*?)\s*(?:</think>|$)", re.DOTALL)
THINK_END = "</think>"
#: Chat-format tokens that mark the end of a turn in the families vlmcap ships.
_TURN_TOKENS = re.compile(
    r"<\|im_end\|>|<\|endoftext\|>|<\|end\|>|<end_of_turn>|<end_of_utterance>|<eos>"
)


@dataclass(frozen=True)
class Decoded:
    """What a task keeps from one completion: the text, and the reasoning (when the model
    wrote one) kept apart."""

    text: str
    reasoning: str | None = None


def strip_turn_tokens(text: str) -> str:
    """``text`` without end-of-turn tokens left in it, stripped."""
    return _TURN_TOKENS.sub("", text).strip()


def split_reasoning(text: str) -> Decoded:
    """The answer and the reasoning of ``<think>...</think><answer>...</answer>`` text.

    The answer is the ``<answer>`` part, else what follows ``</think>``, else (no tags) the
    whole text; an unclosed ``<think>`` is a reasoning cut short, with no answer.
    """
    text = strip_turn_tokens(text)
    think = _THINK.search(text)
    reasoning = think.group(1).strip() or None if think else None
    answer = _ANSWER.search(text)
    if answer:
        return Decoded(answer.group(1).strip(), reasoning)
    if THINK_END in text:
        before, after = text.split(THINK_END, 1)
        if reasoning is None:  # the prompt opened the block: everything before is reasoning
            reasoning = before.replace("<think>", "").strip() or None
        return Decoded(after.strip(), reasoning)
    if think:  # never closed: the token limit cut the reasoning
        return Decoded(text[: think.start()].strip(), reasoning)
    return Decoded(text)
