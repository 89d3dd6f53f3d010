"""The model plugin interface: everything that differs between VLM families, nothing else.

Flow trace (who calls what, in order) for one item through the offline engine::

    registry.get_plugin(config.model)            -> plugin class; plugin = cls(config.model_path)
    plugin.build_llm(config)                     -> vllm.LLM (engine.args.engine_kwargs + overrides)
    plugin.processor()                           -> HF processor, loaded once and cached
    for each item, when the loop has room:
        plugin.make_request(prompt, media, processor, fps=...)   -> engine inputs (dict)
    when stage 1 finishes:
        plugin.decode(output)                    -> stage-1 caption
        plugin.make_stage2_request(record, refine_prompt)  -> engine inputs of stage 2
    when the last stage finishes:
        plugin.decode(output)                    -> final caption

A plugin never touches the engine loop and the loop knows nothing about a model family.
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from vlmcap import envs
from vlmcap.prompts import STYLES

if TYPE_CHECKING:
    from vllm import LLM, CompletionOutput

    from vlmcap.config import VLMConfig
    from vlmcap.records import CaptionRecord, Media

#: Engine inputs as vLLM takes them: ``{"prompt_token_ids": [...], "multi_modal_data": {...}}``
#: or ``{"prompt": "...", "multi_modal_data": {...}}``.
EngineInputs = dict[str, Any]


class VLMPlugin(abc.ABC):
    """Base class of model plugins. Subclasses set the class attributes and implement
    ``make_request`` (and usually ``make_stage2_request``); the rest has sensible defaults."""

    #: Unique name used on the command line (``--model``).
    variant: ClassVar[str]
    #: Hugging Face id of the reference weights.
    model_id: ClassVar[str]
    #: One line for ``vlmcap models``.
    description: ClassVar[str] = ""
    #: Named prompts (see ``vlmcap.prompts``); ``default`` must exist, ``image`` is the default
    #: for pictures.
    prompts: ClassVar[Mapping[str, str]] = STYLES

    def __init__(self, model_path: str | Path | None = None) -> None:
        self._model_path = str(model_path) if model_path is not None else None

    # ---- identity and assets --------------------------------------------------------------

    @property
    def model_path(self) -> str:
        """Explicit path, else ``$VLMCAP_MODEL_DIR/<model_id>`` if present, else the hub id."""
        if self._model_path is not None:
            return self._model_path
        root = envs.model_dir()
        if root is not None and (root / self.model_id).is_dir():
            return str(root / self.model_id)
        return self.model_id

    @functools.cached_property
    def _processor(self) -> Any:
        from transformers import AutoProcessor

        return AutoProcessor.from_pretrained(self.model_path)

    def processor(self) -> Any:
        """The Hugging Face processor of the model (loaded once per plugin instance)."""
        return self._processor

    def prompt(self, variant: str = "default", text: str | None = None) -> str:
        """The prompt text for a named variant, or ``text`` when given."""
        if text is not None:
            return text
        try:
            return self.prompts[variant]
        except KeyError:
            known = ", ".join(sorted(self.prompts))
            raise ValueError(
                f"model {self.variant!r} has no prompt variant {variant!r}; known: {known}"
            ) from None

    def prompt_for(self, kind: str, variant: str = "default", text: str | None = None) -> str:
        """The prompt for one item of ``kind`` ("image" or "video"): ``default`` means the
        ``image`` prompt for pictures and the ``default`` (video) prompt for clips."""
        if text is None and variant == "default" and kind == "image":
            return self.prompts.get("image", self.prompts["default"])
        return self.prompt(variant, text)

    # ---- engine ---------------------------------------------------------------------------

    def engine_overrides(self, config: VLMConfig) -> dict[str, Any]:
        """Per-family keyword arguments for ``vllm.LLM`` on top of the shared defaults."""
        return {}

    def build_llm(self, config: VLMConfig) -> LLM:
        """Start a vLLM engine for this model (shared defaults + ``engine_overrides``)."""
        from vllm import LLM

        from vlmcap.engine.args import engine_kwargs

        return LLM(**engine_kwargs(self, config))

    # ---- requests -------------------------------------------------------------------------

    @abc.abstractmethod
    def make_request(
        self, prompt: str, media: Media, processor: Any, *, fps: float | None = None
    ) -> EngineInputs:
        """Engine inputs for ``prompt`` over ``media``: a ``(T, C, H, W)`` float tensor in
        [0, 1] (video), one PIL image, or a sequence of PIL images."""

    def make_stage2_request(self, record: CaptionRecord, refine_prompt: str) -> EngineInputs:
        """Stage-2 inputs: the refine prompt followed by the stage-1 caption, same media."""
        if record.stage1_caption is None or record.item is None:
            raise ValueError(f"{record.key}: stage 2 needs a stage-1 caption and the item")
        text = refine_prompt + record.stage1_caption
        return self.make_request(text, record.item.media, self.processor(), fps=record.item.fps)

    def openai_messages(
        self, prompt: str, media_parts: Sequence[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """OpenAI chat messages for server mode (``vlmcap.client``): one user turn holding the
        media's content parts (``image_url`` / ``video_url``) and then ``prompt``."""
        return [{"role": "user", "content": [*media_parts, {"type": "text", "text": prompt}]}]

    def decode(self, output: CompletionOutput) -> str:
        """Caption text from one vLLM completion."""
        return output.text.strip()
