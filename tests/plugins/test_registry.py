"""The plugin registry: built-ins, run-time registration and entry-point plugins."""

from __future__ import annotations

import pytest

from vlmcap.plugins import registry
from vlmcap.plugins.base import VLMPlugin
from vlmcap.plugins.qwen2_5_vl import Qwen25VLPlugin


def test_builtin_variants_are_listed():
    names = registry.available()
    assert {"qwen2.5-vl", "cosmos-reason1", "tiny-qwen2.5-vl", "tiny-random-qwen2.5-vl"} <= set(
        names
    )
    assert registry.get_plugin_class("qwen2.5-vl").model_id == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert registry.get_plugin_class("cosmos-reason1").model_id == "nvidia/Cosmos-Reason1-7B"


def test_entry_point_plugin_installed_in_the_venv_is_found():
    # examples/plugin is pip-installed by scripts/setup.sh like any user plugin
    cls = registry.get_plugin_class("example-shouty")
    assert cls.__module__ == "vlmcap_example_plugin"
    assert "example-shouty" in registry.available()


def test_unknown_variant_lists_the_available_ones():
    with pytest.raises(registry.UnknownModelError) as err:
        registry.get_plugin("no-such-model")
    assert "no-such-model" in str(err.value) and "qwen2.5-vl" in str(err.value)


def test_register_decorator_and_conflicts():
    @registry.register
    class Mine(Qwen25VLPlugin):
        variant = "test-mine"
        model_id = "me/mine"

    assert registry.get_plugin("test-mine", "/models/mine").model_path == "/models/mine"
    with pytest.raises(ValueError, match="already registered"):

        @registry.register
        class Other(Qwen25VLPlugin):
            variant = "test-mine"
            model_id = "me/other"

    with pytest.raises(TypeError, match="not a VLMPlugin"):
        registry.register(dict)  # type: ignore[arg-type]


def test_model_path_resolution(tmp_path, monkeypatch):
    plugin = registry.get_plugin("qwen2.5-vl")
    monkeypatch.delenv("VLMCAP_MODEL_DIR", raising=False)
    assert plugin.model_path == "Qwen/Qwen2.5-VL-7B-Instruct"
    (tmp_path / "Qwen" / "Qwen2.5-VL-7B-Instruct").mkdir(parents=True)
    monkeypatch.setenv("VLMCAP_MODEL_DIR", str(tmp_path))
    assert plugin.model_path == str(tmp_path / "Qwen" / "Qwen2.5-VL-7B-Instruct")
    assert registry.get_plugin("qwen2.5-vl", "/x").model_path == "/x"


def test_a_plugin_needs_only_its_names_to_describe_requests():
    from PIL import Image

    class Minimal(VLMPlugin):
        variant = "minimal"
        model_id = "x/y"

    image = Image.new("RGB", (8, 8))
    request = Minimal().make_request("What is it?", image)
    assert request.media is image
    assert request.messages == [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is it?"}]}
    ]
