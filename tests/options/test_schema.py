"""The schema is the only declaration: flags, help defaults and the server-ignored set follow it."""

from __future__ import annotations

import inspect
import re
from typing import Any

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from vlmcap.cli.app import app
from vlmcap.client.connect import ENGINE_FIELDS
from vlmcap.config import VLMConfig
from vlmcap.options import (
    ALL_GROUPS,
    CAPTION,
    COMMANDS,
    SERVE,
    SERVER_IGNORED_FIELDS,
    CommandSpec,
    EngineDebugOptions,
    EngineOptions,
    LoopOptions,
    OptionSpec,
)
from vlmcap.options.cli import command_line_values, help_default, with_options
from vlmcap.options.commands import groups_named

runner = CliRunner()
#: Wide enough for every option's help to stay on its own rows.
HELP_ENV = {"COLUMNS": "250", "TERMINAL_WIDTH": "250"}


def click_command(name: str) -> Any:
    return get_command(app).commands[name]


def click_params(name: str) -> dict[str, Any]:
    return {p.name: p for p in click_command(name).params if p.name != "help"}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_option_is_a_parameter_of_exactly_its_commands(command):
    spec = COMMANDS[command]
    params = click_params(command)
    assert set(params) == {o.name for o in spec.options()}
    for option in spec.options():
        param = params[option.name]
        if option.flag.argument:
            assert param.param_type_name == "argument"
        else:
            assert (*param.opts, *param.secondary_opts) == option.all_flags, option.name


def test_each_option_is_a_flag_only_of_the_commands_that_pick_its_group():
    for group in ALL_GROUPS:
        users = {name for name, c in COMMANDS.items() if group in c.groups}
        assert users, f"group {group.group} is used by no command"
        for option in group.options():
            owners = {
                name
                for name, c in COMMANDS.items()
                if option.name in click_params(name) and c.option(option.name).group is group
            }
            assert owners == users, (group.group, option.name)


@pytest.mark.parametrize(
    ("command", "name", "flags"),
    [
        ("caption", "video_fps", ("--fps",)),
        ("caption", "prompt_style", ("--prompt-style", "--prompt")),
        ("caption", "tensor_parallel_size", ("--tensor-parallel-size", "--tp")),
        ("serve", "tensor_parallel_size", ("--tensor-parallel-size", "--tp")),
        ("caption", "inflight_batching", ("--inflight", "--fixed-batches")),
        ("caption", "output_dir", ("--output-dir", "-o")),
        ("caption", "model", ("--model", "-m")),
        ("serve", "config_file", ("--config", "-c")),
        ("caption", "window_s", ("--window",)),
        ("caption", "save_every_items", ("--save-every",)),
        ("caption", "engine_args", ("--engine-arg",)),
        ("serve", "api_key", ("--api-key",)),
    ],
)
def test_flag_spellings(command, name, flags):
    assert COMMANDS[command].option(name).all_flags == flags


def test_serve_takes_every_engine_option_and_no_caption_only_one():
    serve = set(click_params("serve"))
    assert {o.name for o in EngineOptions.options()} <= serve
    for caption_only in ("temperature", "video_fps", "concurrency", "batch_size", "output_dir"):
        assert caption_only not in serve


def test_the_server_ignored_set_is_the_engine_side_groups():
    engine_groups = [g for g in CAPTION.groups if g.engine_side]
    assert engine_groups == [EngineOptions, LoopOptions, EngineDebugOptions]
    names = {o.name for g in engine_groups for o in g.options()}
    assert names == SERVER_IGNORED_FIELDS == set(ENGINE_FIELDS)
    assert names <= set(VLMConfig.model_fields)
    assert {"model_path", "tensor_parallel_size", "max_inflight", "engine_args"} <= names
    assert not names & {"model", "temperature", "max_output_tokens", "stage2", "prompt_style"}


def test_vlmconfig_keeps_its_fields_and_takes_them_from_the_groups():
    fields = {
        "model", "model_path", "fp8", "tensor_parallel_size", "prompt_style", "prompt_text",
        "max_output_tokens", "temperature", "top_p", "repetition_penalty", "seed", "preprocess",
        "mm_cache", "prefix_caching", "max_model_len", "gpu_memory_utilization",
        "enforce_eager", "engine_args", "inflight_batching", "batch_size", "max_inflight",
        "prepare_threads",
        "engine_restarts",
        "stage2", "stage2_prompt", "trace_function", "cuda_launch_blocking",
        "log_stats_interval", "log_steps", "profile", "profile_steps", "memory_report",
        "memory_every", "logprobs", "logprobs_first", "debug_request", "debug_first", "replay",
    }  # fmt: skip
    assert set(VLMConfig.model_fields) == fields
    declared = {o.name: o for g in ALL_GROUPS for o in g.options() if o.name in fields}
    assert set(declared) == fields
    for name, option in declared.items():
        assert VLMConfig.model_fields[name].default == option.info.default


