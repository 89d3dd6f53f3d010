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
        EnvVar(
            "VLMCAP_MONITOR",
            "",
            "1 logs a health snapshot (requests, KV cache, memory, GPUs, progress) on the "
            "vlmcap.monitor logger every VLMCAP_MONITOR_INTERVAL seconds; when set, it wins "
            "over ENABLE_VLLM_MONITOR (also to switch it off with 0).",
        ),
        EnvVar(
            "VLMCAP_MONITOR_INTERVAL",
            "",
            "Seconds between two health snapshots (30 when neither this nor "
            "VLLM_MONITOR_INTERVAL is set); does not switch the monitor on by itself.",
        ),
        EnvVar(
            "ENABLE_VLLM_MONITOR",
            "",
            "The older name of VLMCAP_MONITOR, read when VLMCAP_MONITOR is unset.",
        ),
        EnvVar(
            "VLLM_MONITOR_INTERVAL",
            "",
            "The older name of VLMCAP_MONITOR_INTERVAL, read when that one is unset.",
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
