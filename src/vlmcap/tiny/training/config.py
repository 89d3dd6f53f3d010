"""One training run's settings, and the media sizes it draws."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from vlmcap.tiny.model import SHIPPED_MODEL_DIR, TRAINED_SPEC, TinySpec

#: How vlmcap samples clips by default (``MediaOptions``): 2 fps, 448 x 448 frames at most.
VIDEO_FPS = 2.0
VIDEO_MAX_FRAMES = 16
VIDEO_MAX_PIXELS = 448 * 448
#: Canvas sizes drawn in training; the defaults of ``make_dataset`` come up most often.
IMAGE_SIZES = ((224, 224), (224, 224), (224, 224), (160, 120), (256, 192), (192, 256), (112, 112))
VIDEO_SIZES = ((160, 120), (160, 120), (160, 120), (128, 96), (192, 144), (224, 168))
#: Clip lengths (s) and source rates (fps): 3 to 6 frames at 2 fps, 2 to 3 temporal patches.
VIDEO_SECONDS = (1.5, 2.0, 2.0, 2.0, 2.5, 3.0)
VIDEO_SOURCE_FPS = (8.0, 8.0, 10.0, 12.0)
IGNORE = -100
#: How the two images of a training pair differ: at random (mostly in colour, the easy cue),
#: or in shape or count alone, so that the answer hinges on them.
PAIR_DIFFERENCES: tuple[str | None, ...] = (None, None, "shape", "count")


@dataclass(frozen=True)
class TaskMix:
    """How often each kind of scene is drawn. An image or a clip gives a caption example and
    ``TrainConfig.questions`` questions; a pair of images gives a "which image shows X?"
    question and one question about each picture ("What colour is the object in picture 2?")."""

    image: float = 0.35
    video: float = 0.35
    pair: float = 0.3

    def names(self) -> tuple[str, ...]:
        return tuple(asdict(self))

    def weights(self) -> tuple[float, ...]:
        return tuple(asdict(self).values())


@dataclass(frozen=True)
class TrainConfig:
    """One training run; the defaults build the shipped model."""

    out: Path = SHIPPED_MODEL_DIR
    steps: int = 3000
    batch_size: int = 32
    lr: float = 1.5e-3
    #: Learning rate of the vision tower relative to ``lr``.
    vision_lr_scale: float = 1.0
    min_lr_ratio: float = 0.05
    warmup_steps: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    #: Weight of the attribute probe's loss on the vision features (``probe``); 0: no probe.
    probe_weight: float = 1.0
    #: Focal weighting of the answer tokens (0: plain cross-entropy).
    focal_gamma: float = 0.0
    #: Start the patch embedding colour-blind (``init_patch_embedding``).
    colour_blind_init: bool = True
    #: With ``colour_blind_init``: spatial filters from k-means over shape patches
    #: (``patch_kmeans_filters``) instead of random ones.
    kmeans_init: bool = False
    seed: int = 0
    threads: int = 2
    device: str = "cpu"  # a torch device; the shipped model is trained on the CPU
    bf16_autocast: bool = False  # bfloat16 matrix products (CPUs with AVX512-BF16 or AMX)
    #: Share of clips that go through a real mp4 encode and vlmcap's decoder (the others are
    #: rendered frames picked and resized the same way, which is much faster).
    encode_fraction: float = 0.1
    #: Share of images re-encoded as JPEG (quality 92, as ``write_image`` saves .jpg).
    jpeg_fraction: float = 0.2
    log_every: int = 50
    eval_every: int = 250
    eval_size: int = 160
    mix: TaskMix = field(default_factory=TaskMix)
    #: Questions asked about each image or clip (different categories), beside its caption;
    #: they share the scene's vision features, so extra questions cost only their text.
    questions: int = 2
    #: What a question's answer looks like: ``text`` (the option's text, "circle"), ``letter``
    #: ("B") or ``word`` ("circle (B)"). Picking the letter means finding the option that says
    #: what the image shows, which this small model had not learnt after 4,000 steps; the text
    #: is what it sees, and ``vlmcap.qa.choices.extract_choice`` maps it to the letter.
    qa_format: str = "text"
    #: Side range (px, on the drawn canvas) of the shapes in training scenes.
    shape_sizes: tuple[int, int] = (40, 64)
    spec: TinySpec = TRAINED_SPEC
    command: str = ""  # how the run was started, kept in the model folder
