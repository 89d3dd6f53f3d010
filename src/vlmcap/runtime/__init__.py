"""Process life of a run: nothing it starts outlives it, and every way it ends is an orderly one.

- ``guard_children()`` (``guard.py``): a watcher process that stops the run's descendants (vLLM's
  engine core, its workers, an API server) when the run dies, even by SIGKILL.
- ``before_engine_start()`` and ``shutdown_llm()`` (``engine.py``): an offline ``vllm.LLM`` is
  guarded from its start and stopped explicitly and quietly.
- ``stop_on_signals()`` (``signals.py``): SIGTERM and SIGINT raise ``Interrupted``, so a stopped run
  unwinds through its ``finally`` blocks.

Only the standard library is imported here (the watcher's psutil code loads on use), so importing
this package costs nothing in the CLI's start-up.
"""

from vlmcap.runtime.engine import before_engine_start, shutdown_llm
from vlmcap.runtime.guard import ChildGuard, guard_children
from vlmcap.runtime.signals import (
    HANG_EXIT_STATUS,
    HangAbort,
    Interrupted,
    StopSignals,
    abort_stuck_run,
    stop_on_signals,
)

__all__ = [
    "HANG_EXIT_STATUS",
    "ChildGuard",
    "HangAbort",
    "Interrupted",
    "StopSignals",
    "abort_stuck_run",
    "before_engine_start",
    "guard_children",
    "shutdown_llm",
    "stop_on_signals",
]
