"""``--profile DIR``: vLLM's torch profiler around a few engine steps, and what its traces say.

Offline (``vlmcap caption`` / ``vlmcap qa`` without a server), the engine is started with
vLLM's profiler configured to write into DIR (``profiler_config``: the ``profiler_config``
engine argument, DIR made absolute as vLLM's workers need). ``EngineProfiler`` is a step hook
(``vlmcap.debug.steps``): it lets ``steps`` engine steps pass to warm up, then calls
``llm.start_profile(prefix, max_iterations=steps)``, so vLLM's worker records exactly
``steps`` of its own steps and then stops by itself, writing its trace. vLLM's engine core
runs ahead of this process by a few steps, so the hook does not stop at a count of its own:
once ``steps`` steps have passed here and the worker's trace is in DIR, it calls
``llm.stop_profile()`` (which ends vLLM's profiling session). Older vLLM (0.25) takes only the
prefix: there the hook stops the profile itself once ``steps`` steps have passed here, so the
trace holds about that many of the worker's steps (give or take the few the engine core ran
ahead). A run that ends sooner is stopped by ``close()``
(``vlmcap.debug.steps.close_hooks``), with what was recorded so far. A
configured profiler that is never started costs nothing: vLLM's worker creates its torch
profiler on the first ``start_profile``.

Through a server, ``vlmcap.debug.server_profiler.ServerProfiler`` drives the same profiler
over ``POST /start_profile`` and ``POST /stop_profile``.

Either way the traces are Chrome/Perfetto JSON (``traceEvents``, gzipped by default), read and
summarised by ``vlmcap.debug.profile_summary``.
"""

from __future__ import annotations

import inspect
import logging
import os
import time
import uuid
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlmcap.debug.profile_summary import ProfileSummary, log_summary, summarise
from vlmcap.debug.traces import DEFAULT_TOP, find_traces

if TYPE_CHECKING:
    from vllm import LLM

    from vlmcap.config import VLMConfig
    from vlmcap.engine.transport import StepInfo

logger = logging.getLogger(__name__)

#: Profiler settings vlmcap picks (a user's ``engine_args.profiler_config`` still wins):
#: no Python stacks, which on small CPU ops cost more than the ops themselves.
PROFILER_DEFAULTS: dict[str, Any] = {"profiler": "torch", "torch_profiler_with_stack": False}
PROFILER_KEY = "profiler_config"
#: After the window, the hook waits at least this many more steps (or one window more) for
#: vLLM's trace to appear before it stops the profile anyway.
MIN_EXTRA_WAIT_STEPS = 64


# ---- configuration ------------------------------------------------------------------------


def profile_dir(path: str | os.PathLike[str]) -> Path:
    """``path`` as the absolute folder vLLM's workers need (``~`` expanded)."""
    return Path(path).expanduser().absolute()


def profiler_config(config: VLMConfig) -> dict[str, Any] | None:
    """The ``profiler_config`` engine argument for ``config.profile`` (None without it)."""
    if config.profile is None:
        return None
    return {**PROFILER_DEFAULTS, "torch_profiler_dir": str(profile_dir(config.profile))}


def merge_profiler_config(kwargs: dict[str, Any], config: VLMConfig) -> None:
    """Put ``config``'s profiler settings into the engine ``kwargs``, under any
    ``profiler_config`` dict already there (a user's ``engine_args`` keep their keys)."""
    ours = profiler_config(config)
    if ours is None:
        return
    theirs = kwargs.get(PROFILER_KEY)
    if theirs is None:
        kwargs[PROFILER_KEY] = ours
    elif isinstance(theirs, dict):
        kwargs[PROFILER_KEY] = {**ours, **theirs}
    else:
        logger.warning("engine_args sets %s itself: --profile's settings not applied", PROFILER_KEY)


def new_prefix() -> str:
    """A file-name prefix for one profiling session's traces (what vLLM accepts:
    letters, digits, ``._-``, at most 128 characters)."""
    return f"vlmcap-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


# ---- traces -------------------------------------------------------------------------------


# ---- offline: a step hook -----------------------------------------------------------------


def engine_profile_dir(llm: LLM) -> Path | None:
    """Where ``llm``'s workers write torch traces (None: started without the torch profiler)."""
    vllm_config = getattr(getattr(llm, "llm_engine", None), "vllm_config", None)
    settings = getattr(vllm_config, "profiler_config", None)
    if settings is None or settings.profiler != "torch" or not settings.torch_profiler_dir:
        return None
    return profile_dir(settings.torch_profiler_dir)


