"""An attribute probe on the vision tower: direct supervision of what each image or clip shows.

Through the language model alone, the only signal that reaches the vision tower is the gradient
of one caption word, passed back through attention over the image tokens; shapes take thousands
of steps to come out that way. The probe pools the tower's output tokens of each image or clip
(mean and max over tokens) and predicts the scene's colour, shape, count and motion with one
linear layer, so every scene trains the tower on every attribute at once. It is a training aid
only: the probe is not part of the saved model, which vLLM loads as a plain Qwen2.5-VL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vlmcap.tiny.model import COLOURS, DIRECTIONS, SHAPES
from vlmcap.tiny.synthetic import SceneSpec

if TYPE_CHECKING:
    import torch

#: What the probe predicts, and how many values each attribute takes.
ATTRIBUTES: tuple[tuple[str, int], ...] = (
    ("colour", len(COLOURS)),
    ("shape", len(SHAPES)),
    ("count", 3),
    ("direction", len(DIRECTIONS)),
)


def scene_labels(spec: SceneSpec) -> tuple[int, int, int, int]:
    """The probe's targets for a scene: colour, shape, count - 1 and direction indices."""
    return (
        COLOURS.index(spec.colour),
        SHAPES.index(spec.shape),
        spec.count - 1,
        DIRECTIONS.index(spec.direction),
    )


def attribute_probe(width: int) -> torch.nn.Module:
    """A linear layer from pooled vision features (mean and max, ``2 * width``) to the logits
    of every attribute, side by side."""
    import torch

    return torch.nn.Linear(2 * width, sum(n for _, n in ATTRIBUTES))


def probe_loss(
    probe: torch.nn.Module, features: list[torch.Tensor], labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed cross-entropy over the attributes for one feature tensor (tokens, width) per
    image or clip against ``labels`` (items, attributes); and which predictions were right
    (items, attributes)."""
    import torch
    import torch.nn.functional as F

    pooled = torch.stack([torch.cat([f.mean(0), f.max(0).values]) for f in features])
    logits = torch.split(probe(pooled.float()), [n for _, n in ATTRIBUTES], dim=1)
    labels = labels.to(pooled.device)
    loss = sum(
        (F.cross_entropy(part, labels[:, i]) for i, part in enumerate(logits)),
        start=torch.zeros((), device=pooled.device),
    )
    right = torch.stack(
        [part.detach().argmax(1) == labels[:, i] for i, part in enumerate(logits)], dim=1
    )
    return loss, right
