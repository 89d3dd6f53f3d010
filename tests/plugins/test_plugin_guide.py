"""docs/writing_a_plugin.md is right about the current code, and examples/plugin keeps the
contract it shows.

The guide's Python blocks run in order in one namespace, as a reader would paste them (later
blocks use the classes of earlier ones); their own asserts and no-engine tests run, and the
classes they define are checked here from the outside. No engine is started: the block that
starts one on a tiny model is only defined.
"""

from __future__ import annotations

import inspect
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from vlmcap.config import VLMConfig
from vlmcap.core import Lifecycle
from vlmcap.core.request import Completion
from vlmcap.plugins import registry
from vlmcap.plugins.capabilities import UnsupportedInputError
from vlmcap.plugins.reasoning import Decoded
from vlmcap.records import Item, Status

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "writing_a_plugin.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def blocks(language: str) -> list[str]:
    return [code for lang, code in FENCE.findall(GUIDE.read_text()) if lang == language]


@pytest.fixture(scope="module")
def guide() -> Iterator[dict[str, Any]]:
    """The namespace of the guide's Python blocks, run in order; the variants they register
    are taken out of the registry afterwards."""
    registry.available()  # entry points loaded now (once per process), so they stay registered
    before = set(registry._REGISTERED)
    namespace: dict[str, Any] = {"__name__": "writing_a_plugin"}
    try:
        for number, code in enumerate(blocks("python"), 1):
            exec(compile(code, f"{GUIDE.name}, python block {number}", "exec"), namespace)
        yield namespace
    finally:
        for name in set(registry._REGISTERED) - before:
            del registry._REGISTERED[name]


def red(side: int = 64) -> Image.Image:
    return Image.new("RGB", (side, side), (255, 0, 0))


def test_the_guide_has_the_blocks_this_test_reads():
    assert len(blocks("python")) >= 8
    assert any("class AcmeVLPlugin(VLMPlugin)" in code for code in blocks("python"))


def test_the_guide_s_own_tests_pass_without_an_engine(guide):
    tests = {name: f for name, f in guide.items() if name.startswith("test_") and callable(f)}
    offline = {name: f for name, f in tests.items() if not inspect.signature(f).parameters}
    engine = set(tests) - set(offline)
    assert len(offline) >= 3
    assert engine == {"test_a_picture_is_captioned_by_the_real_engine"}  # defined, not run here
    for test in offline.values():
        test()


def test_the_worked_example_builds_its_prompt_layout(guide):
    plugin = guide["AcmeVLPlugin"]()
    instruction = guide["THINK_FIRST"]
    pictures = [red(), Image.new("RGB", (64, 64), (0, 0, 255))]
    request = plugin.make_request("Which is red?", pictures)
    system, user = request.messages
    assert system == {"role": "system", "content": plugin.system_prompt}
    assert user["role"] == "user"
    assert user["content"] == [
        {"type": "text", "text": f"Which is red?\n{instruction}"},
        {"type": "image"},
        {"type": "image"},
    ]
    assert request.media is pictures and request.prompt == f"Which is red?\n{instruction}"
    assert plugin.prompt_for("image") == "Describe this image in detail."
    assert plugin.prompt_for("video") == "Describe what happens in the clip."


def test_the_worked_example_sends_a_clip_as_one_picture_per_frame(guide):
    plugin = guide["AcmeVLPlugin"]()
    clip = torch.rand(4, 3, 28, 28)
    request = plugin.make_request("What happens?", clip, fps=2.0)
    assert request.messages[1]["content"][1:] == [{"type": "video"}]
    assert request.fps == 2.0
    content = plugin.template_messages(request)[1]["content"]
    assert [p["type"] for p in content] == ["text", "image", "image", "image", "image"]
    images = plugin.multi_modal_data(request)["image"]
    assert len(images) == 4 and all(isinstance(im, Image.Image) for im in images)
    frames = [{"type": "image_url", "image_url": {"url": f"data:{i}"}} for i in range(4)]
    [_, sent] = plugin.chat_messages(request, [frames])
    assert [p["type"] for p in sent["content"]] == ["text", *["image_url"] * 4]


def test_the_worked_example_decodes_reasoning_apart(guide):
    plugin = guide["AcmeVLPlugin"]()
    text = "<think>A disc.</think>\n<answer>a red disc</answer>"
    both = Completion(text=text, finish_reason="stop")
    assert plugin.decode(both) == Decoded("a red disc", "A disc.")
    cut = Completion(text="<think>The disc is", finish_reason="length")
    assert plugin.decode(cut) == Decoded("", "The disc is")  # the lifecycle fails that item
    plain = Completion(text="a red disc<|im_end|>", finish_reason="stop")
    assert plugin.decode(plain) == Decoded("a red disc")


def test_the_worked_example_refuses_what_it_cannot_take(guide):
    plugin = guide["AcmeVLPlugin"]()
    caps = plugin.capabilities
    caps.check([red()] * 8, plugin.variant)
    caps.check(torch.rand(8, 3, 28, 28), plugin.variant)
    with pytest.raises(UnsupportedInputError, match=r"'acme-vl' takes at most 8 picture\(s\)"):
        caps.check([red()] * 9, plugin.variant)
    # the lifecycle checks before it asks the plugin for a request: that item fails
    lifecycle = Lifecycle(plugin, VLMConfig(model="acme-vl", model_path="/models/unused"))
    record = lifecycle.new_record(Item("long.mp4", torch.rand(9, 3, 28, 28), fps=2.0))
    assert lifecycle.first(record) is None
    assert record.status == Status.FAILED
    assert record.error.startswith("unsupported input: model 'acme-vl' takes a clip as at most 8")
    assert caps.inputs == ("image", "images (<= 8)", "video (as <= 8 frames)")


