"""Every environment variable vlmcap reads, in one place, each with its default and meaning.

Values are read lazily (at attribute access) so tests and the CLI can set them at any time.
``vlmcap doctor`` and the README list them from ``ENV_VARS``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class EnvVar:
    name: str
    default: str
    doc: str

    def get(self) -> str:
        return os.environ.get(self.name, self.default)


ENV_VARS: dict[str, EnvVar] = {
    v.name: v
    for v in (
        EnvVar(
            "VLMCAP_MODEL_DIR",
            "",
            "Folder holding model weights as <model_dir>/<org>/<name>; when unset, plugins use "
            "the Hugging Face id (vLLM resolves it through its own cache).",
        ),
        EnvVar(
            "VLMCAP_CACHE_DIR",
            str(Path.home() / ".cache" / "vlmcap"),
            "Where built-in tiny models and other generated assets are kept.",
        ),
        EnvVar(
            "VLMCAP_LOG_LEVEL",
            "INFO",
            "Log level of vlmcap's loggers (DEBUG, INFO, WARNING, ERROR).",
        ),
        EnvVar(
            "VLMCAP_DEBUG_REQUESTS",
            "0",
            "1 logs every request's prompt, media shapes, sampling params and output "
            "(debug_request) as it finishes.",
        ),
    )
}


def get(name: str) -> str:
    """The current value of a declared variable (KeyError for undeclared names)."""
    return ENV_VARS[name].get()


def model_dir() -> Path | None:
    value = get("VLMCAP_MODEL_DIR")
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    return Path(get("VLMCAP_CACHE_DIR")).expanduser()


def debug_requests() -> bool:
    return get("VLMCAP_DEBUG_REQUESTS").strip().lower() in {"1", "true", "yes", "on"}
