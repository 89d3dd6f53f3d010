"""One real ``vlmcap serve`` (vLLM's OpenAI server on the tiny model) for the client tests.

Started once per session as a subprocess on 127.0.0.1 with a free port, an API key and a URL
file; stopped (SIGTERM, then SIGKILL) at the end. ``LiveServer.restart`` lets the fault test
kill it and start a new one on the same port, so at most one session server runs at any time
(``running_server`` also starts a module's own, e.g. one with ``--profile``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from vlmcap.server.process import health_ok

API_KEY = "test-key-4f1c"
MODEL = "tiny-qwen2.5-vl"
START_TIMEOUT_S = 300.0
#: ``vlmcap serve --monitor-interval``: the session server logs its health this often.
MONITOR_INTERVAL_S = 5.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def client_env(cache_dir: Path) -> dict[str, str]:
    """Environment of client and server subprocesses (no inherited OpenAI key)."""
    env = {**os.environ, "VLMCAP_CACHE_DIR": str(cache_dir), "VLLM_LOGGING_LEVEL": "WARNING"}
    env.pop("OPENAI_API_KEY", None)
    return env


@dataclass
class LiveServer:
    """A ``vlmcap serve`` subprocess and how to reach it."""

    model_path: Path
    port: int
    snapshot_port: int
    url_file: Path
    log_path: Path
    env: dict[str, str]
    profile_dir: Path | None = None  # ``vlmcap serve --profile``: idle until a client starts it
    model: str = MODEL  # the plugin variant served
    proc: subprocess.Popen[bytes] | None = None
    starts: list[float] = field(default_factory=list)  # seconds each start took

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "vlmcap.cli",
            "serve",
            "--model",
            self.model,
            "--model-path",
            str(self.model_path),
            "--port",
            str(self.port),
            "--max-model-len",
            "2048",
            "--enforce-eager",
            "--api-key",
            API_KEY,
            "--url-file",
            str(self.url_file),
            "--snapshot-port",
            str(self.snapshot_port),
            "--startup-timeout",
            str(int(START_TIMEOUT_S)),
            "--monitor-interval",
            str(MONITOR_INTERVAL_S),
            *(["--profile", str(self.profile_dir)] if self.profile_dir is not None else []),
        ]

    def start(self) -> None:
        deadline = time.monotonic() + 60
        while not port_free(self.port):  # a killed predecessor may hold it for a moment
            assert time.monotonic() < deadline, f"port {self.port} stays taken"
            time.sleep(0.5)
        t0 = time.monotonic()
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.command(),
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        while not (self.url_file.exists() and health_ok(self.url)):
            if self.proc.poll() is not None:
                raise RuntimeError(f"vlmcap serve exited early:\n{self.log_tail()}")
            if time.monotonic() - t0 > START_TIMEOUT_S:
                self.stop()
                raise RuntimeError(f"vlmcap serve did not come up:\n{self.log_tail()}")
            time.sleep(0.5)
        self.starts.append(time.monotonic() - t0)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def kill(self) -> None:
        """SIGKILL ``vlmcap serve`` (its vLLM child follows: parent-death signal)."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self, timeout_s: float = 90) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc is not None else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
            return None

    def ensure_up(self) -> None:
        """Start it again if an earlier test left it dead."""
        if self.proc is None or self.proc.poll() is not None or not health_ok(self.url):
            self.stop()
            self.start()


def running_server(
    model_path: Path,
    cache_dir: Path,
    root: Path,
    *,
    profile: bool = False,
    model: str = MODEL,
) -> Iterator[LiveServer]:
    """A started ``LiveServer`` of plugin ``model`` on ``model_path`` (files under ``root``),
    stopped afterwards; ``profile``: with vLLM's profiler writing into ``root/profile``."""
    server = LiveServer(
        model=model,
        model_path=model_path,
        port=free_port(),
        snapshot_port=free_port(),
        url_file=root / "server.url",
        log_path=root / "serve.log",
        env=client_env(cache_dir),
        profile_dir=root / "profile" if profile else None,
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def live_server(
    tiny_model_path: Path, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("server")
    yield from running_server(tiny_model_path, cache_dir, root)


@pytest.fixture
def server(live_server: LiveServer) -> LiveServer:
    """The session server, restarted first if a fault test left it down."""
    live_server.ensure_up()
    return live_server
