"""``vlmcap serve``'s security basics, without a model: the API key reaches the server child
only through its environment (never its command line, as ``ps`` shows it, nor a log record),
and a server bound beyond loopback without a key is warned about; 127.0.0.1 is the default.

The session's live server (``tests/client/conftest.py``) is a fixture of ``tests/client`` only;
these tests build the real command and environment and start a real child process on them, an
interpreter that records nothing and sleeps in place of vLLM's server, so no engine starts.
"""

from __future__ import annotations

import io
import json
import logging
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tests.client.conftest import free_port
from vlmcap.cli.app import app
from vlmcap.config import VLMConfig
from vlmcap.plugins.base import VLMPlugin
from vlmcap.plugins.registry import get_plugin
from vlmcap.server.command import (
    LOOPBACK_HOSTS,
    ServeOptions,
    server_command,
    server_env,
    vllm_parser,
)
from vlmcap.server.process import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
MODEL = "tiny-qwen2.5-vl"
#: A key no part of a command line could contain by chance.
API_KEY = "sk-vlmcap-7f3a9c51d2e84b06"
#: Seconds the stand-in server gets to start (an interpreter start on a busy machine).
START_WAIT_S = 60.0

#: The stand-in for vLLM's server: it marks itself started, then waits to be stopped.
STAND_IN = """#!{python}
import sys, time
from pathlib import Path
Path(sys.argv[0] + ".started").write_text("started")
time.sleep(300)
"""


@pytest.fixture(scope="module")
def parser() -> Any:
    parser = vllm_parser()
    assert parser is not None, "vLLM's server argument parser moved"
    return parser


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[VLMPlugin, VLMConfig]:
    path = tmp_path_factory.mktemp("model")
    config = VLMConfig(model=MODEL, model_path=str(path), max_model_len=2048, enforce_eager=True)
    return get_plugin(config.model, config.model_path), config


