"""The part every job command shares: pick the backend, keep the process tidy, map outcomes to
exit statuses.

    run_job(config, client, open_store, work)
      stop_on_signals()                 # SIGTERM/SIGINT unwind through the finally below
      open_server(config, client)       # None: offline (no --server-url / --server-url-file)
      plugin, store = open_store(...)   # the output folder is locked before the engine starts
      job_debug(...)                    # debugging switches (vlmcap.debug.session)
      backend: ServerBackend or OfflineBackend(plugin.build_llm(config))
      work(backend, plugin, store, server_url, live) -> exit status  (signals raise only here)
                                        # live: the run's Progress, watched by the hang
                                        # watchdog (vlmcap.monitor.watch) meanwhile
                                        # a failure: explained if memory ran out
      finally: store closed (rows flushed, lock released), debug summaries, then the engine
               shut down; a signal during this clean-up is only recorded, so it runs to its end

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

    from vlmcap.client.openai_client import ClientConfig
    from vlmcap.config import VLMConfig
    from vlmcap.core.progress import Progress
    from vlmcap.debug.session import JobDebug
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
    from vlmcap.pipeline.backend import OfflineBackend, ServerBackend
    from vlmcap.plugins.registry import UnknownModelError, get_plugin
    from vlmcap.runtime import Interrupted, shutdown_llm, stop_on_signals
    from vlmcap.sinks.lock import LockedError

    store = llm = debug = None
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
                debug = job_debug(config, plugin, store, server)
                backend: Backend
                try:
                    if server is not None:
                        backend = ServerBackend(server, plugin, config, debugger=debug.requests)
                    else:
                        llm = start_engine(plugin, config)
                        backend = OfflineBackend(llm, plugin, config, debugger=debug.requests)
                    debug.engine_ready()
                    url = server.url if server is not None else None
                    status = _watched(backend, plugin, store, url, work, monitor, debug)
                except Exception as exc:
                    debug.explain(exc)  # out of memory: what to change (then raised on)
                    raise
        except ServerError as exc:
            usage_error(str(exc))
        except Interrupted as exc:
            say(f"{exc.name}: stopped; the rows written are kept (rerun to resume)")
        finally:
            try:
                if store is not None:
                    store.close()  # rows flushed and lock released before the slower engine
            finally:
                try:
                    if debug is not None:
                        debug.finish()  # the engine's memory at the end: before it stops
                finally:
                    if llm is not None:
                        shutdown_llm(llm)
    return signals.exit_status(status)


def _watched(
    backend: Backend,
    plugin: VLMPlugin,
    store: RecordStore,
    url: str | None,
    work: Work,
    monitor: MonitorOptions | None,
    debug: JobDebug,
) -> int:
    """``work`` with the hang watchdog, monitor, metrics endpoint and debug switches on."""
    from vlmcap.monitor.watch import live_progress, watch_job
    from vlmcap.options import MonitorOptions
    from vlmcap.runtime import abort_stuck_run

    watching = monitor or MonitorOptions()
    live = live_progress(watching)
    debug.watch(live, backend)
    source = snapshot_source(backend, live)
    with watch_job(live, watching, source=source, on_abort=abort_stuck_run):
        return work(backend, plugin, store, url, live)


def job_debug(
    config: VLMConfig, plugin: VLMPlugin, store: RecordStore, server: ClientConfig | None
) -> JobDebug:
    """The debugging switches of this job, beside its run log (else in OUTPUT_DIR/logs),
    started before the engine loads."""
    from vlmcap.debug.logging import LOGS_DIR, current_session
    from vlmcap.debug.session import JobDebug

    logs = current_session()
    run_log = logs.run_log if logs is not None else None
    log_dir = run_log.parent if run_log is not None else store.output_dir / LOGS_DIR
    debug = JobDebug(config, plugin, store.output_dir, log_dir, run_log)
    debug.before_engine(server)
    return debug


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
