"""The part every job command shares: pick the backend, keep the process tidy, map outcomes to
exit statuses.

    run_job(config, client, open_store, work)
      stop_on_signals()                 # SIGTERM/SIGINT unwind through the finally below
      open_server(config, client)       # None: offline (no --server-url / --server-url-file)
      plugin, store = open_store(...)   # the output folder is locked before the engine starts
      job_debug(...)                    # debugging switches (vlmcap.debug.session)
      backend: ServerBackend, RayBackend (--ray: engines are actors on the cluster), or
               OfflineBackend(plugin.build_llm(config))
      work(backend, plugin, store, server_url, live) -> exit status  (signals raise only here)
                                        # live: the run's Progress, watched by the hang
                                        # watchdog (vlmcap.monitor.watch) meanwhile
                                        # a failure: explained if memory ran out
      finally: store closed (rows flushed, lock released), debug summaries, then the engine
               shut down; a signal during this clean-up is only recorded, so it runs to its end

Exit status: ``work``'s; 2 for bad usage or a server that is not usable; 143 after SIGTERM,
130 after SIGINT, 124 when the hang watchdog stopped it (``--on-hang abort``), 75 when the
offline engine died more often than ``--engine-restarts`` allows, 74 (``DISK_FULL_STATUS``)
when a file of the job could not be written because its disk or quota is full (one line names
it; a log file that filled up is only reported at the end, see ``vlmcap.sinks.disk_full``);
the rows written stay, and the same command resumes.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from vlmcap.cli.errors import usage_error
from vlmcap.debug.terminal import say
from vlmcap.sinks.disk_full import DiskFullError, LogGuard, as_disk_full

if TYPE_CHECKING:
    from vllm import LLM

    from vlmcap.client.openai_client import ClientConfig
    from vlmcap.config import VLMConfig
    from vlmcap.core.progress import Progress
    from vlmcap.debug.session import JobDebug
    from vlmcap.monitor.source import SnapshotSource
    from vlmcap.options import ClientOptions, MonitorOptions, RayOptions
    from vlmcap.pipeline.backend import AnyBackend
    from vlmcap.plugins.base import VLMPlugin
    from vlmcap.sinks.store import RecordStore

#: Exit status when the offline engine died more often than ``--engine-restarts`` allows, or a
#: Ray job could not go on (sysexits' EX_TEMPFAIL: the rows written stay, a rerun resumes).
ENGINE_LOST_STATUS = 75
#: Exit status when an output or log file could not be written for lack of space (sysexits'
#: EX_IOERR): every row written so far is complete, a rerun resumes after the last one.
DISK_FULL_STATUS = 74

#: ``work(backend, plugin, store, server_url, live)`` -> exit status.
Work = Callable[["AnyBackend", "VLMPlugin", "RecordStore", "str | None", "Progress"], int]


def run_job(
    config: VLMConfig,
    client: ClientOptions,
    open_store: Callable[[VLMPlugin], RecordStore],
    work: Work,
    monitor: MonitorOptions | None = None,
    ray: RayOptions | None = None,
) -> int:
    """Run ``work`` on the backend ``config``/``client``/``ray`` name, watched as ``monitor``
    says; its exit status."""
    from vlmcap.client.connect import ServerError
    from vlmcap.core.recovery import EngineLost
    from vlmcap.distributed.backend import ClusterLost
    from vlmcap.plugins.registry import UnknownModelError, get_plugin
    from vlmcap.runtime import Interrupted, shutdown_llm, stop_on_signals
    from vlmcap.sinks.lock import LockedError

    store = debug = None
    engines: list[LLM] = []  # every offline engine started: the first, then each restart's
    status = 0
    with (
        stop_on_signals() as signals,
        signals.shield(),  # SIGTERM/SIGINT: only in the work...
        LogGuard() as logs,  # a log file on a full disk: no traceback, said at the end
    ):
        try:
            with signals.raising():  # ...raise Interrupted; the clean-up below always runs
                try:
                    server = _open_server(config, client, ray)  # None: no --server-url(-file)
                    plugin = get_plugin(config.model, config.model_path)
                    store = open_store(plugin)  # locked before the slow engine start
                except (UnknownModelError, LockedError, ServerError, ValueError) as exc:
                    usage_error(str(exc))
                debug = job_debug(config, plugin, store, server)
                try:
                    backend = _backend(server, plugin, config, debug, engines, ray)
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
        except (EngineLost, ClusterLost) as exc:
            status = _engine_lost_status(exc)
        except OSError as exc:
            status = _disk_full_status(exc)  # raised on unless the disk is full
        finally:
            try:
                if store is not None:
                    status = _close_store(store, status)  # before the slower engine shutdown
            finally:
                try:
                    if debug is not None:
                        debug.finish()  # the engine's memory at the end: before it stops
                finally:
                    for engine in engines:
                        shutdown_llm(engine)  # idempotent: the dead ones are quick
    return signals.exit_status(_log_status(logs, status))


def _engine_lost_status(exc: Exception) -> int:
    """Say why the engines are gone for good; ``ENGINE_LOST_STATUS``."""
    from vlmcap.core.recovery import EngineLost

    if isinstance(exc, EngineLost):
        say(f"error: the engine died and no restart is left: {exc}")
    else:
        say(f"error: the Ray job cannot go on: {exc}; the rows written stay (rerun resumes)")
    return ENGINE_LOST_STATUS


def _open_server(
    config: VLMConfig, client: ClientOptions, ray: RayOptions | None
) -> ClientConfig | None:
    """The server to caption through (None: offline or on Ray); raises ``ServerError``."""
    from vlmcap.client.connect import open_server

    if ray is not None and ray.ray and (client.server_url or client.server_url_file):
        raise ValueError("give --ray or --server-url, not both")
    return open_server(config, client)


def _disk_full_status(exc: OSError) -> int:
    """``DISK_FULL_STATUS`` once ``exc`` is reported, if it says the disk is full; else it is
    raised again."""
    full = as_disk_full(exc)
    if full is None:
        raise exc
    return _report_disk_full(full)


def _report_disk_full(error: DiskFullError) -> int:
    """Say on one line which file did not fit and what to do (the text is the error's)."""
    say(f"error: {error}")
    return DISK_FULL_STATUS


def _close_store(store: RecordStore, status: int) -> int:
    """Close ``store`` (rows flushed, lock released); a disk found full only now is reported
    like one found during the work; ``status`` otherwise."""
    try:
        store.close()
    except DiskFullError as exc:
        return status if status == DISK_FULL_STATUS else _report_disk_full(exc)
    return status


def _log_status(logs: LogGuard, status: int) -> int:
    """``status``; ``DISK_FULL_STATUS`` once reported when only a log file found its disk full
    (the rows were saved, the log lacks lines)."""
    if logs.failure is None or status == DISK_FULL_STATUS:
        return status
    return _report_disk_full(logs.failure)


def _backend(
    server: ClientConfig | None,
    plugin: VLMPlugin,
    config: VLMConfig,
    debug: JobDebug,
    engines: list[LLM],
    ray: RayOptions | None = None,
) -> AnyBackend:
    """The job's backend: the server's, engine actors on a Ray cluster, or an offline engine
    (started here, and again after each death the engine-restart budget allows; every one is
    added to ``engines``)."""
    from vlmcap.options.base import ConfigError
    from vlmcap.pipeline.backend import OfflineBackend, ServerBackend

    if ray is not None and ray.ray:
        from vlmcap.distributed import RayBackend

        try:  # said before anything starts
            importlib.import_module("ray.data")
        except ImportError:
            usage_error("--ray needs Ray Data: pip install 'vlmcap[ray]'")

        if debug.requests is not None:
            say("warning: request dumps and logprobs are not kept on Ray (the engines are there)")
        remote = RayBackend(plugin, config, ray)
        try:
            remote.start()  # the cluster, and whether it can hold the engines
        except ConfigError as exc:
            usage_error(str(exc))
        return remote
    if server is not None:
        return ServerBackend(server, plugin, config, debugger=debug.requests)
    engines.append(start_engine(plugin, config))
    backend = OfflineBackend(
        engines[0],
        plugin,
        config,
        debugger=debug.requests,
        rebuild=lambda: start_engine(plugin, config),
    )
    backend.on_restart.append(engines.append)
    return backend


def _watched(
    backend: AnyBackend,
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


def snapshot_source(backend: AnyBackend, live: Progress) -> SnapshotSource:
    """Where the job's health snapshots come from: the engine here, the server, or (Ray) this
    driver's process and progress only."""
    from vlmcap.monitor import EngineSource, LocalSource, ServerSource
    from vlmcap.pipeline.backend import OfflineBackend, RemoteBackend, ServerBackend

    if isinstance(backend, RemoteBackend):
        return LocalSource(live, name="ray")

    if isinstance(backend, OfflineBackend):
        source = EngineSource(backend.llm, live)
        backend.on_restart.append(lambda new: setattr(source, "llm", new))
        return source
    if isinstance(backend, ServerBackend):
        settings = backend.settings
        return ServerSource(settings.url, api_key=settings.resolved_api_key, progress=live)
    raise TypeError(f"no health snapshots for a {type(backend).__name__}")
