"""Reasoning formats in model text: the answer kept, the thinking apart, turn tokens dropped."""

from __future__ import annotations

import pytest

from vlmcap.plugins.reasoning import Decoded, split_reasoning, strip_turn_tokens


@pytest.mark.parametrize(
    ("text", "decoded"),
    [
        (
            "<think>\nhmm\n</think>\n\n<answer>\nA ball rolls.\n</answer>",
            Decoded("A ball rolls.", "hmm"),
        ),
        ("<think>long</think> A cup falls.", Decoded("A cup falls.", "long")),
        ("the prompt opened it</think>\n\nA car.", Decoded("A car.", "the prompt opened it")),
        ("<answer>cut off by the token limit", Decoded("cut off by the token limit")),
        ("<think>cut off while thinking", Decoded("", "cut off while thinking")),
        ("  no format at all ", Decoded("no format at all")),
        ("<think></think>Plain.<|im_end|>", Decoded("Plain.")),
    ],
)
def test_split_reasoning(text, decoded):
    assert split_reasoning(text) == decoded


def test_turn_tokens_are_dropped():
    assert strip_turn_tokens("A dog.<end_of_turn>") == "A dog."
    assert strip_turn_tokens(" A cat.<end_of_utterance>\n") == "A cat."
    assert strip_turn_tokens("keeps <b>markup</b><|im_end|>") == "keeps <b>markup</b>"
