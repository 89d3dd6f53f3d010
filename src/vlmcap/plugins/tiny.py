"""The built-in tiny model: Qwen2.5-VL architecture, built locally, for demos and tests."""

from __future__ import annotations

from typing import Any

from vlmcap.config import VLMConfig
from vlmcap.plugins.qwen2_5_vl import Qwen25VLPlugin


class TinyQwen25VLPlugin(Qwen25VLPlugin):
    variant = "tiny-qwen2.5-vl"
    model_id = "vlmcap/tiny-qwen2.5-vl"
    description = "Built-in ~1M-parameter Qwen2.5-VL (random weights), built on first use."

    @property
    def model_path(self) -> str:
        if self._model_path is not None:
            return self._model_path
        from vlmcap.testing.tiny_model import ensure_tiny_model

        self._model_path = str(ensure_tiny_model())
        return self._model_path

    def engine_overrides(self, config: VLMConfig) -> dict[str, Any]:
        overrides = super().engine_overrides(config)
        if config.max_model_len is None:
            overrides["max_model_len"] = 4096
        return overrides
