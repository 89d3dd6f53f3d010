"""The one thing backends differ in: how a request reaches a model and its answer comes back.

A transport takes ``StageRequest``s and reports ``Completion``s; it knows nothing of items,
stages, prompts or outputs (that is the lifecycle's job) and nothing of when to add work (the
loop driver's). Two exist: vLLM's engine in this process (``vlmcap.engine.transport``) and an
OpenAI-compatible server (``vlmcap.client.transport``). On Ray each engine actor runs the first
under the same driver (``vlmcap.distributed.actor``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from vlmcap.core.request import Completion, StageRequest


class Rejected(Exception):
    """The transport refused this one request at submission; ``str(exc)`` is the reason."""


class InflightLost(Exception):
    """The transport lost every request inside it (vLLM's engine died): each of them fails with
    ``reason``, then the run stops with the original error (``__cause__``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Finished:
    """One request the transport is done with."""

    request_id: str
    completion: Completion


class Transport(Protocol):
    """What the loop driver needs from a backend (see the module docstring)."""

    @property
    def capacity(self) -> int:
        """Most requests the driver should keep inside at once."""
        ...

    @property
    def steps(self) -> int | None:
        """Engine steps run so far; ``None`` where the transport has no such thing (a server)."""
        ...

    @property
    def outputs_seen(self) -> int | None:
        """Partial outputs (new tokens of a request still running) seen so far; ``None`` where
        only finished requests are reported (a server). The hang watchdog counts a rise as
        progress."""
        ...

    def submit(self, request: StageRequest) -> None:
        """Start ``request``; raise ``Rejected`` if it cannot be taken."""
        ...

    def collect(self, timeout: float | None) -> list[Finished]:
        """Requests finished since the last call. Waits for at least one for up to ``timeout``
        seconds (``None``: as long as it takes); an empty list when the time ran out. Raises
        ``InflightLost`` when every request inside is lost, or an error that stops the run
        (e.g. ``vlmcap.client.ServerError``)."""
        ...

    def close(self) -> None:
        """Release what the transport holds for this run (threads, connections)."""
        ...
