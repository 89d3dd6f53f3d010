"""Any VLM vLLM supports: requests through the model's own chat template and processor.

``--model generic --model-path PATH_OR_HUB_ID`` runs a model no family plugin knows. What it
takes is asked of vLLM once per plugin (``vllm_capabilities``): the modalities its processor
for that architecture supports and how many of each a prompt may carry; the pixel grid and
frame multiple come from the Hugging Face processor when it states them (``patch_size`` x
``merge_size``, ``temporal_patch_size``). A model that takes no video gets a clip as up to
``GENERIC_MAX_IMAGES`` of its frames, one picture each.

The prompt is the chat template's rendering of the base plugin's request, so system prompt,
turn markers and image tokens are the model's own; decoding drops end-of-turn tokens and
splits off a ``<think>`` block when there is one (``split_reasoning`` leaves plain text as is).
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Any

from vlmcap.plugins.base import VLMPlugin
from vlmcap.plugins.capabilities import Capabilities
from vlmcap.plugins.reasoning import Decoded, split_reasoning

if TYPE_CHECKING:
    from vlmcap.core.request import Completion

logger = logging.getLogger(__name__)

#: Most pictures per prompt for a model whose vLLM processor sets no limit.
GENERIC_MAX_IMAGES = 4
#: What a model is assumed to take when vLLM cannot say: one picture.
FALLBACK_CAPABILITIES = Capabilities(max_images=1, pixel_multiple=1)


class ModelPathRequired(ValueError):
    """The generic plugin was given no model."""


def vllm_capabilities(model_path: str, trust_remote_code: bool = False) -> Capabilities:
    """What the model at ``model_path`` takes, from vLLM's multimodal processor for its
    architecture (reads the config and processor files, loads no weights)."""
    from vllm.config import ModelConfig
    from vllm.multimodal import MULTIMODAL_REGISTRY

    model_config = ModelConfig(model=model_path, trust_remote_code=trust_remote_code)
    if not model_config.is_multimodal_model:
        raise ValueError(f"{model_path} is not a vision-language model in vLLM (text only)")
    processor = MULTIMODAL_REGISTRY.create_processor(model_config)
    limits = processor.info.get_supported_mm_limits()
    hf = processor.info.get_hf_processor()
    image_processor = getattr(hf, "image_processor", None)
    patch = getattr(image_processor, "patch_size", None)
    merge = getattr(image_processor, "merge_size", 1)
    temporal = getattr(getattr(hf, "video_processor", None), "temporal_patch_size", 1)
    most = limits.get("image")
    max_images = GENERIC_MAX_IMAGES if most is None else max(1, min(most, GENERIC_MAX_IMAGES))
    video = "video" in limits
    return Capabilities(
        max_images=max_images,
        video=video,
        video_as_images=not video,
        pixel_multiple=patch * merge if isinstance(patch, int) and isinstance(merge, int) else 1,
        frame_multiple=temporal if video and isinstance(temporal, int) else 1,
    )


class GenericPlugin(VLMPlugin):
    variant = "generic"
    model_id = ""
    description = (
        "Any VLM vLLM supports (--model-path): its chat template and processor; inputs "
        "asked of vLLM."
    )

    @property
    def model_path(self) -> str:
        if self._model_path is None:
            raise ModelPathRequired(
                "the generic plugin needs --model-path: a model folder or a Hugging Face id"
            )
        return self._model_path

    @functools.cached_property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        """The model's inputs as vLLM reports them (one picture when it cannot say)."""
        path = self.model_path  # no model: ModelPathRequired, not a guess
        try:
            caps = vllm_capabilities(path, self.trust_remote_code)
        except (ImportError, OSError, ValueError, RuntimeError, KeyError, AttributeError) as exc:
            logger.warning(
                "cannot ask vLLM what %s takes (%s: %s); assuming one picture per request",
                path,
                type(exc).__name__,
                exc,
            )
            return FALLBACK_CAPABILITIES
        logger.info("%s takes: %s", path, ", ".join(caps.inputs))
        return caps

    def decode(self, completion: Completion) -> Decoded:
        return split_reasoning(completion.text)

    def engine_inputs(self, request: Any, processor: Any) -> dict[str, Any]:
        inputs = super().engine_inputs(request, processor)
        inputs["prompt"] = without_doubled_bos(inputs["prompt"], processor)
        return inputs


def without_doubled_bos(prompt: str, processor: Any) -> str:
    """``prompt`` without the chat template's leading BOS when the tokenizer adds one itself
    (vLLM tokenizes an offline prompt with special tokens: Gemma's would start with two)."""
    tokenizer = getattr(processor, "tokenizer", processor)
    bos = getattr(tokenizer, "bos_token", None)
    if not bos or not prompt.startswith(bos):
        return prompt
    ids = tokenizer("x")["input_ids"]
    adds_bos = bool(ids) and ids[0] == tokenizer.bos_token_id
    return prompt[len(bos) :] if adds_bos else prompt