def bounds_its_profile(llm: LLM) -> bool:
    """Whether ``llm.start_profile`` takes ``max_iterations`` (vLLM's worker then stops after
    that many steps by itself); vLLM 0.25's takes only the trace prefix."""
    try:
        return "max_iterations" in inspect.signature(llm.start_profile).parameters
    except (TypeError, ValueError):  # a callable without a signature Python can read
        return False


class Phase(Enum):
    WARMING_UP = "warming up"
    RECORDING = "recording"
    DONE = "done"


class EngineProfiler:
    """Step hook: ``warmup`` steps, then vLLM's profiler for the next ``steps`` engine steps.

    Call ``close()`` when the run ends (``vlmcap.debug.steps.close_hooks``): it stops a
    profile that is still on, and returns the trace paths (also in ``summary``).
    """

    def __init__(
        self,
        llm: LLM,
        directory: str | os.PathLike[str],
        steps: int,
        *,
        warmup: int | None = None,
        prefix: str | None = None,
        top: int = DEFAULT_TOP,
    ) -> None:
        if steps < 1:
            raise ValueError(f"profile at least one step, not {steps}")
        self.llm = llm
        self.directory = profile_dir(directory)
        self.steps = steps
        self.warmup = steps if warmup is None else warmup
        self.prefix = prefix or new_prefix()
        self.top = top
        self.phase = Phase.WARMING_UP
        self.started_after: int | None = None  # the step index after which it started
        self.stopped_after: int | None = None
        self.bounded = True  # vLLM stops recording by itself (set when the profile starts)
        self.summary: ProfileSummary | None = None

    @classmethod
    def from_config(cls, config: VLMConfig, llm: LLM) -> EngineProfiler:
        if config.profile is None:
            raise ValueError("config.profile is not set")
        return cls(llm, config.profile, config.profile_steps)

    def __call__(self, info: StepInfo) -> None:
        if self.phase is Phase.WARMING_UP and info.index >= self.warmup:
            self._start(info.index)
        elif self.phase is Phase.RECORDING and self.started_after is not None:
            passed = info.index - self.started_after
            if passed >= self.steps and (
                not self.bounded
                or find_traces(self.directory, self.prefix)
                or passed >= self.steps + max(self.steps, MIN_EXTRA_WAIT_STEPS)
            ):
                self._stop(info.index)

    def _start(self, index: int) -> None:
        engine_dir = engine_profile_dir(self.llm)
        if engine_dir is None:
            self.phase = Phase.DONE
            logger.warning(
                "profile: the engine was started without vLLM's torch profiler "
                "(--profile): nothing profiled"
            )
            return
        if engine_dir != self.directory:
            logger.warning(
                "profile: the engine writes its traces into %s, not %s", engine_dir, self.directory
            )
            self.directory = engine_dir
        self.directory.mkdir(parents=True, exist_ok=True)
        self.bounded = bounds_its_profile(self.llm)
        try:
            if self.bounded:
                self.llm.start_profile(self.prefix, max_iterations=self.steps)
            else:
                self.llm.start_profile(self.prefix)
        except Exception as exc:  # noqa: BLE001 - vLLM raises a plain Exception for a worker error
            self.phase = Phase.DONE
            logger.warning(
                "profile: cannot start vLLM's profiler (was the engine started with "
                "--profile?): %s",
                exc,
            )
            return
        self.phase = Phase.RECORDING
        self.started_after = index
        logger.info(
            "profile: recording %d engine steps after step %d into %s (traces %s*)",
            self.steps,
            index,
            self.directory,
            self.prefix,
        )

    def _stop(self, index: int | None) -> None:
        self.phase = Phase.DONE
        self.stopped_after = index
        try:
            self.llm.stop_profile()
        except Exception as exc:  # noqa: BLE001 - vLLM raises a plain Exception for a worker error
            logger.warning("profile: stopping vLLM's profiler failed: %s", exc)
        self.summary = summarise(self.directory, self.prefix, self.top)
        log_summary(self.summary)

    def close(self) -> list[Path]:
        """End of the run: stop a profile still on; the trace paths (none if it never began)."""
        if self.phase is Phase.RECORDING:
            logger.info("profile: the run ended before %d profiled steps: stopping", self.steps)
            self._stop(None)
        elif self.phase is Phase.WARMING_UP:
            self.phase = Phase.DONE
            logger.warning(
                "profile: the run ended within the %d warm-up steps: nothing profiled",
                self.warmup,
            )
        return list(self.summary.traces) if self.summary is not None else []
