"""A job's debugging switches around its engine start and its run, in one object.

``vlmcap.cli.job.run_job`` calls it at fixed points::

    debug = JobDebug(config, log_dir)
    debug.before_engine(server)           # --memory-report: "start"
    debug.requests                        # --debug-request/--debug-first/--logprobs: given
                                          # to the backend (vlmcap.debug.request_dump)
    ...engine (or server connection)...
    debug.engine_ready()                  # "loaded"
    debug.watch(live, backend)            # per --memory-every items; --profile with a server
    ...the run...                         # a failure: debug.explain(exc) (out of memory?)
    debug.finish()                        # "end", summaries on the terminal

Everything here is off, and costs nothing, unless its switch is given.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from vlmcap.debug import terminal

if TYPE_CHECKING:
    from vlmcap.client.openai_client import ClientConfig
    from vlmcap.config import VLMConfig
    from vlmcap.core.progress import Progress
    from vlmcap.debug.memory import MemoryReport
    from vlmcap.debug.request_dump import RequestDebugger
    from vlmcap.debug.server_profiler import ServerProfiler
    from vlmcap.pipeline.backend import AnyBackend
    from vlmcap.plugins.base import VLMPlugin

logger = logging.getLogger(__name__)

#: How much of the run log an out-of-memory explanation searches (the engine's own message
#: is in its process's output, not in the exception this process sees).
LOG_TAIL_BYTES = 256 * 1024


class JobDebug:
    """The switches of ``config`` for one job; ``log_dir`` holds the memory report, and the
    request dumps go to ``output_dir``/debug."""

    def __init__(
        self,
        config: VLMConfig,
        plugin: VLMPlugin,
        output_dir: Path,
        log_dir: Path,
        run_log: Path | None = None,
    ) -> None:
        """``run_log``: the job's run log (``vlmcap.debug.logging``), if it has one."""
        from vlmcap.debug.request_dump import RequestDebugger

        self.config = config
        self.log_dir = log_dir
        self.run_log = run_log
        self.memory: MemoryReport | None = None
        self.server_profiler: ServerProfiler | None = None
        self.requests: RequestDebugger | None = RequestDebugger.from_config(
            config, plugin, output_dir
        )

    def before_engine(self, server: ClientConfig | None) -> None:
        if self.config.memory_report:
            from vlmcap.debug.memory import MemoryReport

            name = f"{self.run_log.stem}.memory.json" if self.run_log else "memory.json"
            self.memory = MemoryReport(
                self.log_dir / name,
                every=self.config.memory_every,
                engine_children=server is None,
            )
            self.memory.checkpoint("start")

    def engine_ready(self) -> None:
        if self.memory is not None:
            self.memory.checkpoint("loaded")

    def watch(self, live: Progress, backend: AnyBackend) -> None:
        """Follow the run: memory checkpoints, and through a server its profiler (offline,
        the engine's step hook does that: ``vlmcap.debug.steps``)."""
        from vlmcap.pipeline.backend import ServerBackend

        if self.memory is not None:
            self.memory.follow(live)
        if isinstance(backend, ServerBackend) and self.config.profile is not None:
            from vlmcap.debug.server_profiler import ServerProfiler

            settings = backend.settings
            self.server_profiler = ServerProfiler.from_config(
                self.config, settings.url, settings.resolved_api_key
            )
            self.server_profiler.follow(live)  # stops itself after --profile-steps requests

    def explain(self, exc: BaseException) -> None:
        """Out of memory: what ran out, the memory now, and which options to change."""
        from vlmcap.debug.oom import oom_advice

        advice = oom_advice(exc, self.config, report=self.memory, log_text=self._log_tail())
        if advice is not None:
            logger.error("%s", advice)

    def finish(self) -> None:
        if self.server_profiler is not None:
            self.server_profiler.finish()  # stopped if fewer requests ran; summarised if here
        if self.memory is not None:
            terminal.say(self.memory.finish())

    def _log_tail(self) -> str | None:
        if self.run_log is None or not self.run_log.exists():
            return None
        with self.run_log.open("rb") as fh:
            size = fh.seek(0, 2)
            fh.seek(max(0, size - LOG_TAIL_BYTES))
            return fh.read().decode("utf-8", errors="replace")
