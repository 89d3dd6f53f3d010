"""``vlmcap serve --model VARIANT``: one vLLM OpenAI-compatible server for many caption clients.

Builds the server's arguments from the plugin and config (``vlmcap.server.command``),
starts it as a child process, waits for ``/health``, prints the URL and model name and writes the
URL file, then stays in the foreground until SIGINT/SIGTERM, which it passes on before it removes
the URL file. Exit status: 0 after a requested shutdown, 1 when the server failed to start or
died, 2 bad usage (a taken port, an unknown model...).
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import sys
import time
from types import FrameType
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from vlmcap.cli.errors import usage_error
from vlmcap.debug import terminal
from vlmcap.options import SERVE, HealthLogOptions, LogOptions, ServerOptions
from vlmcap.options.cli import command_line_values, with_options

if TYPE_CHECKING:
    from vlmcap.monitor.background import BackgroundMonitor
    from vlmcap.monitor.snapshot_server import SnapshotServer
    from vlmcap.server.command import ServeOptions
    from vlmcap.server.process import ServerProcess

logger = logging.getLogger(__name__)
err = terminal.console(stderr=True)
out = terminal.console()


class _Stopper:
    """Signal handler: the first SIGINT/SIGTERM asks for a shutdown (the main loop passes that
    signal on to the server, once); a second one kills the server."""

    def __init__(self) -> None:
        self.requested: int | None = None
        self.server: ServerProcess | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.requested is None:
            self.requested = signum
            err.print(f"{signal.Signals(signum).name}: stopping the vLLM server...")
        elif self.server is not None:
            err.print("stopping now (SIGKILL)")
            self.server.send_signal(signal.SIGKILL)


@with_options(SERVE)
def serve(**given: Any) -> None:
    """Serve a model over vLLM's OpenAI-compatible API for `vlmcap caption --server-url`.

    Every engine option applies (on the command line or in a --config file). Example:
    vlmcap serve --model qwen2.5-vl --url-file run/server.url -- --max-num-seqs 64
    """
    from vlmcap.config import ConfigError, VLMConfig
    from vlmcap.plugins.registry import UnknownModelError, get_plugin
    from vlmcap.server.command import (
        ServeOptions,
        ServerStartError,
        server_command,
        server_env,
        vllm_parser,
    )
    from vlmcap.server.process import ServerProcess, port_problem

    try:
        parsed = SERVE.resolve(command_line_values(SERVE, given))
        config = parsed.build(VLMConfig)
        server_options = parsed.build(ServerOptions)
        print_command = server_options.print_command
        interval = parsed.build(HealthLogOptions).monitor_interval
        logs = parsed.build(LogOptions)
        plugin = get_plugin(config.model, config.model_path)
        opts = ServeOptions.from_options(server_options)
        problem = None if print_command else port_problem(opts.host, opts.port)
        if problem is not None:
            raise ValueError(problem)
        command = server_command(plugin, config, opts, parser=vllm_parser())
    except (ConfigError, UnknownModelError, ValueError, ServerStartError) as exc:
        usage_error(str(exc))
    if print_command:
        out.print(shlex.join(command), soft_wrap=True, markup=False, highlight=False)
        raise typer.Exit(0)
    if not opts.loopback and not (opts.api_key or os.environ.get("VLLM_API_KEY")):
        err.print(
            f"[yellow]warning:[/yellow] listening on {escape(opts.host)} without an API key: "
            "anyone who can reach this port can use the server; pass --api-key (clients: "
            "--api-key or $OPENAI_API_KEY)"
        )
    from vlmcap.debug.logging import job_logging

    server = ServerProcess(command, server_env(opts, config))
    with job_logging(logs, None, "serve"):  # the server's own output stays on the terminal
        status = _run(server, opts, plugin.variant, interval)
    raise typer.Exit(status)


def _snapshot_server(opts: ServeOptions, port: int) -> SnapshotServer:
    """Health snapshots of the running server on ``--snapshot-port``, bound like it."""
    from vlmcap.monitor import ServerSource
    from vlmcap.monitor.snapshot_server import SnapshotServer

    source = ServerSource(opts.local_url, api_key=opts.api_key)
    snapshots = SnapshotServer(source, opts.host, port).start()
    err.print(f"health snapshots on {escape(snapshots.url)} (and /snapshot.txt)")
    return snapshots


def _background_monitor(opts: ServeOptions, interval: float | None) -> BackgroundMonitor | None:
    """The server's health in this process's log every ``interval`` seconds (or as the
    environment says: ``VLMCAP_MONITOR=1``...); None when off."""
    from vlmcap.monitor import ServerSource
    from vlmcap.monitor.background import BackgroundMonitor, monitor_from_env

    every = interval or monitor_from_env()
    if every is None:
        return None
    monitor = BackgroundMonitor(ServerSource(opts.local_url, api_key=opts.api_key), every)
    monitor.start()
    return monitor


def _run(server: ServerProcess, opts: ServeOptions, model: str, interval: float | None) -> int:
    """Start ``server``, announce it, wait for a signal or its death; the exit status.

    ``interval``: ``--monitor-interval`` (health snapshots logged while it serves)."""
    from vlmcap.runtime import guard_children
    from vlmcap.server.command import ServerStartError
    from vlmcap.server.url_file import remove_url_file, write_url_file

    stopper = _Stopper()
    previous = {s: signal.signal(s, stopper) for s in (signal.SIGINT, signal.SIGTERM)}
    written = False
    snapshots = monitor = None
    try:
        err.print(f"starting the vLLM server for {escape(model)} on {escape(opts.local_url)}...")
        guard_children()  # even a SIGKILL of this process takes the server's engine with it
        server.start()
        stopper.server = server
        try:
            took = server.wait_healthy(
                opts.local_url, opts.startup_timeout_s, lambda: stopper.requested is not None
            )
        except ServerStartError as exc:
            if stopper.requested is not None:
                server.stop(opts.stop_timeout_s)
                return 0
            server.stop(10)
            err.print(f"[red]error:[/red] {escape(str(exc))}")
            return 1
        if opts.snapshot_port is not None:
            snapshots = _snapshot_server(opts, opts.snapshot_port)
        monitor = _background_monitor(opts, interval)
        if opts.url_file is not None:
            write_url_file(opts.url_file, opts.url)
            written = True
        out.print(
            f"vLLM server ready in {took:.0f} s: {opts.url} (model {model})\n"
            f"caption with: vlmcap caption PATH... --server-url {opts.url}",
            soft_wrap=True,
            markup=False,
            highlight=False,
        )
        sys.stdout.flush()
        while server.poll() is None:
            if stopper.requested is not None:
                code = server.stop(opts.stop_timeout_s, stopper.requested)
                err.print(f"vLLM server stopped (status {code})")
                return 0
            time.sleep(0.2)
        code = server.poll()
        if stopper.requested is not None:
            return 0
        err.print(
            f"[red]error:[/red] the vLLM server exited on its own with status {code}; the end "
            f"of its log:\n{escape(server.tail())}"
        )
        return 1
    finally:
        if monitor is not None:
            monitor.stop()
        if snapshots is not None:
            snapshots.stop()
        if written and opts.url_file is not None:
            remove_url_file(opts.url_file, opts.url)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
