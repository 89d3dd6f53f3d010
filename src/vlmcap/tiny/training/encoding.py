"""Examples -> tensors, exactly as vLLM would see them, and the training loss."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from vlmcap.tiny.training.config import IGNORE
from vlmcap.tiny.training.probe import probe_loss, scene_labels
from vlmcap.tiny.training.tasks import Task

if TYPE_CHECKING:
    import torch

    from vlmcap.plugins.base import EngineInputs


@dataclass
class Encoded:
    """One example as tensors: prompt and answer ids, labels on the answer only, pixels."""

    input_ids: list[int]
    labels: list[int]
    category: str
    token_types: list[int]  # 0 text, 1 image, 2 video (the processor's ``mm_token_type_ids``)
    pixel_values: torch.Tensor | None = None
    image_grid_thw: torch.Tensor | None = None
    pixel_values_videos: torch.Tensor | None = None
    video_grid_thw: torch.Tensor | None = None
    second_per_grid_ts: list[float] = field(default_factory=list)
    media_id: int = 0  # examples with the same id show the same media
    #: The probe's targets (``scene_labels``) of each image or clip, in prompt order.
    media_labels: list[tuple[int, int, int, int]] = field(default_factory=list)


def processor_inputs(processor: Any, request: EngineInputs) -> Any:
    """Run the HF processor on vLLM engine inputs the way vLLM's Qwen2.5-VL processor does:
    the prompt text, the images, and each video's frames with its ``VideoMetadata``."""
    from transformers.video_utils import VideoMetadata

    mm = request["multi_modal_data"]
    kwargs: dict[str, Any] = {}
    if "image" in mm:
        images = mm["image"]
        kwargs["images"] = list(images) if isinstance(images, list | tuple) else [images]
    if "video" in mm:
        frames, meta = mm["video"]
        kwargs["videos"] = [frames]
        kwargs["video_metadata"] = [
            VideoMetadata(**{k: v for k, v in meta.items() if k != "do_sample_frames"})
        ]
    return processor(text=[request["prompt"]], return_tensors="pt", **kwargs)


class Encoder:
    """Tasks -> tensors, through the tiny plugin's ``make_request`` and the model's processor."""

    def __init__(self, model_dir: Path) -> None:
        from vlmcap.plugins.tiny import TinyQwen25VLPlugin

        self.plugin = TinyQwen25VLPlugin(model_dir)
        self.processor = self.plugin.processor()
        tokenizer = self.processor.tokenizer
        self.tokenizer = tokenizer
        self.end_id = int(tokenizer.convert_tokens_to_ids("<|im_end|>"))
        self.pad_id = int(tokenizer.pad_token_id)

    def request(self, task: Task) -> EngineInputs:
        request = self.plugin.make_request(task.prompt, task.media, fps=task.fps)
        return self.plugin.engine_inputs(request, self.processor)

    def answer_ids(self, text: str) -> list[int]:
        ids: list[int] = self.tokenizer.encode(text, add_special_tokens=False)
        return [*ids, self.end_id]

    def encode(self, task: Task) -> Encoded:
        inputs = processor_inputs(self.processor, self.request(task))
        prompt = [int(i) for i in inputs["input_ids"][0]]
        answer = self.answer_ids(task.target)
        second = inputs.get("second_per_grid_ts")
        types = [int(t) for t in inputs["mm_token_type_ids"][0]]
        return Encoded(
            input_ids=prompt + answer,
            labels=[IGNORE] * len(prompt) + answer,
            category=task.category,
            token_types=types + [0] * len(answer),
            pixel_values=inputs.get("pixel_values"),
            image_grid_thw=inputs.get("image_grid_thw"),
            pixel_values_videos=inputs.get("pixel_values_videos"),
            video_grid_thw=inputs.get("video_grid_thw"),
            second_per_grid_ts=[float(s) for s in second] if second is not None else [],
            media_id=task.media_id,
            media_labels=[scene_labels(spec) for spec in task.scenes],
        )


