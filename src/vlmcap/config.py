"""Validated run configuration: model, prompt, sampling, engine, loop and stage-2 settings.

``VLMConfig`` is the one flat object the engine, the plugins and the loop receive. Its fields
are declared once, in the option groups of ``vlmcap.options.vlm`` and the debugging switches of
``vlmcap.options.debug`` (with their flags, defaults,
rules and help); this module puts them together. Validation errors become ``ConfigError``
messages that name the field, the bad value and what is allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ConfigDict

from vlmcap.options.base import ConfigError, format_validation_error
from vlmcap.options.debug import DebugOptions, EngineDebugOptions, ProfileOptions
from vlmcap.options.files import load_config_file
from vlmcap.options.vlm import (
    DEFAULT_STAGE2_PROMPT,
    EngineOptions,
    LoopOptions,
    ModelOptions,
    PromptOptions,
    SamplingOptions,
    Stage2Options,
)

__all__ = [
    "DEFAULT_STAGE2_PROMPT",
    "ConfigError",
    "VLMConfig",
    "format_validation_error",
    "load_config_file",
]


# Bases in reverse: pydantic orders fields from the last base to the first.
class VLMConfig(
    DebugOptions,
    ProfileOptions,
    EngineDebugOptions,
    Stage2Options,
    LoopOptions,
    EngineOptions,
    SamplingOptions,
    PromptOptions,
    ModelOptions,
):
    """Everything a caption run needs to know besides its inputs (mutable: a server may name
    the model, see ``vlmcap.client.connect``)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> VLMConfig:
        """Load a YAML or TOML file of ``VLMConfig`` keys; ``overrides`` (e.g. CLI options)
        win over file values. (``vlmcap.options.CAPTION.resolve`` reads a whole command's.)"""
        values = load_config_file(path)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.build(**values)