def expected_default_text(option: OptionSpec, default: object) -> str | None:
    """What ``--help`` must show as the default of ``option`` whose default in the command is
    ``default`` (the schema's, or the command's own)."""
    if option.flag.default_text is not None:
        return f"({option.flag.default_text})"
    if default is None or default in ([], {}) or option.flag.parse is not None:
        return None
    if isinstance(default, bool):
        return (option.main_flag if default else option.off_flag or "").removeprefix("--")
    return str(default)


def help_rows(command: str) -> list[str]:
    """``--help`` as one string per option (continuation lines joined)."""
    result = runner.invoke(app, [command, "--help"], env=HELP_ENV)
    assert result.exit_code == 0, result.output
    rows: list[str] = []
    for line in result.output.splitlines():
        if not line.startswith("│"):
            continue
        text = line.strip("│ ")
        if re.match(r"^-{1,2}\w", text):
            rows.append(text)
        elif rows and text:
            rows[-1] += " " + text
    return [" ".join(r.split()) for r in rows]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_shows_the_schema_defaults(command):
    rows = help_rows(command)
    params = click_params(command)
    for option in COMMANDS[command].options():
        if option.flag.argument:
            continue
        row = next(r for r in rows if r.split()[0].split(",")[0] == option.main_flag)
        default = COMMANDS[command].default(option)
        text = expected_default_text(option, default)
        if text is None:
            assert "[default:" not in row, row
        else:
            assert f"[default: {text}]" in row, row
            if not text.startswith("("):
                assert params[option.name].default == default
        assert option.help.split()[0] in row


def test_help_is_grouped_in_panels():
    result = runner.invoke(app, ["caption", "--help"], env=HELP_ENV)
    panels = re.findall(r"╭─ (.+?) ─", result.output)
    for group in CAPTION.groups:
        assert group.panel in panels
    assert panels.index("Sampling") < panels.index("Engine") < panels.index("Engine loop")


def test_help_default_is_typer_none_where_the_schema_default_is_not_a_value():
    def shown(name: str) -> tuple[object, bool | str]:
        spec = CAPTION.option(name)
        return help_default(spec, CAPTION.default(spec))

    assert shown("model_path") == (None, "the plugin's weights")
    assert shown("engine_args") == (None, False)
    assert shown("video_fps") == (2.0, True)


def test_command_names_clash_within_a_command_are_refused():
    with pytest.raises(TypeError, match="api_key"):
        CommandSpec("both", groups_named(["client", "server"]))


def test_a_new_subcommand_picks_its_groups_and_gets_their_flags():
    qa = CommandSpec("qa", groups_named(["input", "config", "model", "sampling", "media"]))
    seen: dict[str, Any] = {}

    @with_options(qa)
    def command(**given: Any) -> None:
        seen.update(qa.resolve(command_line_values(qa, given)).values)

    assert "video_fps" in inspect.signature(command).parameters
    tool = typer.Typer()
    tool.command("qa")(command)
    tool.command("other")(lambda: None)
    result = runner.invoke(tool, ["qa", "a.mp4", "--fps", "4", "-m", "tiny-qwen2.5-vl"])
    assert result.exit_code == 0, result.output
    assert seen == {"paths": ["a.mp4"], "video_fps": 4.0, "model": "tiny-qwen2.5-vl"}
    bad = runner.invoke(tool, ["qa", "--concurrency", "3"])
    assert bad.exit_code == 2 and "--concurrency" in bad.output


def test_serve_and_caption_share_the_engine_group_object():
    assert SERVE.option("max_model_len").group is CAPTION.option("max_model_len").group


def test_a_command_may_set_its_own_default_of_a_shared_option():
    from vlmcap.options import QA
    from vlmcap.options.qa import DEFAULT_QA_MAX_OUTPUT_TOKENS

    assert QA.default(QA.option("max_output_tokens")) == DEFAULT_QA_MAX_OUTPUT_TOKENS
    assert CAPTION.default(CAPTION.option("max_output_tokens")) == 512
    config = QA.resolve({}).build(VLMConfig)
    assert config.max_output_tokens == DEFAULT_QA_MAX_OUTPUT_TOKENS
    assert QA.resolve({"max_output_tokens": 7}).build(VLMConfig).max_output_tokens == 7
