"""A plugin whose requests run with a LoRA adapter, in the real offline engine.

``tiny-lora-qwen2.5-vl`` is the random tiny Qwen2.5-VL with a PEFT adapter in its
``vision-lora`` folder (``vlmcap.tiny.lora``), the layout Phi-4-multimodal ships. The engine is
started with LoRA on (from the plugin's capabilities) and every request carries the adapter:
the same engine answers differently without it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.conftest import engine_config
from vlmcap.engine import caption_items
from vlmcap.plugins.registry import get_plugin
from vlmcap.plugins.tiny import TinyRandomQwen25VLPlugin
from vlmcap.records import Item, Status
from vlmcap.tiny.lora import ADAPTER_FOLDER

pytestmark = pytest.mark.engine

VARIANT = "tiny-lora-qwen2.5-vl"


def pictures(n: int) -> list[Item]:
    rng = np.random.default_rng(3)
    return [
        Item(f"p{i}.png", Image.fromarray(rng.integers(0, 256, (56, 84, 3), dtype=np.uint8)))
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def lora_engine() -> Iterator[tuple[Any, Any, Any]]:
    from vlmcap.engine import load_engine
    from vlmcap.runtime import shutdown_llm

    path = get_plugin(VARIANT).model_path
    config = engine_config(Path(path), model=VARIANT, model_path=path, max_output_tokens=12)
    plugin, llm = load_engine(config)
    yield plugin, llm, config
    shutdown_llm(llm)


def test_the_engine_starts_with_lora_from_the_plugin_s_capabilities(lora_engine):
    plugin, llm, _ = lora_engine
    lora = llm.llm_engine.vllm_config.lora_config
    assert lora is not None and lora.max_lora_rank >= 8 and lora.max_loras == 1
    request = plugin.lora_request()
    assert request.lora_name == VARIANT
    assert Path(request.lora_path) == Path(plugin.model_path) / ADAPTER_FOLDER


def test_every_request_runs_with_the_adapter(lora_engine):
    plugin, llm, config = lora_engine
    items = pictures(4)
    adapted = caption_items(items, llm, plugin, config)
    base_plugin = TinyRandomQwen25VLPlugin(plugin.model_path)  # same weights, no adapter
    base = caption_items(items, llm, base_plugin, config)
    assert all(r.status == Status.OK for r in adapted + base)
    # the prompt is the same; the adapter changes what the model writes
    assert [r.prompt_tokens for r in adapted] == [r.prompt_tokens for r in base]
    assert [r.text for r in adapted] != [r.text for r in base]
    # and it is the adapter the engine was asked for: the same request again, same text
    again = caption_items(items, llm, plugin, config)
    assert [r.text for r in again] == [r.text for r in adapted]
