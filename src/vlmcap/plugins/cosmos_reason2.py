"""Cosmos-Reason2: NVIDIA's physical-AI reasoning model on Qwen3-VL.

Its reasoning prompt asks for ``<think>...</think>`` followed by the answer (no ``<answer>``
tag, unlike Cosmos-Reason1); ``split_reasoning`` keeps what follows ``</think>`` as the caption
and the thinking as the record's reasoning. The prompt goes at the end of the user turn, as the
model card shows it; ``reasoning_prompt = None`` asks for a plain answer instead.
"""

from __future__ import annotations

from typing import ClassVar

from vlmcap.core.request import ModelRequest
from vlmcap.plugins.cosmos_reason1 import COSMOS_PROMPTS
from vlmcap.plugins.qwen3_vl import Qwen3VLPlugin
from vlmcap.records import Media

#: What Cosmos-Reason2 is asked to add for an answer with its reasoning.
REASON2_PROMPT = (
    "Answer the question using the following format:\n\n<think>\nYour reasoning.\n</think>\n\n"
    "Write your final answer immediately after the </think> tag."
)


class CosmosReason2Plugin(Qwen3VLPlugin):
    variant = "cosmos-reason2"
    model_id = "nvidia/Cosmos-Reason2-8B"
    description = "NVIDIA Cosmos-Reason2-8B (physical-AI reasoning VLM on Qwen3-VL); video first."
    system_prompt: ClassVar[str | None] = "You are a helpful assistant."
    prompts: ClassVar[dict[str, str]] = COSMOS_PROMPTS
    reasoning = True
    #: Appended to every prompt (None: the model answers without reasoning).
    reasoning_prompt: ClassVar[str | None] = REASON2_PROMPT

    def make_request(self, prompt: str, media: Media, *, fps: float | None = None) -> ModelRequest:
        if self.reasoning_prompt is not None:
            prompt = f"{prompt}\n\n{self.reasoning_prompt}"
        return super().make_request(prompt, media, fps=fps)


class CosmosReason2Plugin2B(CosmosReason2Plugin):
    variant = "cosmos-reason2-2b"
    model_id = "nvidia/Cosmos-Reason2-2B"
    description = "NVIDIA Cosmos-Reason2-2B (physical-AI reasoning VLM on Qwen3-VL); video first."
