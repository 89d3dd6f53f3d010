"""vLLM's server as a child process: start it, wait for ``/health``, pass signals on, stop it.

The command comes from ``server_command`` (``vlmcap.server.command``). The child runs in
its own session; on Linux it is also told to exit when ``vlmcap serve`` dies, so no orphaned
server keeps a port or a GPU.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import errno
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
from typing import IO

import psutil

from vlmcap.server.command import ServerStartError

logger = logging.getLogger(__name__)

#: Seconds a stopping server may linger after its engine processes are gone (it is then only
#: waiting for open connections to close) before it is killed.
LINGER_S = 3.0


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
