"""What runs after every step of the offline engine: ``--log-steps`` and the profiler.

``step_hooks(config, llm)`` is the list ``vlmcap.engine.offline`` gives the engine transport;
each hook gets a ``vlmcap.engine.transport.StepInfo``. ``close_hooks(hooks)`` ends them when
the run ends (the profiler stops a profile still on, then summarises its traces).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vllm import LLM

    from vlmcap.config import VLMConfig
    from vlmcap.engine.transport import StepHook, StepInfo

#: ``--log-steps`` lines go here (``vlmcap.steps``), at INFO.
logger = logging.getLogger("vlmcap.steps")
MS_PER_S = 1000.0


def log_step(info: StepInfo) -> None:
    """One line per engine step."""
    logger.info(
        "step %d: %d inside, %d finished, %d tokens, %.1f ms",
        info.index,
        info.inside,
        info.finished,
        info.new_tokens,
        info.seconds * MS_PER_S,
    )


def step_hooks(config: VLMConfig, llm: LLM) -> list[StepHook]:
    """The hooks ``config``'s switches ask for (none: the transport counts nothing extra)."""
    hooks: list[StepHook] = []
    if config.log_steps:
        hooks.append(log_step)
    if config.profile is not None:
        from vlmcap.debug.profiler import EngineProfiler

        hooks.append(EngineProfiler.from_config(config, llm))
    return hooks


def close_hooks(hooks: Sequence[StepHook]) -> None:
    """The run is over: call ``close()`` of every hook that has one (in order)."""
    for hook in hooks:
        close = getattr(hook, "close", None)
        if callable(close):
            close()
