"""``vlmcap caption`` and ``vlmcap serve`` options, from flags and config files, reach the
objects they configure (no engine or server is started: the tests stop the command first)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from vlmcap.cli.app import app
from vlmcap.client import ServerUnavailableError

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.fixture
def media(tmp_path: Path) -> Path:
    folder = tmp_path / "media"
    folder.mkdir()
    (folder / "a.png").write_bytes((ROOT / "examples/images/red_circle.png").read_bytes())
    return folder


@pytest.fixture
def dry_run(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What ``--dry-run`` would print: the files, output folder, config and run options."""
    seen: dict[str, Any] = {}

    def capture(files: Any, output_dir: Path, config: Any, run: Any) -> None:
        seen.update(files=files, output_dir=output_dir, config=config, run=run)

    monkeypatch.setattr("vlmcap.cli.caption.print_dry_run", capture)
    return seen


def invoke(*args: str) -> Any:
    result = runner.invoke(app, list(args))
    return result, " ".join(result.output.split())


def test_config_file_options_reach_the_run_and_flags_win(tmp_path, media, dry_run):
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("Name the shape.\n")
    config = tmp_path / "run.yaml"
    config.write_text(
        "model: tiny-qwen2.5-vl\nvideo_fps: 3\nwindow_s: 4\noverlap-s: 1\nworkers: 1\n"
        f"output_dir: {tmp_path / 'from-file'}\nprompt_file: {prompt}\ntemperature: 0.7\n"
        "dry_run: true\nretry_failed: true\nsave_every_items: 9\nbatch_size: 2\n"
    )
    result, _ = invoke("caption", str(media), "-c", str(config), "--fps", "5", "--seed", "3")
    assert result.exit_code == 0, result.output
    run, cfg = dry_run["run"], dry_run["config"]
    assert (run.media.video_fps, run.media.window_s, run.media.overlap_s) == (5.0, 4.0, 1.0)
    assert (run.workers, run.retry_failed, run.save_every_items) == (1, True, 9)
    assert dry_run["output_dir"] == tmp_path / "from-file"
    assert (cfg.model, cfg.prompt_text, cfg.temperature, cfg.seed) == (
        "tiny-qwen2.5-vl",
        "Name the shape.",
        0.7,
        3,
    )
    assert cfg.batch_size == 2 and [f.key for f in dry_run["files"]] == ["a.png"]


def test_alias_flags_and_the_engine_arg_flag(media, dry_run):
    args = ["caption", str(media), "--dry-run", "--prompt", "short", "--tp", "2"]
    args += ["--fixed-batches", "--engine-arg", "max_num_seqs=8", "--engine-arg", "x={a: 1}"]
    result, _ = invoke(*args)
    assert result.exit_code == 0, result.output
    cfg = dry_run["config"]
    assert (cfg.prompt_style, cfg.tensor_parallel_size, cfg.inflight_batching) == (
        "short",
        2,
        False,
    )
    assert cfg.engine_args == {"max_num_seqs": 8, "x": {"a": 1}}
    assert cfg.model_fields_set == {
        "prompt_style",
        "tensor_parallel_size",
        "inflight_batching",
        "engine_args",
    }


def test_client_options_from_a_file_reach_client_config(tmp_path, media, monkeypatch):
    seen: list[Any] = []

    def connect(settings: Any, config: Any) -> Any:
        seen.append(settings)
        raise ServerUnavailableError("stopped by the test")

    monkeypatch.setattr("vlmcap.client.connect.connect", connect)
    config = tmp_path / "client.toml"
    config.write_text(
        'server_url = "http://gpu:8123"\nconcurrency = 3\nrequest-timeout = 45.0\n'
        'served_model = "tiny-qwen2.5-vl"\napi_key = "k"\n'
    )
    result, text = invoke("caption", str(media), "-o", str(tmp_path / "o"), "-c", str(config),
                          "--retries", "1")  # fmt: skip
    assert result.exit_code == 2 and "stopped by the test" in text
    [settings] = seen
    assert (settings.url, settings.concurrency, settings.request_timeout) == (
        "http://gpu:8123",
        3,
        45.0,
    )
    assert (settings.retries, settings.model, settings.api_key) == (1, "tiny-qwen2.5-vl", "k")


