"""An out-of-tree vlmcap plugin: a family of its own on top of a shipped one.

``ShoutyTinyPlugin`` runs the built-in tiny Qwen2.5-VL (shipped with vlmcap, so it needs no
download) with its own prompts, its own inputs (pictures only, at most two per request) and
its own decoding (upper-case captions with a prefix). The entry point in ``pyproject.toml``
registers it as ``example-shouty``. The contract it implements: docs/writing_a_plugin.md.
"""

from __future__ import annotations

from typing import ClassVar

from vlmcap.core.request import Completion
from vlmcap.plugins.capabilities import QWEN25_PIXEL_MULTIPLE, Capabilities
from vlmcap.plugins.reasoning import Decoded
from vlmcap.plugins.tiny import TinyQwen25VLPlugin

#: What every caption of this plugin starts with.
PREFIX = "SHOUTY: "


class ShoutyTinyPlugin(TinyQwen25VLPlugin):
    """The tiny Qwen2.5-VL on pictures only, with upper-case captions prefixed ``SHOUTY: ``."""

    variant = "example-shouty"
    model_id = "example/shouty-tiny"
    description = "Example plugin: the tiny model on pictures, captions in upper case."
    # `default` must exist; `--prompt short` picks the other one. Without an `image` entry,
    # pictures get `default`.
    prompts: ClassVar[dict[str, str]] = {
        "default": "Describe this image in detail.",
        "short": "Write a very short caption for the given image.",
    }
    # One or two pictures per request, no video: a clip fails before it is decoded ("takes no
    # video"), a third picture fails that item, and vLLM is started with a video limit of 0.
    capabilities = Capabilities(max_images=2, video=False, pixel_multiple=QWEN25_PIXEL_MULTIPLE)

    def decode(self, completion: Completion) -> Decoded:
        """The base decoding (end-of-turn tokens dropped), then upper case with the prefix.
        An empty answer stays empty, so the lifecycle fails that item instead of writing a
        caption of only the prefix."""
        decoded = super().decode(completion)
        if not decoded.text:
            return decoded
        return Decoded(PREFIX + decoded.text.upper(), decoded.reasoning)
