"""Config validation and config files."""

from __future__ import annotations

import pytest

from vlmcap.config import ConfigError, VLMConfig, load_config_file


def test_defaults_match_the_documented_values():
    c = VLMConfig()
    assert (c.temperature, c.top_p, c.repetition_penalty) == (0.1, 0.001, 1.05)
    assert (c.max_output_tokens, c.batch_size, c.tensor_parallel_size) == (512, 4, 1)
    assert c.inflight_batching and not c.stage2 and c.preprocess and c.mm_cache


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
