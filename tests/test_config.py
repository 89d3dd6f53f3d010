"""Config validation and config files."""

from __future__ import annotations

import pytest

from vlmcap.config import DEFAULT_STAGE2_PROMPT, ConfigError, VLMConfig, load_config_file
from vlmcap.options import EngineOptions, PromptOptions, SamplingOptions


def test_defaults_match_the_documented_values():
    c = VLMConfig()
    assert (c.temperature, c.top_p, c.repetition_penalty) == (0.1, 0.001, 1.05)
    assert (c.max_output_tokens, c.batch_size, c.tensor_parallel_size) == (512, 4, 1)
    assert c.inflight_batching and not c.stage2 and c.preprocess and c.mm_cache
    assert c.stage2_prompt == DEFAULT_STAGE2_PROMPT and c.model == "qwen2.5-vl"


def test_the_config_is_made_of_the_option_groups():
    assert issubclass(VLMConfig, EngineOptions | SamplingOptions | PromptOptions)
    c = VLMConfig(model="tiny-qwen2.5-vl")
    c.model = "qwen2.5-vl"  # a server may name the model after validation
    with pytest.raises(ValueError, match="temperature"):
        c.temperature = -1.0
    assert c.model_fields_set == {"model"}


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"max_output_tokens": 0}, "max_output_tokens: Input should be greater than or equal to 1"),
        ({"temperature": -0.5}, "temperature:"),
        ({"top_p": 0}, "top_p: Input should be greater than 0"),
        ({"batch_size": "four"}, "batch_size: Input should be a valid integer"),
        ({"tensor_parallel_size": 0}, "tensor_parallel_size:"),
        ({"max_tokens": 5}, "max_tokens: unknown option; known options:"),
        ({"prompt_text": "   "}, "prompt_text is empty"),
        ({"gpu_memory_utilization": 1.5}, "gpu_memory_utilization:"),
    ],
)
def test_invalid_values_name_the_field_and_the_value(values, fragment):
    with pytest.raises(ConfigError) as err:
        VLMConfig.build(**values)
    assert fragment in str(err.value)
    assert str(err.value).startswith("invalid configuration:")


def test_yaml_and_toml_files_load_with_overrides(tmp_path):
    yml = tmp_path / "run.yaml"
    yml.write_text("model: cosmos-reason1\nmax-output-tokens: 64\nstage2: true\n")
    toml = tmp_path / "run.toml"
    toml.write_text('model = "qwen2.5-vl"\ntemperature = 0.5\nbatch_size = 8\n')
    a = VLMConfig.from_file(yml, max_output_tokens=32, seed=None)
    assert (a.model, a.max_output_tokens, a.stage2) == ("cosmos-reason1", 32, True)
    b = VLMConfig.from_file(toml)
    assert (b.temperature, b.batch_size) == (0.5, 8)


@pytest.mark.parametrize(
    ("name", "text", "fragment"),
    [
        ("bad.yaml", "model: [unclosed", "cannot parse"),
        ("list.yaml", "- a\n- b\n", "expected a mapping"),
        ("cfg.json", "{}", "use a .yaml, .yml or .toml file"),
        ("bad.toml", "model = ", "cannot parse"),
    ],
)
def test_bad_config_files_are_reported_with_their_name(tmp_path, name, text, fragment):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config_file(path)
    assert name in str(err.value) and fragment in str(err.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config_file(tmp_path / "nope.yaml")


def test_unknown_key_in_file_is_rejected(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("modle: qwen2.5-vl\n")
    with pytest.raises(ConfigError, match="modle: unknown option"):
        VLMConfig.from_file(path)


def test_old_key_names_are_read_under_the_new_ones(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text("prompt_variant: short\nnum-gpus: 2\n")
    assert load_config_file(path) == {"prompt_style": "short", "tensor_parallel_size": 2}
    config = VLMConfig.from_file(path)
    assert (config.prompt_style, config.tensor_parallel_size) == ("short", 2)


def test_a_key_given_twice_is_refused(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text("max_output_tokens: 5\nmax-output-tokens: 6\n")
    with pytest.raises(ConfigError, match="max_output_tokens is given twice"):
        load_config_file(path)
