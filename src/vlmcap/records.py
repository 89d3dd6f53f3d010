"""Items going in and records coming out of a caption run.

A ``CaptionItem`` is what the caller prepares (a key, the media, optional prompt). The engine turns
each item into exactly one ``CaptionRecord`` that carries it through its life::

    pending -> stage1 -> [stage2 ->] ok
           \\-------------------------> failed   (with ``error`` naming the cause)

A failed record never carries a caption; a truncated output (finish reason ``length``) stays
``ok`` but is flagged by ``truncated``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

#: Media accepted by plugins: a ``(T, C, H, W)`` float tensor in [0, 1] (a video clip), one PIL
#: image, or a sequence of PIL images (several images in one prompt). Kept as ``Any`` so that
#: importing records does not import torch or Pillow.
Media = Any


class Status(enum.StrEnum):
    PENDING = "pending"
    STAGE1 = "stage1"
    STAGE2 = "stage2"
    OK = "ok"
    FAILED = "failed"


@dataclass
class CaptionItem:
    """One unit of work: a video clip or window, an image, or a group of images."""

    key: str
    media: Media
    prompt: str | None = None  # None: the run's prompt
    fps: float | None = None  # sampling rate of video frames, for the model's time encoding
    max_tokens: int | None = None  # per-item override of the run's max_output_tokens
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Timings:
    """Wall-clock instants (``time.time()`` seconds) of one record's life."""

    queued: float | None = None  # first request handed to the engine
    first_token: float | None = None  # first output token of stage 1
    stage1_finished: float | None = None
    finished: float | None = None  # final output (or failure)

    @property
    def latency(self) -> float | None:
        if self.queued is None or self.finished is None:
            return None
        return self.finished - self.queued

    @property
    def ttft(self) -> float | None:
        if self.queued is None or self.first_token is None:
            return None
        return self.first_token - self.queued


@dataclass
class CaptionRecord:
    key: str
    request_id: str
    item: CaptionItem | None = field(default=None, repr=False)
    prompt: str = ""
    status: Status = Status.PENDING
    stage1_caption: str | None = None
    stage2_prompt: str | None = None
    caption: str | None = None
    error: str | None = None
    finish_reason: str | None = None
    stage1_finish_reason: str | None = None
    prompt_tokens: int = 0  # summed over stages
    output_tokens: int = 0  # summed over stages
    timings: Timings = field(default_factory=Timings)
    #: Engine inputs of the request now in flight (prompt token ids + multimodal data).
    engine_inputs: dict[str, Any] | None = field(default=None, repr=False)
    #: Sampling parameters of the request now in flight (for debug_request).
    sampling: Any = field(default=None, repr=False)

    @property
    def truncated(self) -> bool:
        """True when any stage stopped at the token limit instead of finishing its text."""
        return "length" in (self.finish_reason, self.stage1_finish_reason)

    @property
    def done(self) -> bool:
        return self.status in (Status.OK, Status.FAILED)

    def fail(self, reason: str, now: float | None = None) -> None:
        """Mark this record failed; whatever caption text it had is dropped, never written."""
        self.status = Status.FAILED
        self.error = reason
        self.caption = None
        if now is not None:
            self.timings.finished = now
        self.engine_inputs = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view without media or engine inputs."""
        return {
            "key": self.key,
            "request_id": self.request_id,
            "status": str(self.status),
            "caption": self.caption,
            "stage1_caption": self.stage1_caption,
            "stage2_prompt": self.stage2_prompt,
            "prompt": self.prompt,
            "error": self.error,
            "finish_reason": self.finish_reason,
            "stage1_finish_reason": self.stage1_finish_reason,
            "truncated": self.truncated,
            "prompt_tokens": self.prompt_tokens,
            "output_tokens": self.output_tokens,
            "queued_at": self.timings.queued,
            "first_token_at": self.timings.first_token,
            "finished_at": self.timings.finished,
            "latency_s": self.timings.latency,
            "ttft_s": self.timings.ttft,
        }
