"""Cosmos-Reason1: Qwen2.5-VL architecture, a reasoning system prompt and answer extraction."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, ClassVar

from vlmcap.plugins.qwen2_5_vl import Qwen25VLPlugin
from vlmcap.prompts import STYLES

if TYPE_CHECKING:
    from vlmcap.core.request import Completion

_ANSWER = re.compile(r"<answer>\s*(.*?)\s*(?:</answer>|$)", re.DOTALL)
_THINK_END = "</think>"


def strip_reasoning(text: str) -> str:
    """The answer part of ``<think>...</think><answer>...</answer>`` text.

    Falls back to what follows ``</think>``, then to the whole text, so a model that skips the
    format still yields its caption.
    """
    match = _ANSWER.search(text)
    if match:
        return match.group(1).strip()
    if _THINK_END in text:
        return text.split(_THINK_END, 1)[1].strip()
    return text.strip()


class CosmosReason1Plugin(Qwen25VLPlugin):
    variant = "cosmos-reason1"
    model_id = "nvidia/Cosmos-Reason1-7B"
    description = "NVIDIA Cosmos-Reason1 (physical-AI reasoning VLM on Qwen2.5-VL); video first."
    system_prompt: ClassVar[str | None] = (
        "You are a helpful assistant. Answer the question in the following format: "
        "<think>\nyour reasoning\n</think>\n\n<answer>\nyour answer\n</answer>."
    )
    prompts: ClassVar[dict[str, str]] = {
        **STYLES,
        "default": (
            "Describe the video in detail: the objects and people, how they move, how they "
            "interact, the camera motion, and the physical events that happen."
        ),
        "short": "Summarize what happens in this video in one sentence.",
        "physics": (
            "Describe the physical interactions in this video: contacts, forces, causes and "
            "effects, and whether anything looks physically implausible."
        ),
    }

    def decode(self, completion: Completion) -> str:
        return strip_reasoning(completion.text)
