"""The option groups that ``VLMConfig`` is made of: model, prompt, sampling, engine, loop, stage 2.

``VLMConfig`` (``vlmcap.config``) inherits all of them, so the engine, the plugins and the loop
receive one flat object while every option is declared here once. ``EngineOptions`` and
``LoopOptions`` are engine-side: a caption run through a server ignores them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Self

import yaml
from pydantic import Field, model_validator

from vlmcap.options.base import ConfigError, OptionGroup, flag
from vlmcap.prompts import STYLES

#: Engine deaths an offline run survives by default (``--engine-restarts``,
#: ``vlmcap.core.recovery``).
DEFAULT_ENGINE_RESTARTS = 3

DEFAULT_MODEL = "qwen2.5-vl"
DEFAULT_PROMPT_STYLE = "default"
DEFAULT_STAGE2_PROMPT = (
    "Improve and refine the following description. Keep every fact that the media supports, "
    "remove what it does not, and make it clear and precise:\n"
)
#: Memory fractions vLLM may reserve when ``gpu_memory_utilization`` is unset.
GPU_MEMORY_UTILIZATION = 0.85
CPU_MEMORY_UTILIZATION = 0.3
#: Smallest context length worth starting an engine for.
MIN_MODEL_LEN = 64
MAX_OUTPUT_TOKENS_LIMIT = 131072
#: Upper bound of temperature and repetition penalty: beyond it the output is noise.
MAX_SAMPLING_FACTOR = 5.0
#: Most threads that may build engine requests (``--prepare-threads``).
MAX_PREPARE_THREADS = 64

_STYLE_NAMES = ", ".join([DEFAULT_PROMPT_STYLE, *(s for s in STYLES if s != DEFAULT_PROMPT_STYLE)])


def parse_key_values(pairs: list[str]) -> dict[str, Any]:
    """``["max_num_seqs=64", "kv_cache_dtype=fp8"]`` -> a dict; values read as YAML scalars
    (numbers, booleans, ``{...}`` mappings), so ``--engine-arg`` matches a config file."""
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--engine-arg wants KEY=VALUE (got {pair!r})")
        try:
            values[key.strip().replace("-", "_")] = yaml.safe_load(text) if text else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"--engine-arg {pair!r}: cannot read the value ({exc})") from None
    return values


class ModelOptions(OptionGroup):
    group = "model"
    panel = "Model"

    model: Annotated[str, flag("--model", "-m")] = Field(
        default=DEFAULT_MODEL, description="Model variant (plugin name; see `vlmcap models`)."
    )


class PromptOptions(OptionGroup):
    group = "prompt"
    panel = "Prompt"

    prompt_style: Annotated[str, flag("--prompt-style", "--prompt")] = Field(
        default=DEFAULT_PROMPT_STYLE,
        description=f"Named prompt: {_STYLE_NAMES}, or one of the model's own.",
    )
    prompt_text: str | None = Field(
        default=None, description="Custom prompt text; overrides the prompt style."
    )

    @model_validator(mode="after")
    def _check_prompt_text(self) -> Self:
        if self.prompt_text is not None and not self.prompt_text.strip():
            raise ValueError("prompt_text is empty; leave it unset to use prompt_style")
        return self


class PromptFileOptions(OptionGroup):
    """Where a custom prompt is read from; the command turns it into ``prompt_text``."""

    group = "prompt_file"
    panel = "Prompt"

    prompt_file: Path | None = Field(
        default=None, description="Read the custom prompt text from this UTF-8 file."
    )


class SamplingOptions(OptionGroup):
    group = "sampling"
    panel = "Sampling"

    max_output_tokens: int = Field(
        default=512, ge=1, le=MAX_OUTPUT_TOKENS_LIMIT, description="Token limit per caption."
    )
    temperature: float = Field(
        default=0.1, ge=0.0, le=MAX_SAMPLING_FACTOR, description="Sampling temperature."
    )
    top_p: float = Field(default=0.001, gt=0.0, le=1.0, description="Nucleus sampling threshold.")
    repetition_penalty: float = Field(
        default=1.05, gt=0.0, le=MAX_SAMPLING_FACTOR, description="Penalty on repeated tokens."
    )
    seed: int = Field(default=0, ge=0, description="Sampling seed.")


class EngineOptions(OptionGroup):
    """Everything ``vllm.LLM`` (or ``vlmcap serve``'s server) is started with."""

    group = "engine"
    panel = "Engine"
    engine_side = True

    model_path: Annotated[str | None, flag(default_text="the plugin's weights")] = Field(
        default=None,
        description="Local weights folder or hub id; default: $VLMCAP_MODEL_DIR/<model id>, "
        "else the plugin's hub id.",
    )
    fp8: bool = Field(default=False, description="Quantize weights to fp8 at load time (GPU only).")
    tensor_parallel_size: Annotated[int, flag("--tensor-parallel-size", "--tp")] = Field(
        default=1, ge=1, description="Tensor-parallel size (GPUs)."
    )
    preprocess: bool = Field(
        default=True,
        description="Let the HF processor resize/rescale/normalize frames; off: frames "
        "must already fit.",
    )
    mm_cache: bool = Field(default=True, description="vLLM's multimodal processor cache.")
    prefix_caching: bool = Field(default=True, description="vLLM's prefix cache.")
    max_model_len: Annotated[int | None, flag(default_text="the plugin's")] = Field(
        default=None, ge=MIN_MODEL_LEN, description="Context length."
    )
    gpu_memory_utilization: Annotated[
        float | None,
        flag(
            default_text=f"{GPU_MEMORY_UTILIZATION} on GPU, {CPU_MEMORY_UTILIZATION} of RAM on CPU"
        ),
    ] = Field(default=None, gt=0.0, le=1.0, description="Memory fraction vLLM may use.")
    enforce_eager: bool = Field(
        default=False, description="Skip CUDA graphs and compilation (faster start)."
    )
    engine_args: Annotated[
        dict[str, Any],
        flag("--engine-arg", metavar="KEY=VALUE", parse=parse_key_values, cli_type=list[str]),
    ] = Field(
        default_factory=dict,
        description="Extra vllm.LLM keyword argument, passed as-is (repeatable).",
    )


class LoopOptions(OptionGroup):
    """How the offline engine is fed; engine-side, so ignored with a server."""

    group = "loop"
    panel = "Engine loop"
    engine_side = True

    inflight_batching: Annotated[bool, flag("--inflight", off="--fixed-batches")] = Field(
        default=True, description="Continuous top-up loop; --fixed-batches: LLM.generate batches."
    )
    batch_size: int = Field(
        default=4, ge=1, description="Requests per LLM.generate call (fixed batches)."
    )
    max_inflight: int = Field(
        default=256, ge=1, description="Requests kept inside the engine at once (in-flight loop)."
    )
    prepare_threads: Annotated[int | None, flag(default_text="auto")] = Field(
        default=None,
        ge=0,
        le=MAX_PREPARE_THREADS,
        description="Threads that build requests while the engine runs (chat template, the "
        "model's processor); 0: on the loop's own thread; auto: a quarter of the CPU cores, "
        "1-8 (1 with the multimodal cache on).",
    )
    engine_restarts: int = Field(
        default=DEFAULT_ENGINE_RESTARTS,
        ge=0,
        description="Engine deaths the in-flight loop survives: the engine is restarted and the "
        "requests inside are retried one at a time (an item that kills it again fails alone); "
        "0: stop at the first.",
    )


class Stage2Options(OptionGroup):
    group = "stage2"
    panel = "Stage 2"

    stage2: bool = Field(default=False, description="Refine each caption in a second request.")
    stage2_prompt: Annotated[str, flag(default_text="the built-in stage-2 prompt")] = Field(
        default=DEFAULT_STAGE2_PROMPT,
        min_length=1,
        description="Stage-2 prompt; the stage-1 caption is appended to it.",
    )
