"""Config files: ``--config run.yaml`` (or ``.toml``) holding any option of a command.

Keys are option names with ``_`` or ``-``. Keys renamed since earlier releases are still read,
with a warning that names the new key.
"""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import Field

from vlmcap.options.base import ConfigError, OptionGroup, flag

logger = logging.getLogger(__name__)

#: Old config-file key -> its current name.
RENAMED_KEYS = {"prompt_variant": "prompt_style", "num_gpus": "tensor_parallel_size"}
CONFIG_SUFFIXES = (".yaml", ".yml", ".toml")


class ConfigFileOptions(OptionGroup):
    """The config file itself: a flag of every command, never a key in the file."""

    group = "config"
    panel = "Config file"
    in_config_file = False

    config_file: Annotated[Path | None, flag("--config", "-c", metavar="FILE")] = Field(
        default=None,
        description="YAML/TOML file with any of these options (keys: option names with _ or "
        "-); options given here win.",
    )


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a ``.yaml``/``.yml``/``.toml`` file into a dict, with errors that name the file.

    Keys come back with ``_`` (``max-output-tokens`` -> ``max_output_tokens``); renamed keys
    come back under their new name, with a warning.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p}: not found")
    text = p.read_text(encoding="utf-8")
    suffix = p.suffix.lower()
    if suffix not in CONFIG_SUFFIXES:
        raise ConfigError(f"config file {p}: use a .yaml, .yml or .toml file")
    try:
        data: Any = tomllib.loads(text) if suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"config file {p}: cannot parse: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p}: expected a mapping of option names to values")
    values: dict[str, Any] = {}
    for raw_key, value in data.items():
        key = str(raw_key).replace("-", "_")
        new = RENAMED_KEYS.get(key)
        if new is not None:
            if new in values or any(str(k).replace("-", "_") == new for k in data):
                raise ConfigError(f"config file {p}: give {new} only ({key} is its old name)")
            logger.warning("config file %s: %s is now called %s; please rename it", p, key, new)
            key = new
        if key in values:
            raise ConfigError(f"config file {p}: {key} is given twice")
        values[key] = value
    return values