def collate(batch: Sequence[Encoded], pad_id: int, share: bool = True) -> dict[str, Any]:
    """Right-padded ids, mask and labels, and the grids of every image and video in order.

    With ``share`` the pixels of media that several examples show (one scene's caption and
    question) are kept once, with an index from each occurrence to them, so that ``forward``
    runs the vision tower once per scene; without it every example brings its own pixels, the
    plain transformers batch.
    """
    import torch

    length = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), length), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), length), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), length), dtype=torch.long)
    types = torch.zeros((len(batch), length), dtype=torch.int)
    for row, e in enumerate(batch):
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids)
        labels[row, :n] = torch.tensor(e.labels)
        mask[row, :n] = 1
        types[row, :n] = torch.tensor(e.token_types)
    out: dict[str, Any] = {
        "input_ids": ids,
        "attention_mask": mask,
        "labels": labels,
        "mm_token_type_ids": types,
    }
    for grid in ("image_grid_thw", "video_grid_thw"):
        parts = [getattr(e, grid) for e in batch if getattr(e, grid) is not None]
        if parts:
            out[grid] = torch.cat(parts)
    seconds = [s for e in batch for s in e.second_per_grid_ts]
    if seconds:
        out["second_per_grid_ts"] = torch.tensor(seconds)
    for pixels, grid in (
        ("pixel_values", "image_grid_thw"),
        ("pixel_values_videos", "video_grid_thw"),
    ):
        if grid not in out:
            continue
        if not share:
            out[pixels] = torch.cat(
                [getattr(e, pixels) for e in batch if getattr(e, grid) is not None]
            )
            continue
        keys: dict[tuple[int, int], int] = {}
        unique_pixels: list[Any] = []
        unique_grids: list[Any] = []
        unique_labels: list[tuple[int, int, int, int]] = []
        index: list[int] = []
        for e in batch:
            g = getattr(e, grid)
            if g is None:
                continue
            chunks = torch.split(getattr(e, pixels), [int(t.prod()) for t in g])
            for j, (chunk, thw) in enumerate(zip(chunks, g, strict=True)):
                key = (e.media_id, j)
                if key not in keys:
                    keys[key] = len(unique_pixels)
                    unique_pixels.append(chunk)
                    unique_grids.append(thw)
                    if len(e.media_labels) == len(g):
                        unique_labels.append(e.media_labels[j])
                index.append(keys[key])
        out[f"shared_{pixels}"] = torch.cat(unique_pixels)
        out[f"shared_{grid}"] = torch.stack(unique_grids)
        out[f"{grid}_index"] = index
        if len(unique_labels) == len(unique_pixels):
            out[f"shared_{grid}_labels"] = torch.tensor(unique_labels)
    return out


def _shared_encoder_outputs(
    model: Any, batch: dict[str, Any], device: Any
) -> tuple[dict[str, Any], list[tuple[Any, Any]]]:
    """Vision features of each distinct image and video, once, laid out per occurrence; and,
    where the batch has the probe's labels, (features of each distinct item, labels) per kind."""
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    out: dict[str, Any] = {}
    probed: list[tuple[Any, Any]] = []
    for kind, pixels, grid, encode in (
        ("image", "pixel_values", "image_grid_thw", model.model.get_image_features),
        ("video", "pixel_values_videos", "video_grid_thw", model.model.get_video_features),
    ):
        if f"{grid}_index" not in batch:
            continue
        features = encode(
            batch[f"shared_{pixels}"].to(device),
            batch[f"shared_{grid}"].to(device),
            return_dict=True,
        ).pooler_output
        laid_out = tuple(features[i] for i in batch[f"{grid}_index"])
        out[kind] = BaseModelOutputWithPooling(pooler_output=cast(Any, laid_out))
        if f"shared_{grid}_labels" in batch:
            probed.append((list(features), batch[f"shared_{grid}_labels"]))
    return out, probed


class StepOutput(NamedTuple):
    loss: torch.Tensor
    #: Whether each answer token (at its label position, shifted like the logits) is the model's
    #: top choice; True off the answer.
    right: torch.Tensor
    #: With a probe: whether it got each attribute of each distinct image or clip (items,
    #: attributes); else None.
    probe_right: torch.Tensor | None = None


def forward(
    model: Any,
    batch: dict[str, Any],
    focal_gamma: float = 0.0,
    probe: torch.nn.Module | None = None,
    probe_weight: float = 1.0,
) -> StepOutput:
    """Mean cross-entropy over the answer tokens (plus ``probe_weight`` times the attribute
    probe's loss on the vision features, when a ``probe`` is given and the batch shares media).

    ``focal_gamma`` > 0 weighs each token by ``(1 - p) ** focal_gamma`` (focal loss, ``p`` the
    probability of the right token): tokens the model already gets (colours, grammar) stop
    dominating the gradient, and the hard ones (shapes, motion) get it.
    """
    import torch
    import torch.nn.functional as F

    device = next(model.parameters()).device
    inputs: dict[str, Any] = {
        k: v.to(device)
        for k, v in batch.items()
        if isinstance(v, torch.Tensor) and k != "labels" and not k.startswith("shared_")
    }
    probed: list[tuple[Any, Any]] = []
    if any(k.endswith("_index") for k in batch):
        inputs["mm_encoder_outputs"], probed = _shared_encoder_outputs(model, batch, device)
    logits = model(**inputs).logits[:, :-1].float()
    labels = batch["labels"][:, 1:].to(device)
    flat = labels.reshape(-1)
    losses = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), flat, ignore_index=IGNORE, reduction="none"
    )
    keep = flat != IGNORE
    if focal_gamma > 0:
        weights = (1 - torch.exp(-losses.detach())) ** focal_gamma
        loss = (weights * losses)[keep].sum() / keep.sum()
    else:
        loss = losses[keep].mean()
    right = (logits.detach().argmax(-1) == labels) | (labels == IGNORE)
    probe_right = None
    if probe is not None and probed:
        features = [f for fs, _ in probed for f in fs]
        targets = torch.cat([labels_ for _, labels_ in probed])
        extra, probe_right = probe_loss(probe, features, targets)
        loss = loss + probe_weight * extra
    return StepOutput(loss, right, probe_right)


#: What the first answer tokens of a caption say: "two blue squares ...", "a red circle ...".
CAPTION_FIELDS = ("count", "colour", "shape")
