"""Items going in and records coming out of the request lifecycle, for every task and backend.

An ``Item`` is what the caller prepares (a key, the media, optional prompt). The lifecycle
(``vlmcap.core.lifecycle``) turns each item into exactly one ``Record`` that carries it through
its life, whichever transport runs its requests (vLLM's engine here, a server, a Ray actor)::

    pending -> stage1 -> [stage2 ->] ok
           \\-------------------------> failed   (with ``error`` naming the cause)

A failed record never carries text; a truncated output (finish reason ``length``) stays ``ok``
but is flagged by ``truncated``. What a task writes to disk is a row built from the record
(``vlmcap.rows``): a caption run's ``caption`` column is the record's ``text``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vlmcap.core.request import ModelRequest, Sampling

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
class Item:
    """One unit of work: a video clip or window, an image, or a group of images, with the
    prompt to ask about it (a caption instruction, a question)."""

    key: str
    media: Media
    prompt: str | None = None  # None: the run's prompt
    fps: float | None = None  # sampling rate of video frames, for the model's time encoding
    max_tokens: int | None = None  # per-item override of the run's max_output_tokens
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Timings:
    """Wall-clock instants (``time.time()`` seconds) of one record's life."""

    queued: float | None = None  # first request handed to the transport
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
class Record:
    """The state of one item through its requests; finished when ``ok`` or ``failed``."""

    key: str
    request_id: str
    item: Item | None = field(default=None, repr=False)
    prompt: str = ""
    status: Status = Status.PENDING
    stage1_text: str | None = None
    stage2_prompt: str | None = None
    text: str | None = None
    #: The model's reasoning (``<think>`` part) behind ``text``, kept apart from it.
    reasoning: str | None = None
    error: str | None = None
    finish_reason: str | None = None
    stage1_finish_reason: str | None = None
    prompt_tokens: int = 0  # summed over stages
    output_tokens: int = 0  # summed over stages
    #: Requests sent for this item, over its stages, retries included (a server's HTTP
    #: retries, a request lost with a dead engine): above the stage count, it was retried.
    attempts: int = 0
    timings: Timings = field(default_factory=Timings)
    #: The model request now in flight (for debug dumps); dropped once the record is done.
    request: ModelRequest | None = field(default=None, repr=False)
    #: Sampling of the request now in flight.
    sampling: Sampling | None = field(default=None, repr=False)
    #: A transport's per-record cache (e.g. media already encoded for a server, reused by
    #: stage 2); cleared when the record is done.
    scratch: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def truncated(self) -> bool:
        """True when any stage stopped at the token limit instead of finishing its text."""
        return "length" in (self.finish_reason, self.stage1_finish_reason)

    @property
    def done(self) -> bool:
        return self.status in (Status.OK, Status.FAILED)

    def fail(self, reason: str, now: float | None = None) -> None:
        """Mark this record failed; whatever text it had is dropped, never written."""
        self.status = Status.FAILED
        self.error = reason
        self.text = None
        self.reasoning = None
        if now is not None:
            self.timings.finished = now
        self._release()

    def finish(self, text: str, now: float) -> None:
        """Mark this record ``ok`` with its final ``text``."""
        self.text = text
        self.status = Status.OK
        self.timings.finished = now
        self._release()

    def _release(self) -> None:
        self.request = None
        self.scratch.clear()
