"""The model plugin interface: everything that differs between VLM families, nothing else.

Flow trace (who calls what, in order) for one item, on any backend::

    registry.get_plugin(config.model)            -> plugin class; plugin = cls(config.model_path)
    plugin.build_llm(config)                     -> vllm.LLM (offline; engine.args + overrides)
    for each item, when the loop has room:
        plugin.capabilities.check(media, variant)        -> UnsupportedInputError: item failed
        plugin.make_request(prompt, media, fps=...)      -> ModelRequest (chat turns + media)
          offline: plugin.engine_inputs(request, plugin.processor())  -> prompt + mm data
          server:  plugin.chat_messages(request, encoded media parts) -> OpenAI messages
    when stage 1 finishes:
        plugin.decode(completion)                -> Decoded (stage-1 text, reasoning apart)
        plugin.make_stage2_request(record, stage2_prompt)   -> ModelRequest of stage 2
    when the last stage finishes:
        plugin.decode(completion)                -> final text

What a family takes is declared once in ``capabilities`` (inputs, pixel grid, frame multiple,
LoRA adapter); ``engine_overrides`` and the media layer derive their settings from it.

One method describes a request, so a plugin behaves the same offline and through a server. A
plugin never touches the loop and the loop knows nothing about a model family.
"""

from __future__ import annotations

import abc
import functools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from PIL import Image

from vlmcap import envs
from vlmcap.core.request import ModelRequest
from vlmcap.media.frames import (
    DEFAULT_VIDEO_FPS,
    as_image_list,
    is_video,
    video_metadata,
    video_to_uint8_thwc,
)
from vlmcap.plugins.capabilities import Capabilities
from vlmcap.plugins.reasoning import Decoded, split_reasoning, strip_turn_tokens
from vlmcap.prompts import STYLES

if TYPE_CHECKING:
    from vllm import LLM

    from vlmcap.config import VLMConfig
    from vlmcap.core.request import Completion
    from vlmcap.records import Media, Record

