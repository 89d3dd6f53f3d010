"""Merging config-file values with command-line options into one validated config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vlmcap.config import VLMConfig, load_config_file


def build_config(config_file: Path | None, options: dict[str, Any]) -> VLMConfig:
    """File values first, then every option the user actually gave (``None`` = not given).

    Raises ``ConfigError`` with a message that names the bad field.
    """
    values: dict[str, Any] = load_config_file(config_file) if config_file is not None else {}
    values.update({k: v for k, v in options.items() if v is not None})
    return VLMConfig.build(**values)