@pytest.fixture
def vlmcap_records(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """``caplog`` at DEBUG on vlmcap's logger, also where an earlier in-process CLI run turned
    its propagation off; the logger's state is restored afterwards."""
    log = logging.getLogger("vlmcap")
    saved = (log.level, log.propagate, list(log.handlers))
    for handler in saved[2]:
        log.removeHandler(handler)
    log.addHandler(caplog.handler)
    log.propagate = False  # each record once, through caplog's handler
    log.setLevel(logging.DEBUG)
    try:
        yield caplog
    finally:
        log.removeHandler(caplog.handler)
        for handler in saved[2]:
            log.addHandler(handler)
        log.setLevel(saved[0])
        log.propagate = saved[1]


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """Put vlmcap's logger back as it was after a CLI run in this process reconfigured it."""
    log = logging.getLogger("vlmcap")
    saved = (log.level, log.propagate, list(log.handlers))
    yield
    for handler in list(log.handlers):
        log.removeHandler(handler)
    for handler in saved[2]:
        log.addHandler(handler)
    log.setLevel(saved[0])
    log.propagate = saved[1]


def record_texts(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every captured record as its message and its raw arguments."""
    return [f"{r.getMessage()} {r.args!r} {r.msg!r}" for r in caplog.records]


# --- the command and the environment ---------------------------------------------------------

keys = st.one_of(
    st.text(st.characters(exclude_characters="\x00", codec="utf-8"), min_size=1, max_size=40),
    st.sampled_from(["--port", "8000", "127.0.0.1", MODEL, "-", "--api-key", "x y", API_KEY]),
)
hosts = st.sampled_from(["127.0.0.1", "localhost", "::1", "0.0.0.0", "::", "10.1.2.3"])


@settings(max_examples=100, deadline=None)
@given(keys, hosts, st.booleans())
def test_the_key_never_changes_the_command_line_only_the_environment(
    parser: Any, model: tuple[VLMPlugin, VLMConfig], key: str, host: str, stale: bool
) -> None:
    plugin, config = model
    keyed, plain = ServeOptions(host=host, api_key=key), ServeOptions(host=host)
    assert server_command(plugin, config, keyed, parser=parser) == server_command(
        plugin, config, plain, parser=parser
    )
    base = {"PATH": "/usr/bin", "HOME": "/home/x"}
    if stale:  # a key left in the environment is replaced by the one given
        base["VLLM_API_KEY"] = "stale-key"
    env = server_env(keyed, config, base=base)
    assert env == {**server_env(plain, config, base=base), "VLLM_API_KEY": key}
    assert server_env(plain, config, base=base).get("VLLM_API_KEY") == base.get("VLLM_API_KEY")
    assert keyed.loopback == (host in LOOPBACK_HOSTS)


def test_the_server_child_gets_the_key_in_its_environment_not_its_argv(
    parser: Any,
    model: tuple[VLMPlugin, VLMConfig],
    tmp_path: Path,
    vlmcap_records: pytest.LogCaptureFixture,
) -> None:
    plugin, config = model
    stand_in = tmp_path / "python"
    stand_in.write_text(STAND_IN.format(python=sys.executable))
    stand_in.chmod(stand_in.stat().st_mode | stat.S_IXUSR)
    opts = ServeOptions(port=free_port(), api_key=API_KEY)
    command = server_command(plugin, config, opts, parser=parser, python=str(stand_in))
    server = ServerProcess(command, server_env(opts, config), log=io.StringIO())
    server.start()
    try:
        started = tmp_path / "python.started"
        deadline = time.monotonic() + START_WAIT_S
        while not started.exists():
            assert server.poll() is None, "the stand-in server exited"
            assert time.monotonic() < deadline, "the stand-in server did not start"
            time.sleep(0.05)
        assert server.pid is not None
        shown = subprocess.run(
            ["ps", "-ww", "-o", "args=", "-p", str(server.pid)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        child = psutil.Process(server.pid)
        argv, environ = child.cmdline(), child.environ()
    finally:
        code = server.stop(timeout_s=10)
    assert code is not None and server.poll() is not None  # stopped, not left behind
    # what ps shows is the whole command: the interpreter, then vLLM's server and its flags
    assert argv[2:] == command[1:] and argv[1] == str(stand_in)
    assert f"-m {command[2]} --model {config.model_path}" in shown
    assert f"--served-model-name {MODEL}" in shown and "--host 127.0.0.1" in shown
    assert API_KEY not in shown and not any(API_KEY in arg for arg in argv)
    assert environ.get("VLLM_API_KEY") == API_KEY  # the key did reach the server
    # the records logged while the command was built and run, down to DEBUG
    texts = record_texts(vlmcap_records)
    assert any("vllm.LLM kwargs" in text for text in texts), texts  # DEBUG was captured
    assert not any(API_KEY in text for text in texts)


def test_serve_print_command_defaults_to_loopback_and_leaves_the_key_out(
    tmp_path: Path, restored_logging: None
) -> None:
    """``vlmcap serve`` itself, in this process, logging at DEBUG: the key given as a flag or
    in a config file appears in neither the command nor any output."""
    config = tmp_path / "serve.toml"
    config.write_text(f'api_key = "{API_KEY}-file"\n')
    runner = CliRunner()
    base = ["serve", "--model", MODEL, "--model-path", str(tmp_path), "--print-command"]
    env = {"VLMCAP_LOG_LEVEL": "DEBUG", "VLLM_API_KEY": None}
    for extra in (["--api-key", API_KEY], ["--config", str(config)]):
        result = runner.invoke(app, [*base, *extra], env=env)
        assert result.exit_code == 0, result.output
        assert "vllm.LLM kwargs" in result.stderr  # vlmcap's DEBUG records were written
        assert "--host 127.0.0.1 " in result.stdout and f"--served-model-name {MODEL}" in (
            result.stdout
        )
        assert API_KEY not in result.stdout and API_KEY not in result.stderr


# --- the warning for a server others can reach ----------------------------------------------

#: Runs ``vlmcap serve`` (the real command, in one interpreter for all cases) with every child
#: interpreter made to fail at once, so each server "dies during start-up" without vLLM: what
#: ``serve`` says before it starts the server is the point.
_SERVE_DRIVER = """
import json, os, sys
from typer.testing import CliRunner
from vlmcap.cli.app import app
from vlmcap.server.command import offline_max_num_seqs, vllm_parser

vllm_parser(), offline_max_num_seqs(1)  # vLLM imported before the environment changes
os.environ["PYTHONHOME"] = "/nonexistent"  # a child interpreter now stops before any import
runner = CliRunner()
results = []
for args, env in json.loads(sys.argv[1]):
    result = runner.invoke(app, args, env=env)
    results.append({"code": result.exit_code, "out": result.stdout, "err": result.stderr})
with open(sys.argv[2], "w", encoding="utf-8") as f:
    json.dump(results, f)
"""


def test_serve_warns_when_it_listens_beyond_loopback_without_a_key(tmp_path: Path) -> None:
    def case(*args: str, env_key: str | None = None) -> list[Any]:
        argv = ["serve", "--model", MODEL, "--model-path", str(tmp_path), *args]
        return [[*argv, "--port", str(free_port())], {"VLLM_API_KEY": env_key}]

    cases = [
        case("--host", "0.0.0.0"),
        case("--host", "0.0.0.0", "--api-key", API_KEY),
        case("--host", "0.0.0.0", env_key=API_KEY),
        case(),  # the default host
    ]
    results_path = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, "-c", _SERVE_DRIVER, json.dumps(cases), str(results_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    public, keyed, env_keyed, default = json.loads(results_path.read_text())
    said = [" ".join(r["err"].split()) for r in (public, keyed, env_keyed, default)]
    for result, text in zip((public, keyed, env_keyed, default), said, strict=True):
        # each got as far as starting its server, which then died: the warning came first
        assert result["code"] == 1 and "exited with status" in text, text
    warning = "listening on 0.0.0.0 without an API key"
    assert warning in said[0] and "anyone who can reach this port" in said[0]
    assert "pass --api-key" in said[0]  # says how to close it
    assert said[0].index(warning) < said[0].index("starting the vLLM server")
    assert "without an API key" not in said[1] and "without an API key" not in said[2]
    assert "without an API key" not in said[3]
    assert "on http://127.0.0.1:" in said[3]  # 127.0.0.1 unless --host says otherwise
    assert all(API_KEY not in r["out"] + r["err"] for r in (public, keyed, env_keyed, default))
