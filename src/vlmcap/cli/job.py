"""The part every job command shares: pick the backend, keep the process tidy, map outcomes to
exit statuses.

    run_job(config, client, open_store, work)
      stop_on_signals()                 # SIGTERM/SIGINT unwind through the finally below
      open_server(config, client)       # None: offline (no --server-url / --server-url-file)
      plugin, store = open_store(...)   # the output folder is locked before the engine starts
      backend: ServerBackend or OfflineBackend(plugin.build_llm(config))
      work(backend, plugin, store, server_url, live) -> exit status  (signals raise only here)
                                        # live: the run's Progress, watched by the hang
                                        # watchdog (vlmcap.monitor.watch) meanwhile
      finally: store closed (rows flushed, lock released), then the engine shut down; a signal
               during this clean-up is only recorded, so it runs to its end

Exit status: ``work``'s; 2 for bad usage or a server that is not usable; 143 after SIGTERM,
130 after SIGINT, 124 when the hang watchdog stopped it (``--on-hang abort``); the rows written
stay, and the same command resumes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from vlmcap.cli.errors import usage_error
from vlmcap.debug.terminal import say

if TYPE_CHECKING:
    from vllm import LLM

    from vlmcap.config import VLMConfig
    from vlmcap.core.progress import Progress
    from vlmcap.monitor.source import SnapshotSource
    from vlmcap.options import ClientOptions, MonitorOptions
    from vlmcap.pipeline.backend import Backend
    from vlmcap.plugins.base import VLMPlugin
    from vlmcap.sinks.store import RecordStore

#: ``work(backend, plugin, store, server_url, live)`` -> exit status.
Work = Callable[["Backend", "VLMPlugin", "RecordStore", "str | None", "Progress"], int]


def run_job(
    config: VLMConfig,
    client: ClientOptions,
    open_store: Callable[[VLMPlugin], RecordStore],
    work: Work,
    monitor: MonitorOptions | None = None,
) -> int:
    """Run ``work`` on the backend ``config``/``client`` name, watched as ``monitor`` says;
    its exit status."""
    from vlmcap.client.connect import ServerError, open_server
    from vlmcap.monitor.watch import live_progress, watch_job
    from vlmcap.options import MonitorOptions
    from vlmcap.pipeline.backend import OfflineBackend, ServerBackend
    from vlmcap.plugins.registry import UnknownModelError, get_plugin
    from vlmcap.runtime import Interrupted, abort_stuck_run, shutdown_llm, stop_on_signals
    from vlmcap.sinks.lock import LockedError

    store = llm = None
    status = 0
    with stop_on_signals() as signals, signals.shield():  # SIGTERM/SIGINT: only in the work...
        try:
            with signals.raising():  # ...raise Interrupted; the clean-up below always runs
                try:
                    server = open_server(config, client)  # None without --server-url(-file)
                    plugin = get_plugin(config.model, config.model_path)
                    store = open_store(plugin)  # locked before the slow engine start
                except (UnknownModelError, LockedError, ServerError, ValueError) as exc:
                    usage_error(str(exc))
                backend: Backend
                if server is not None:
                    backend = ServerBackend(server, plugin, config)
                else:
                    llm = start_engine(plugin, config)
                    backend = OfflineBackend(llm, plugin, config)
                watching = monitor or MonitorOptions()
                live = live_progress(watching)
                source = snapshot_source(backend, live)
                with watch_job(live, watching, source=source, on_abort=abort_stuck_run):
                    url = server.url if server is not None else None
                    status = work(backend, plugin, store, url, live)
        except ServerError as exc:
            usage_error(str(exc))
        except Interrupted as exc:
            say(f"{exc.name}: stopped; the rows written are kept (rerun to resume)")
        finally:
            try:
                if store is not None:
                    store.close()  # rows flushed and lock released before the slower engine
            finally:
                if llm is not None:
                    shutdown_llm(llm)
    return signals.exit_status(status)


def start_engine(plugin: VLMPlugin, config: VLMConfig) -> LLM:
    """The offline engine, its slow start watched; vLLM's records reach the job's log files,
    and what vLLM and PyTorch warned about while loading is listed once it has loaded."""
    from vlmcap.debug.logging import current_session
    from vlmcap.monitor.startup import StartupWatch

    logs = current_session()
    if logs is not None:
        import vllm.logger  # noqa: F401 - vLLM configures its logger on import

        logs.adopt_vllm_logger()
    with StartupWatch(f"loading {plugin.variant}"):
        llm = plugin.build_llm(config)
    if logs is not None:
        logs.report_notices()
    return llm


def snapshot_source(backend: Backend, live: Progress) -> SnapshotSource:
    """Where the job's health snapshots come from: the engine here, or the server."""
    from vlmcap.monitor import EngineSource, ServerSource
    from vlmcap.pipeline.backend import OfflineBackend, ServerBackend

    if isinstance(backend, OfflineBackend):
        return EngineSource(backend.llm, live)
    if isinstance(backend, ServerBackend):
        settings = backend.settings
        return ServerSource(settings.url, api_key=settings.resolved_api_key, progress=live)
    raise TypeError(f"no health snapshots for a {type(backend).__name__}")
