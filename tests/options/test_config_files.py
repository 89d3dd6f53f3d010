"""Every option can live in a config file, reaches the object it configures, and loses to a flag."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import yaml

from vlmcap.config import VLMConfig
from vlmcap.options import (
    CAPTION,
    SERVE,
    ClientOptions,
    ConfigError,
    HealthLogOptions,
    InputOptions,
    LogOptions,
    MediaOptions,
    MonitorOptions,
    OutputOptions,
    ParsedOptions,
    PromptFileOptions,
    RayOptions,
    RunOptions,
    ServerOptions,
)

#: A valid value, different from the default, for every key of a caption config file.
CAPTION_SAMPLES: dict[str, Any] = {
    "paths": ["clips/"],
    "manifest": "list.jsonl",
    "path_column": "file",
    "ext": [".mp4"],
    "limit": 3,
    "dry_run": True,
    "output_dir": "captions-out",
    "overwrite": True,
    "retry_failed": True,
    "parquet": True,
    "save_every_items": 7,
    "save_every_s": 2.5,
    "workers": 3,
    "prefetch": 5,
    "model": "tiny-qwen2.5-vl",
    "prompt_style": "short",
    "prompt_text": "Say what you see.",
    "prompt_file": "prompt.txt",
    "max_output_tokens": 64,
    "temperature": 0.5,
    "top_p": 0.9,
    "repetition_penalty": 1.2,
    "seed": 7,
    "stage2": True,
    "stage2_prompt": "Refine:",
    "video_fps": 3.0,
    "num_frames": 4,
    "max_frames": 8,
    "max_pixels": 1024,
    "window_s": 4.0,
    "overlap_s": 1.0,
    "dump_dir": "frames",
    "model_path": "/models/x",
    "fp8": True,
    "tensor_parallel_size": 2,
    "preprocess": False,
    "mm_cache": False,
    "prefix_caching": False,
    "max_model_len": 2048,
    "gpu_memory_utilization": 0.5,
    "enforce_eager": True,
    "engine_args": {"max_num_seqs": 8},
    "inflight_batching": False,
    "batch_size": 2,
    "max_inflight": 32,
    "prepare_threads": 2,
    "engine_restarts": 1,
    "server_url": "http://gpu-node:8000",
    "server_url_file": "server.url",
    "served_model": "served",
    "api_key": "secret",
    "concurrency": 4,
    "request_timeout": 30.0,
    "retries": 2,
    "ray": True,
    "ray_address": "auto",
    "engines": 4,
    "gpus_per_engine": 2,
    "ray_batch": 4,
    "actor_retries": 1,
    "monitor_interval": 30.0,
    "log_requests": True,
    "hang_timeout": 120.0,
    "on_hang": "abort",
    "metrics_port": 9400,
    "metrics_host": "0.0.0.0",
    "verbose": True,
    "log_level": "DEBUG",
    "vllm_log_level": "ERROR",
    "log_file": "run.log",
    "log_json": True,
    "log_preset": "production",
    "trace_function": True,
    "cuda_launch_blocking": True,
    "log_stats_interval": 5.0,
    "log_steps": True,
    "profile": "traces",
    "profile_steps": 4,
    "memory_report": True,
    "memory_every": 10,
    "logprobs": 3,
    "logprobs_first": 2,
    "debug_request": ["a.jpg"],
    "debug_first": 2,
    "replay": "dump.json",
}
#: Options of which one may be given: they go to separate files.
SECOND_FILE = {"prompt_file", "server_url_file"}


def caption_objects(parsed: ParsedOptions) -> list[Any]:
    """What ``vlmcap caption`` builds from its options (``prompt_file`` before it is read)."""
    media = parsed.build(MediaOptions)
    return [
        parsed.build(VLMConfig),
        parsed.build(InputOptions),
        parsed.build(OutputOptions),
        parsed.build(RunOptions, media=media),
        media,
        parsed.build(ClientOptions),
        parsed.build(RayOptions),
        parsed.build(PromptFileOptions),
        parsed.build(MonitorOptions),
        parsed.build(HealthLogOptions),
        parsed.build(LogOptions),
    ]


def plain(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value


def write(path: Path, values: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path


def test_the_samples_cover_every_caption_config_key():
    assert set(CAPTION_SAMPLES) == set(CAPTION.file_keys())
    for name, value in CAPTION_SAMPLES.items():
        assert value != CAPTION.option(name).default, name


def test_every_caption_option_in_a_file_reaches_its_object(tmp_path):
    first = {k: v for k, v in CAPTION_SAMPLES.items() if k not in SECOND_FILE}
    first = {(k.replace("_", "-") if i % 2 else k): v for i, (k, v) in enumerate(first.items())}
    second = {k: CAPTION_SAMPLES[k] for k in SECOND_FILE}
    reached: set[str] = set()
    for name, values in (("a.yaml", first), ("b.yaml", second)):
        parsed = CAPTION.resolve({"config_file": write(tmp_path / name, values)})
        for obj in caption_objects(parsed):
            for key in type(obj).model_fields:
                if key in parsed.values:
                    assert plain(getattr(obj, key)) == CAPTION_SAMPLES[key], key
                    reached.add(key)
    assert reached == set(CAPTION_SAMPLES)


def test_toml_files_work_the_same(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text("video-fps = 1.5\nconcurrency = 3\n[engine_args]\nmax_num_seqs = 4\n")
    parsed = CAPTION.resolve({"config_file": path})
    assert parsed.build(MediaOptions).video_fps == 1.5
    assert parsed.build(ClientOptions).concurrency == 3
    assert parsed.build(VLMConfig).engine_args == {"max_num_seqs": 4}


def test_every_serve_option_in_a_file_reaches_its_object(tmp_path):
    samples = {k: v for k, v in CAPTION_SAMPLES.items() if k in SERVE.file_keys()}
    samples |= {
        "host": "0.0.0.0",
        "port": 8123,
        "url_file": "run/server.url",
        "startup_timeout": 60.0,
        "snapshot_port": 8124,
        "print_command": True,
        "extra_args": ["--max-num-seqs", "8"],
    }
    assert set(samples) == set(SERVE.file_keys())
    parsed = SERVE.resolve({"config_file": write(tmp_path / "serve.yaml", samples)})
    objects = [
        parsed.build(VLMConfig),
        parsed.build(ServerOptions),
        parsed.build(HealthLogOptions),
        parsed.build(LogOptions),
    ]
    for key, value in samples.items():
        (obj,) = [o for o in objects if key in type(o).model_fields]
        assert plain(getattr(obj, key)) == value, key


def test_the_command_line_wins_over_the_file(tmp_path):
    path = write(
        tmp_path / "run.yaml",
        {"video_fps": 3.0, "concurrency": 4, "model": "tiny-qwen2.5-vl", "prompt_text": "file",
         "engine_args": {"a": 1, "b": 2}},
    )  # fmt: skip
    parsed = CAPTION.resolve(
        {"config_file": path, "video_fps": 5.0, "prompt_file": "p.txt", "engine_args": {"b": 3}}
    )
    assert parsed.build(MediaOptions).video_fps == 5.0
    assert parsed.build(ClientOptions).concurrency == 4
    config = parsed.build(VLMConfig)
    assert config.model == "tiny-qwen2.5-vl"
    assert config.prompt_text is None  # the flag's prompt file replaces the file's prompt text
    assert parsed.values["prompt_file"] == "p.txt"
    assert config.engine_args == {"a": 1, "b": 3}
    assert parsed.from_command_line == {"video_fps", "prompt_file", "engine_args"}


def test_only_given_options_count_as_set(tmp_path):
    parsed = CAPTION.resolve({"config_file": write(tmp_path / "c.yaml", {"batch_size": 8})})
    assert parsed.build(VLMConfig).model_fields_set == {"batch_size"}


GE = "Input should be greater than or equal to"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"temperature": -1.0}, f"temperature: {GE} 0 (got -1.0)"),
        ({"concurrency": 0}, f"concurrency: {GE} 1 (got 0)"),
        ({"limit": 0}, f"limit: {GE} 1 (got 0)"),
        ({"workers": "many"}, "workers: Input should be a valid integer, unable to parse string"),
        ({"video_fps": 0}, "video_fps: --fps must be > 0 (got 0"),
        ({"max_model_len": 8}, f"max_model_len: {GE} 64 (got 8)"),
        ({"ext": 5}, "ext: Input should be a valid list (got 5)"),
    ],
)
def test_a_bad_value_names_field_value_and_rule(tmp_path, values, message):
    parsed = CAPTION.resolve({"config_file": write(tmp_path / "bad.yaml", values)})
    with pytest.raises(ConfigError) as err:
        caption_objects(parsed)
    assert message in str(err.value)


def test_a_bad_serve_value_names_field_value_and_rule(tmp_path):
    parsed = SERVE.resolve({"config_file": write(tmp_path / "s.yaml", {"port": 70000})})
    with pytest.raises(ConfigError, match=r"port: Input should be less than or equal to 65535"):
        parsed.build(ServerOptions)


def test_unknown_keys_list_the_known_ones(tmp_path):
    with pytest.raises(ConfigError) as err:
        CAPTION.resolve({"config_file": write(tmp_path / "c.yaml", {"modle": "x"})})
    message = str(err.value)
    assert "modle: unknown option" in message and "c.yaml" in message
    for key in ("model", "video_fps", "concurrency", "output_dir"):
        assert key in message


def test_the_config_file_cannot_name_another(tmp_path):
    with pytest.raises(ConfigError, match="config_file: unknown option"):
        CAPTION.resolve({"config_file": write(tmp_path / "c.yaml", {"config_file": "x.yaml"})})


def test_a_key_of_another_command_is_ignored_with_a_warning(tmp_path, vlmcap_log):
    path = write(tmp_path / "shared.yaml", {"model": "tiny-qwen2.5-vl", "port": 9000})
    parsed = CAPTION.resolve({"config_file": path})
    assert parsed.values == {"model": "tiny-qwen2.5-vl"}
    assert "ignored by vlmcap caption: port (vlmcap serve)" in vlmcap_log.text
    served = SERVE.resolve({"config_file": write(tmp_path / "s.yaml", {"temperature": 0.2})})
    assert served.values == {}


@pytest.mark.parametrize(
    ("old", "new", "value"),
    [("prompt_variant", "prompt_style", "short"), ("num_gpus", "tensor_parallel_size", 2)],
)
def test_old_keys_are_read_with_a_warning_naming_the_new_key(tmp_path, vlmcap_log, old, new, value):
    parsed = CAPTION.resolve({"config_file": write(tmp_path / "old.yaml", {old: value})})
    assert getattr(parsed.build(VLMConfig), new) == value
    record = next(r for r in vlmcap_log.records if old in r.getMessage())
    assert record.levelno == logging.WARNING and new in record.getMessage()


def test_an_old_key_beside_its_new_name_is_refused(tmp_path):
    path = write(tmp_path / "both.yaml", {"num_gpus": 2, "tensor-parallel-size": 1})
    with pytest.raises(ConfigError, match="give tensor_parallel_size only"):
        CAPTION.resolve({"config_file": path})


def test_exclusive_options_in_one_source_are_refused(tmp_path):
    path = write(tmp_path / "c.yaml", {"server_url": "h:1", "server_url_file": "u"})
    with pytest.raises(ConfigError, match="give --server-url or --server-url-file, not both"):
        CAPTION.resolve({"config_file": path})