#: Engine inputs as vLLM takes them: ``{"prompt_token_ids": [...], "multi_modal_data": {...}}``
#: or ``{"prompt": "...", "multi_modal_data": {...}}``.
EngineInputs = dict[str, Any]
#: Content parts of ``ModelRequest.messages`` that stand for one picture or clip.
MEDIA_PLACEHOLDERS = frozenset({"image", "video"})
#: vLLM's id of the one adapter a plugin runs with (ids are the engine's keys for adapters).
LORA_ID = 1


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

    #: Last line of a multiple-choice question: how to answer.
    qa_instruction: ClassVar[str] = (
        "Answer with the option's letter from the given choices directly."
    )

    def qa_prompt(self, question: str, choices: Mapping[str, str], hint: str | None = None) -> str:
        """The text of a multiple-choice question: the hint (if any), the question, one line
        per option (``A. text``) and ``qa_instruction``. A family trained on another layout
        overrides this (or just ``qa_instruction``)."""
        lines = [f"Hint: {hint}"] if hint else []
        lines.append(question)
        lines.extend(f"{letter}. {text}" for letter, text in choices.items())
        lines.append(self.qa_instruction)
        return "\n".join(lines)

    # ---- what the model takes -------------------------------------------------------------

    #: Inputs, pixel grid, frame multiple and LoRA adapter: read by the media layer, the
    #: lifecycle, the engine builder and the server client (``vlmcap.plugins.capabilities``).
    capabilities: ClassVar[Capabilities] = Capabilities()
    #: Context length when the config sets none (None: the model's own, which vLLM also uses
    #: to size its profiling run, so long-context families set a smaller one).
    default_max_model_len: ClassVar[int | None] = None
    #: The model's config or processor is code from its repository (``trust_remote_code``).
    trust_remote_code: ClassVar[bool] = False

    # ---- engine ---------------------------------------------------------------------------

    def processor_kwargs(self, config: VLMConfig) -> dict[str, Any]:
        """Arguments for the model's Hugging Face processor (vLLM's ``mm_processor_kwargs``),
        e.g. for ``config.preprocess`` off; none by default."""
        return {}

    def engine_overrides(self, config: VLMConfig) -> dict[str, Any]:
        """Per-family keyword arguments for ``vllm.LLM`` on top of the shared defaults, built
        from the class attributes above; a family with more needs extends this."""
        caps = self.capabilities
        overrides: dict[str, Any] = {"limit_mm_per_prompt": caps.mm_limits()}
        if config.max_model_len is None and self.default_max_model_len is not None:
            overrides["max_model_len"] = self.default_max_model_len
        if self.trust_remote_code:
            overrides["trust_remote_code"] = True
        if caps.lora is not None:
            overrides.update(enable_lora=True, max_lora_rank=caps.lora.max_rank, max_loras=1)
        processor = self.processor_kwargs(config)
        if processor:
            overrides["mm_processor_kwargs"] = processor
        return overrides

    def lora_request(self) -> Any:
        """vLLM's ``LoRARequest`` every request of this model runs with (None: no adapter)."""
        adapter = self.capabilities.lora
        if adapter is None:
            return None
        from vllm.lora.request import LoRARequest

        path = Path(self.model_path) / adapter.subfolder
        return LoRARequest(self.variant, LORA_ID, str(path))

    def build_llm(self, config: VLMConfig) -> LLM:
        """Start a vLLM engine for this model (shared defaults + ``engine_overrides``)."""
        from vllm import LLM

        from vlmcap.engine.args import engine_env, engine_kwargs
        from vlmcap.runtime import before_engine_start

        before_engine_start()  # child guard, shutdown timeouts: before vLLM starts processes
        os.environ.update(engine_env(config))  # read by vLLM here and in its engine processes
        return LLM(**engine_kwargs(self, config))

    # ---- requests -------------------------------------------------------------------------

    #: System turn put before every request; ``None`` keeps the chat template's default.
    system_prompt: ClassVar[str | None] = None
    #: The model writes ``<think>...</think>`` (and maybe ``<answer>``) before its answer.
    reasoning: ClassVar[bool] = False

    def make_request(self, prompt: str, media: Media, *, fps: float | None = None) -> ModelRequest:
        """The request for ``prompt`` over ``media`` (a ``(T, C, H, W)`` float tensor in [0, 1]
        for a video, one PIL image, or a sequence of PIL images): chat turns with one
        placeholder per picture or one for the clip, then the prompt text.

        Both transports derive their input from it (``engine_inputs``, ``chat_messages``), so a
        plugin that changes the prompt does it here, once. The lifecycle has checked ``media``
        against ``capabilities`` before it calls this.
        """
        if is_video(media):
            visual: list[dict[str, Any]] = [{"type": "video"}]
        else:
            visual = [{"type": "image"} for _ in as_image_list(media)]
        messages: list[dict[str, Any]] = []
        if self.system_prompt is not None:
            messages.append({"role": "system", "content": self.system_prompt})
        messages.append({"role": "user", "content": [*visual, {"type": "text", "text": prompt}]})
        return ModelRequest(messages=messages, media=media, fps=fps)

    def make_stage2_request(self, record: Record, stage2_prompt: str) -> ModelRequest:
        """Stage 2: the stage-2 prompt followed by the stage-1 text, over the same media."""
        if record.stage1_text is None or record.item is None:
            raise ValueError(f"{record.key}: stage 2 needs a stage-1 text and the item")
        text = stage2_prompt + record.stage1_text
        return self.make_request(text, record.item.media, fps=record.item.fps)

    def engine_inputs(self, request: ModelRequest, processor: Any) -> EngineInputs:
        """vLLM engine inputs of ``request``: the chat template's prompt text and
        ``multi_modal_data`` (frames with their metadata, or PIL images)."""
        text = processor.apply_chat_template(
            self.template_messages(request), tokenize=False, add_generation_prompt=True
        )
        return {"prompt": text, "multi_modal_data": self.multi_modal_data(request)}

    def template_messages(self, request: ModelRequest) -> list[dict[str, Any]]:
        """``request.messages`` as the chat template takes them offline: a clip sent as
        pictures (``video_as_images``) has one image placeholder per frame."""
        if not (self.capabilities.video_as_images and is_video(request.media)):
            return request.messages
        frames = [{"type": "image"} for _ in range(int(request.media.shape[0]))]
        out = []
        for message in request.messages:
            content = message.get("content")
            if isinstance(content, list):
                content = [
                    q for p in content for q in (frames if p.get("type") == "video" else [p])
                ]
            out.append({**message, "content": content})
        return out

    def multi_modal_data(self, request: ModelRequest) -> dict[str, Any]:
        """vLLM's ``multi_modal_data`` for ``request.media``."""
        media = request.media
        if is_video(media):
            frames = video_to_uint8_thwc(media)
            if self.capabilities.video_as_images:
                return {"image": [Image.fromarray(f) for f in frames]}
            meta = video_metadata(frames.shape[0], request.fps or DEFAULT_VIDEO_FPS)
            return {"video": (frames, meta)}
        images = as_image_list(media)
        return {"image": images[0] if len(images) == 1 else images}

    def chat_messages(
        self, request: ModelRequest, media_groups: Sequence[Sequence[dict[str, Any]]]
    ) -> list[dict[str, Any]]:
        """OpenAI chat messages of ``request`` for a server: each media placeholder replaced,
        in order, by its group of encoded parts (``image_url`` / ``video_url``; a clip sent as
        images is several parts)."""
        groups = iter(media_groups)
        messages = []
        for message in request.messages:
            content = message.get("content")
            if isinstance(content, list):
                parts: list[dict[str, Any]] = []
                for part in content:
                    if part.get("type") in MEDIA_PLACEHOLDERS:
                        group = next(groups, None)
                        if group is None:
                            raise ValueError("the request has more media placeholders than media")
                        parts.extend(group)
                    else:
                        parts.append(part)
                content = parts
            messages.append({**message, "content": content})
        left = sum(1 for _ in groups)
        if left:
            raise ValueError(f"{left} encoded media item(s) have no placeholder in the request")
        return messages

    def decode(self, completion: Completion) -> Decoded:
        """What a task keeps from one completion (any transport): the text without end-of-turn
        tokens; a reasoning family (``reasoning = True``) splits off its ``<think>`` part. (The
        lifecycle also takes a plain ``str`` from a plugin's override: the text alone.)"""
        if self.reasoning:
            return split_reasoning(completion.text)
        return Decoded(strip_turn_tokens(completion.text))
