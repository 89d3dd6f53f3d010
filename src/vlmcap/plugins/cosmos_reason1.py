"""Cosmos-Reason1: Qwen2.5-VL architecture, a reasoning system prompt; the answer is the
``<answer>`` part, the ``<think>`` part is kept in the record as its reasoning."""

from __future__ import annotations

from typing import ClassVar

from vlmcap.plugins.qwen2_5_vl import Qwen25VLPlugin
from vlmcap.prompts import STYLES

#: The reasoning format Cosmos-Reason1 was trained to answer in.
REASON1_SYSTEM_PROMPT = (
    "You are a helpful assistant. Answer the question in the following format: "
    "<think>\nyour reasoning\n</think>\n\n<answer>\nyour answer\n</answer>."
)
#: Cosmos-Reason's prompts for video (the physical-AI questions it was trained on).
COSMOS_PROMPTS: dict[str, str] = {
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


class CosmosReason1Plugin(Qwen25VLPlugin):
    variant = "cosmos-reason1"
    model_id = "nvidia/Cosmos-Reason1-7B"
    description = "NVIDIA Cosmos-Reason1 (physical-AI reasoning VLM on Qwen2.5-VL); video first."
    system_prompt: ClassVar[str | None] = REASON1_SYSTEM_PROMPT
    reasoning = True
    prompts: ClassVar[dict[str, str]] = COSMOS_PROMPTS
