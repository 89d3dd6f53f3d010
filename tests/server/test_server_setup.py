"""``vlmcap serve``'s pieces that need no running model: the command, the port, the URL file."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.client.conftest import free_port
from vlmcap.client import ServerUnavailableError
from vlmcap.config import VLMConfig
from vlmcap.plugins.registry import get_plugin
from vlmcap.server.command import (
    ServeOptions,
    engine_flags,
    offline_max_num_seqs,
    server_command,
    vllm_parser,
)
from vlmcap.server.process import port_problem
from vlmcap.server.url_file import (
    client_url,
    read_url_file,
    remove_url_file,
    wait_for_url_file,
    write_url_file,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def parser():
    parser = vllm_parser()
    assert parser is not None, "vLLM's server argument parser moved"
    return parser


def test_server_command_is_valid_for_vllm_and_carries_the_engine_settings(parser, tmp_path):
    config = VLMConfig(
        model="tiny-qwen2.5-vl",
        model_path=str(tmp_path),
        max_model_len=2048,
        enforce_eager=True,
        prefix_caching=False,
        mm_cache=False,
        seed=7,
    )
    plugin = get_plugin(config.model, config.model_path)
    opts = ServeOptions(port=8123, api_key="secret", extra_args=("--max-num-seqs", "8"))
    cmd = server_command(plugin, config, opts, parser=parser)
    assert cmd[:2] == [sys.executable, "-m"] and cmd[2].startswith("vllm.entrypoints.")
    assert "secret" not in " ".join(cmd)  # the key travels in the environment
    args = parser.parse_args(cmd[3:])
    assert args.model == str(tmp_path)
    assert args.served_model_name == ["tiny-qwen2.5-vl"]
    assert (args.host, args.port) == ("127.0.0.1", 8123)
    assert args.max_model_len == 2048 and args.seed == 7
    assert args.enforce_eager is True and args.enable_prefix_caching is False
    assert args.enable_chunked_prefill is False  # CPU engine + seeded requests
    assert args.mm_processor_cache_gb == 0
    assert args.limit_mm_per_prompt == {"image": 4, "video": 1}
    assert args.trust_request_mm_kwargs is True
    assert args.media_io_kwargs == {"video": {"num_frames": -1}}
    assert args.max_num_seqs == 8 and cmd[-2:] == ["--max-num-seqs", "8"]  # extra args win
    default = parser.parse_args(server_command(plugin, config, ServeOptions(), parser=parser)[3:])
    assert default.max_num_seqs == offline_max_num_seqs(1) == 256  # as vllm.LLM on CPU


def test_extra_args_come_last_so_they_override(parser, tmp_path):
    config = VLMConfig(model="tiny-qwen2.5-vl", model_path=str(tmp_path), max_model_len=2048)
    plugin = get_plugin(config.model, config.model_path)
    opts = ServeOptions(extra_args=("--max-model-len", "1024"))
    args = parser.parse_args(server_command(plugin, config, opts, parser=parser)[3:])
    assert args.max_model_len == 1024


def test_engine_flags_follow_vllm_actions_and_refuse_unknown_args(parser):
    flags = engine_flags(
        {"enforce_eager": False, "disable_log_stats": False, "limit_mm_per_prompt": {"image": 2}},
        parser,
    )
    assert flags == ["--no-enforce-eager", "--limit-mm-per-prompt", '{"image":2}']
    assert engine_flags({"disable_log_stats": True}, parser) == ["--disable-log-stats"]
    with pytest.raises(ValueError, match="no `vllm serve` option"):
        engine_flags({"not_an_engine_arg": 1}, parser)


def test_port_problem_names_a_taken_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        problem = port_problem("127.0.0.1", port)
    assert problem is not None and f"port {port}" in problem and "--port" in problem
    assert port_problem("127.0.0.1", free_port()) is None
    assert "check --host" in (port_problem("203.0.113.9", free_port()) or "")


def test_serve_refuses_a_taken_port_before_starting_vllm(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        t0 = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "vlmcap.cli", "serve", "--model", "tiny-qwen2.5-vl",
             "--model-path", str(tmp_path), "--port", str(port)],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert f"port {port} on 127.0.0.1 is taken" in " ".join(proc.stderr.split())
    assert time.monotonic() - t0 < 60


def test_serve_print_command_and_public_bind_warning(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "vlmcap.cli", "serve", "--model", "tiny-qwen2.5-vl",
         "--model-path", str(tmp_path), "--host", "0.0.0.0", "--print-command", "--",
         "--max-num-seqs", "4"],
        capture_output=True, text=True, timeout=120, check=False,
        env={k: v for k, v in os.environ.items() if k != "VLLM_API_KEY"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "--served-model-name tiny-qwen2.5-vl" in proc.stdout
    assert proc.stdout.strip().endswith("--max-num-seqs 4")
    assert "without an API key" not in proc.stderr  # only warned when it would really listen


def test_serve_reports_a_server_that_dies_during_start_up(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "vlmcap.cli", "serve", "--model", "tiny-qwen2.5-vl",
         "--model-path", str(tmp_path), "--port", str(free_port()), "--", "--no-such-flag"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-2000:]
    message = " ".join(proc.stderr.split())
    assert "exited with status" in message and "during start-up" in message
    assert "--no-such-flag" in message  # vLLM's own complaint, from the end of its log


def test_serve_unknown_model_is_a_usage_error():
    proc = subprocess.run(
        [sys.executable, "-m", "vlmcap.cli", "serve", "--model", "no-such-model"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 2 and "unknown model variant" in proc.stderr


def test_url_file_round_trip_is_atomic_and_only_its_owner_removes_it(tmp_path):
    path = tmp_path / "run" / "server.url"
    assert read_url_file(path) is None
    write_url_file(path, "http://node7:8000")
    assert read_url_file(path) == "http://node7:8000"
    assert [p.name for p in path.parent.iterdir()] == ["server.url"]  # no temp file left
    assert not remove_url_file(path, "http://other:8000") and path.exists()
    assert remove_url_file(path, "http://node7:8000") and not path.exists()


def test_waiting_for_the_url_file(tmp_path):
    path = tmp_path / "server.url"
    timer = threading.Timer(0.3, write_url_file, args=(path, "http://n1:9000"))
    timer.start()
    assert wait_for_url_file(path, timeout_s=10, poll_s=0.05) == "http://n1:9000"
    with pytest.raises(ServerUnavailableError, match=r"vlmcap serve .* --url-file"):
        wait_for_url_file(tmp_path / "never.url", timeout_s=0.2, poll_s=0.05)


def test_client_url_uses_the_host_name_for_a_wildcard_bind():
    assert client_url("127.0.0.1", 8000) == "http://127.0.0.1:8000"
    assert client_url("0.0.0.0", 8001) == f"http://{socket.gethostname()}:8001"
    assert client_url("::1", 8002) == "http://[::1]:8002"
    assert ServeOptions(host="0.0.0.0", port=9).local_url == "http://127.0.0.1:9"
    with pytest.raises(ValueError, match="--port"):
        ServeOptions(port=70000)


def test_caption_rejects_both_url_options(tmp_path):
    (tmp_path / "a.png").write_bytes((ROOT / "examples/images/red_circle.png").read_bytes())
    proc = subprocess.run(
        [sys.executable, "-m", "vlmcap.cli", "caption", str(tmp_path), "-o", str(tmp_path / "o"),
         "--server-url", "http://127.0.0.1:1", "--server-url-file", str(tmp_path / "u")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 2 and "not both" in proc.stderr
    assert not (tmp_path / "o" / "records.jsonl").exists()