def test_a_server_url_flag_replaces_a_url_file_from_the_config(tmp_path, media, monkeypatch):
    seen: list[Any] = []

    def connect(settings: Any, config: Any) -> Any:
        seen.append(settings.url)
        raise ServerUnavailableError("stopped by the test")

    monkeypatch.setattr("vlmcap.client.connect.connect", connect)
    config = tmp_path / "c.yaml"
    config.write_text(f"server_url_file: {tmp_path / 'never-written.url'}\n")
    result, _ = invoke("caption", str(media), "-c", str(config), "--server-url", "h:9")
    assert result.exit_code == 2 and seen == ["http://h:9"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--limit", "0"], "limit: Input should be greater than or equal to 1 (got 0)"),
        (["--workers", "0"], "workers: Input should be greater than or equal to 1 (got 0)"),
        (["--concurrency", "0"], "concurrency: Input should be greater than or equal to 1"),
        (["--fps", "0"], "--fps must be > 0 (got 0.0)"),
        (["--engine-arg", "nokey"], "--engine-arg wants KEY=VALUE (got 'nokey')"),
        (["--prompt-text", "a", "--prompt-file", "b"], "give --prompt-text or --prompt-file"),
    ],
)
def test_bad_options_name_the_field_value_and_rule(media, args, message):
    result, text = invoke("caption", str(media), "--dry-run", *args)
    assert result.exit_code == 2, result.output
    assert message in text


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """``vlmcap serve --print-command``'s plugin, config and options, without vLLM."""
    seen: dict[str, Any] = {}

    def command(plugin: Any, config: Any, opts: Any, **_: Any) -> list[str]:
        seen.update(plugin=plugin, config=config, opts=opts)
        return ["vllm-server"]

    monkeypatch.setattr("vlmcap.server.command.vllm_parser", lambda: None)
    monkeypatch.setattr("vlmcap.server.command.server_command", command)
    return seen


def test_serve_takes_engine_and_server_options_from_flags_and_file(tmp_path, served):
    config = tmp_path / "serve.yaml"
    config.write_text(
        "model: tiny-qwen2.5-vl\nmax_model_len: 1024\nfp8: true\nport: 8123\n"
        "startup_timeout: 30\nengine_args: {max_num_seqs: 4}\ntemperature: 0.5\n"
    )
    args = ["serve", "-c", str(config), "--tp", "2", "--port", "8200", "--print-command"]
    result, text = invoke(*args, "--url-file", str(tmp_path / "u"), "--", "--foo", "1")
    assert result.exit_code == 0, result.output
    assert "vllm-server" in text
    cfg, opts = served["config"], served["opts"]
    assert (cfg.model, cfg.max_model_len, cfg.fp8, cfg.tensor_parallel_size) == (
        "tiny-qwen2.5-vl",
        1024,
        True,
        2,
    )
    assert cfg.engine_args == {"max_num_seqs": 4}
    assert cfg.temperature == 0.1  # a caption option in a shared file: ignored by serve
    assert (opts.port, opts.startup_timeout_s, opts.url_file) == (8200, 30.0, tmp_path / "u")
    assert opts.extra_args == ("--foo", "1")


def test_serve_refuses_caption_only_flags_and_bad_ports(served):
    result, text = invoke("serve", "--temperature", "0.5", "--print-command")
    assert result.exit_code == 2 and "--temperature" in text
    result, text = invoke("serve", "--port", "0", "--print-command")
    assert result.exit_code == 2 and "port: Input should be greater than or equal to 1" in text
