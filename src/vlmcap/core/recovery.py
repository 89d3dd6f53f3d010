"""What the loop does when its transport loses every request inside (vLLM's engine died).

Flow trace (``vlmcap.core.loop`` calls it)::

    engine dies (InflightLost) with records inside
      no restarts left                  -> the run stops; the records inside are not written
                                           (not their fault): a rerun resumes them
      one suspect alone inside          -> that item killed the engine twice: it fails with
                                           the reason (a poison item), the others go on
      otherwise                         -> every record inside becomes a suspect
      recovery.restart()                -> a fresh transport (a new engine), one restart used
    suspects go back in one at a time, before any new item; when none is left the loop fills
    the engine to its capacity again

A poison item (one whose request kills the engine every time) therefore costs two restarts and
fails alone, with its reason; a death that no item caused (the host ran out of memory, a
driver error, the engine process was killed) costs one restart and no record. A second such
death while a suspect is alone inside blames that suspect: it fails as a poison item, and a
rerun (which retries failed rows) tries it again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from vlmcap.core.transport import Transport
from vlmcap.options.vlm import DEFAULT_ENGINE_RESTARTS

logger = logging.getLogger(__name__)


class EngineLost(RuntimeError):
    """The engine died and no restart is left; ``unfinished`` requests inside were not written
    (a rerun resumes them)."""

    def __init__(self, reason: str, unfinished: int) -> None:
        super().__init__(
            f"{reason}; {unfinished} item(s) in flight were not finished and are left for "
            "resume (rerun the same command)"
        )
        self.reason = reason
        self.unfinished = unfinished


@dataclass
class Recovery:
    """Restarts the transport after a death, at most ``restarts`` times in one run."""

    restart: Callable[[], Transport]
    restarts: int = DEFAULT_ENGINE_RESTARTS
    used: int = 0

    @property
    def left(self) -> int:
        return max(self.restarts - self.used, 0)

    def new_transport(self, reason: str, suspects: int) -> Transport:
        """A fresh transport; counts one restart (``left`` must be above 0)."""
        self.used += 1
        logger.warning(
            "%s; restarting the engine (restart %d of %d); %d request(s) that were inside go "
            "back in one at a time",
            reason,
            self.used,
            self.restarts,
            suspects,
        )
        return self.restart()


def poison_reason(reason: str) -> str:
    """A record's error when its request killed the engine again, alone inside it."""
    return f"the engine died twice with this item inside, the second time alone: {reason}"
