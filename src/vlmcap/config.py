"""Validated run configuration: model, prompt, sampling, engine and stage-2 settings.

One flat model so that every CLI option has the same name in a YAML/TOML config file
(``max_output_tokens: 256``). Validation errors are turned into ``ConfigError`` messages that
name the field, the bad value and what is allowed.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

DEFAULT_STAGE2_PROMPT = (
    "Improve and refine the following description. Keep every fact that the media supports, "
    "remove what it does not, and make it clear and precise:\n"
)


class ConfigError(ValueError):
    """A configuration problem a user can fix; the message says which field and why."""


class VLMConfig(BaseModel):
    """Everything a caption run needs to know besides its inputs."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

    # model
    model: str = Field("qwen2.5-vl", description="Plugin variant name (see `vlmcap models`).")
    model_path: str | None = Field(
        None, description="Local folder or hub id of the weights; default: the plugin's own."
    )
    fp8: bool = Field(False, description="Quantize weights to fp8 at load time (GPU only).")
    tensor_parallel_size: int = Field(1, ge=1, description="Tensor-parallel size.")
    # prompt
    prompt_style: str = Field("default", description="Named prompt of the plugin.")
    prompt_text: str | None = Field(None, description="Custom prompt text; overrides the variant.")
    # sampling
    max_output_tokens: int = Field(512, ge=1, le=131072)
    temperature: float = Field(0.1, ge=0.0, le=5.0)
    top_p: float = Field(0.001, gt=0.0, le=1.0)
    repetition_penalty: float = Field(1.05, gt=0.0, le=5.0)
    seed: int = Field(0, ge=0)
    # engine
    preprocess: bool = Field(True, description="Let the HF processor resize/rescale/normalize.")
    mm_cache: bool = Field(True, description="vLLM's multimodal processor cache.")
    prefix_caching: bool = Field(True, description="vLLM's prefix cache.")
    max_model_len: int | None = Field(None, ge=64)
    gpu_memory_utilization: float | None = Field(
        None, gt=0.0, le=1.0, description="Default: 0.85 on GPU, 0.3 of host memory on CPU."
    )
    enforce_eager: bool = Field(False, description="Skip CUDA graphs / compilation (faster start).")
    engine_args: dict[str, Any] = Field(
        default_factory=dict, description="Extra keyword arguments passed to vllm.LLM as-is."
    )
    # loop
    inflight_batching: bool = Field(True, description="Continuous top-up loop; off: fixed batches.")
    batch_size: int = Field(4, ge=1, description="Requests per LLM.generate call (fixed batches).")
    max_inflight: int = Field(
        256, ge=1, description="Requests kept inside the engine at once (in-flight mode)."
    )
    # stage 2
    stage2: bool = Field(False, description="Refine each caption in a second request.")
    stage2_prompt: str = Field(DEFAULT_STAGE2_PROMPT, min_length=1)

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.prompt_text is not None and not self.prompt_text.strip():
            raise ValueError("prompt_text is empty; leave it unset to use prompt_style")
        return self

    # ---- construction helpers -------------------------------------------------------------

    @classmethod
    def build(cls, **values: Any) -> VLMConfig:
        """Validate ``values`` and raise ``ConfigError`` with readable messages on failure."""
        try:
            return cls(**values)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc)) from None

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> VLMConfig:
        """Load a YAML or TOML file; ``overrides`` (e.g. CLI options) win over file values."""
        values = load_config_file(path)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.build(**values)


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a ``.yaml``/``.yml``/``.toml`` file into a dict, with errors that name the file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p}: not found")
    text = p.read_text(encoding="utf-8")
    try:
        if p.suffix.lower() == ".toml":
            data: Any = tomllib.loads(text)
        elif p.suffix.lower() in {".yaml", ".yml"}:
            data = yaml.safe_load(text)
        else:
            raise ConfigError(f"config file {p}: use a .yaml, .yml or .toml file")
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"config file {p}: cannot parse: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p}: expected a mapping of option names to values")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def format_validation_error(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        field = ".".join(str(part) for part in err["loc"]) or "config"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            known = ", ".join(sorted(VLMConfig.model_fields))
            msg = f"unknown option; known options: {known}"
        elif "input" in err and err["type"] != "missing":
            msg = f"{msg} (got {err['input']!r})"
        lines.append(f"{field}: {msg}")
    return "invalid configuration:\n  " + "\n  ".join(lines)
