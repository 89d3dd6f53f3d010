"""Sampling parameters from the config, with per-item overrides."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vllm import SamplingParams

    from vlmcap.config import VLMConfig


def sampling_params(config: VLMConfig, max_tokens: int | None = None) -> SamplingParams:
    """vLLM sampling parameters of a run; ``max_tokens`` overrides the config's limit."""
    from vllm import SamplingParams

    return SamplingParams(
        temperature=config.temperature,
        top_p=config.top_p,
        repetition_penalty=config.repetition_penalty,
        max_tokens=max_tokens or config.max_output_tokens,
        seed=config.seed,
    )
