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
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape

from vlmcap.cli.errors import usage_error

if TYPE_CHECKING:
    from vlmcap.server.command import ServeOptions
    from vlmcap.server.process import ServerProcess

logger = logging.getLogger(__name__)
err = Console(stderr=True)
out = Console()


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


def serve(
    model: str = typer.Option(None, "--model", "-m", help="Model variant (`vlmcap models`)."),
    model_path: str = typer.Option(None, help="Local weights folder or hub id."),
    config_file: Path = typer.Option(
        None, "--config", "-c", help="YAML/TOML file with model/engine options (as for caption)."
    ),
    host: str = typer.Option(
        "127.0.0.1", help="Address to listen on; 0.0.0.0 for other machines (use --api-key)."
    ),
    port: int = typer.Option(8000, help="Port to listen on."),
    tp: int = typer.Option(None, "--tp", help="Tensor-parallel size (GPUs) [1]."),
    max_model_len: int = typer.Option(None, help="Context length (default: the plugin's)."),
    gpu_memory_utilization: float = typer.Option(
        None, help="Memory fraction vLLM may use [0.85 GPU, 0.3 of RAM on CPU]."
    ),
    enforce_eager: bool = typer.Option(
        None, "--enforce-eager/--no-enforce-eager", help="Skip CUDA graphs (faster start)."
    ),
    api_key: str = typer.Option(
        None, "--api-key", help="Clients must send this key [$VLLM_API_KEY]."
    ),
    url_file: Path = typer.Option(
        None, help="Once ready, write the URL clients can reach here; removed on shutdown."
    ),
    startup_timeout: float = typer.Option(900.0, help="Seconds to wait for the server."),
    print_command: bool = typer.Option(
        False, "--print-command", help="Print the vLLM command and exit."
    ),
    extra_args: list[str] = typer.Argument(
        None, help="Extra vLLM server arguments, after `--` (they override ours)."
    ),
) -> None:
    """Serve a model over vLLM's OpenAI-compatible API for `vlmcap caption --server-url`.

    Example: vlmcap serve --model qwen2.5-vl --url-file run/server.url -- --max-num-seqs 64
    """
    from vlmcap.cli.options import build_config
    from vlmcap.config import ConfigError
    from vlmcap.plugins.registry import UnknownModelError, get_plugin
    from vlmcap.server.command import (
        ServeOptions,
        ServerStartError,
        server_command,
        server_env,
        vllm_parser,
    )
    from vlmcap.server.process import ServerProcess, port_problem

    options = {
        "model": model,
        "model_path": model_path,
        "tensor_parallel_size": tp,
        "max_model_len": max_model_len,
        "gpu_memory_utilization": gpu_memory_utilization,
        "enforce_eager": enforce_eager,
    }
    try:
        config = build_config(config_file, options)
        plugin = get_plugin(config.model, config.model_path)
        opts = ServeOptions(
            host=host,
            port=port,
            api_key=api_key,
            url_file=url_file,
            extra_args=tuple(extra_args or ()),
            startup_timeout_s=startup_timeout,
        )
        problem = None if print_command else port_problem(host, port)
        if problem is not None:
            raise ValueError(problem)
        command = server_command(plugin, config, opts, parser=vllm_parser())
    except (ConfigError, UnknownModelError, ValueError, ServerStartError) as exc:
        usage_error(str(exc))
    if print_command:
        out.print(shlex.join(command), soft_wrap=True, markup=False, highlight=False)
        raise typer.Exit(0)
    if not opts.loopback and not (api_key or os.environ.get("VLLM_API_KEY")):
        err.print(
            f"[yellow]warning:[/yellow] listening on {escape(host)} without an API key: anyone "
            "who can reach this port can use the server; pass --api-key (clients: --api-key or "
            "$OPENAI_API_KEY)"
        )
    raise typer.Exit(_run(ServerProcess(command, server_env(opts)), opts, plugin.variant))


def _run(server: ServerProcess, opts: ServeOptions, model: str) -> int:
    """Start ``server``, announce it, wait for a signal or its death; the exit status."""
    from vlmcap.server.command import ServerStartError
    from vlmcap.server.url_file import remove_url_file, write_url_file

    stopper = _Stopper()
    previous = {s: signal.signal(s, stopper) for s in (signal.SIGINT, signal.SIGTERM)}
    written = False
    try:
        err.print(f"starting the vLLM server for {escape(model)} on {escape(opts.local_url)}...")
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
        if written and opts.url_file is not None:
            remove_url_file(opts.url_file, opts.url)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