def test_the_worked_example_s_engine_settings(guide):
    acme, acme7b = guide["AcmeVLPlugin"](), guide["AcmeVL7BPlugin"]()
    base = {"limit_mm_per_prompt": {"image": 8, "video": 0}, "max_model_len": 16384}
    base["trust_remote_code"] = True
    assert acme.engine_overrides(VLMConfig(model="acme-vl")) == base
    config = VLMConfig(model="acme-vl-7b", preprocess=False, max_model_len=4096)
    assert acme7b.engine_overrides(config) == {
        "limit_mm_per_prompt": {"image": 8, "video": 0},
        "trust_remote_code": True,
        "mm_processor_kwargs": {"do_resize": False},
        "max_num_seqs": 64,
    }
    assert "mm_processor_kwargs" not in acme7b.engine_overrides(VLMConfig(model="acme-vl-7b"))


def test_engine_args_win_over_the_plugin_s_overrides(guide):
    from vlmcap.engine.args import engine_kwargs

    plugin = guide["AcmeVL7BPlugin"]("/models/acme-vl-7b")
    kwargs = engine_kwargs(plugin, VLMConfig(model="acme-vl-7b"))
    assert kwargs["max_num_seqs"] == 64 and kwargs["model"] == "/models/acme-vl-7b"
    config = VLMConfig(model="acme-vl-7b", engine_args={"max_num_seqs": 8})
    assert engine_kwargs(plugin, config)["max_num_seqs"] == 8


def test_a_lora_adapter_reaches_the_engine_settings(guide):
    from vlmcap.plugins.base import VLMPlugin

    class WithAdapter(VLMPlugin):
        variant = "with-adapter"
        model_id = "x/with-adapter"
        capabilities = guide["WITH_ADAPTER"]

    overrides = WithAdapter().engine_overrides(VLMConfig(model="with-adapter"))
    assert overrides["enable_lora"] is True
    assert overrides["max_lora_rank"] == 64 and overrides["max_loras"] == 1


def test_the_registered_classes_and_the_entry_point_table(guide):
    assert registry.get_plugin_class("acme-vl") is guide["AcmeVLPlugin"]
    assert registry.get_plugin_class("acme-vl-7b") is guide["AcmeVL7BPlugin"]
    with pytest.raises(ValueError, match="already registered"):

        class Other(guide["AcmeVLPlugin"]):
            variant = "acme-vl"

        registry.register(Other)
    [toml] = blocks("toml")
    table = tomllib.loads(toml)["project"]["entry-points"][registry.ENTRY_POINT_GROUP]
    for name, target in table.items():
        cls = guide[target.partition(":")[2]]
        assert cls.variant == name  # the entry-point name equals the variant


def test_the_generic_subclass_resolves_its_own_weights(guide, monkeypatch):
    monkeypatch.delenv("VLMCAP_MODEL_DIR", raising=False)
    cls = guide["RemoteCodeVLPlugin"]
    assert cls().model_path == "org/remote-code-vl"
    assert cls("/models/x").model_path == "/models/x"
    assert cls.trust_remote_code is True and cls.default_max_model_len == 8192


def test_the_paths_the_guide_names_exist():
    text = GUIDE.read_text()
    named = set(re.findall(r"`((?:src|tests|examples|docs)/[\w./-]+)`", text))
    named |= {f"docs/{m}" for m in re.findall(r"\]\((?!#|https?:)([^)#]+)\)", text)}
    assert named, "the guide names no files"
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert not missing, missing
    anchors = set(re.findall(r"\]\(#([\w-]+)\)", text))
    headings = {
        re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-")
        for h in re.findall(r"^#+ (.+)$", text, re.MULTILINE)
    }
    assert anchors <= headings, anchors - headings


# ---- examples/plugin: the out-of-tree example the guide points to ---------------------------


@pytest.fixture
def shouty():
    cls = registry.get_plugin_class("example-shouty")
    return cls("/models/unused")


def test_the_example_plugin_takes_one_or_two_pictures_and_no_video(shouty):
    caps = shouty.capabilities
    assert not caps.takes_video and caps.max_images == 2
    assert caps.mm_limits() == {"image": 2, "video": 0}
    request = shouty.make_request("Describe this image in detail.", [red(), red()])
    assert [p["type"] for p in request.messages[-1]["content"]] == ["image", "image", "text"]
    with pytest.raises(UnsupportedInputError, match=r"'example-shouty' takes no video"):
        caps.check(torch.rand(2, 3, 56, 56), shouty.variant)
    with pytest.raises(UnsupportedInputError, match=r"at most 2 picture\(s\).*has 3"):
        caps.check([red()] * 3, shouty.variant)


def test_the_example_plugin_decodes_to_a_shouted_caption(shouty):
    done = Completion(text="a red circle<|im_end|>", finish_reason="stop")
    assert shouty.decode(done) == Decoded("SHOUTY: A RED CIRCLE")
    assert shouty.decode(Completion(text=" \n", finish_reason="stop")) == Decoded("")
    assert shouty.prompt_for("image") == "Describe this image in detail."
    assert shouty.prompt_for("image", "short").startswith("Write a very short caption")


def test_the_example_package_declares_its_entry_point():
    project = tomllib.loads((ROOT / "examples/plugin/pyproject.toml").read_text())["project"]
    table = project["entry-points"][registry.ENTRY_POINT_GROUP]
    assert table == {"example-shouty": "vlmcap_example_plugin:ShoutyTinyPlugin"}
