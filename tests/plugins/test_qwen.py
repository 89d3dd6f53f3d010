"""Qwen2.5-VL and Cosmos-Reason1 plugins: prompts, media formats, stage 2, decode."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import engine_config
from vlmcap.engine import caption_items
from vlmcap.plugins.cosmos_reason1 import CosmosReason1Plugin
from vlmcap.plugins.qwen2_5_vl import Qwen25VLPlugin
from vlmcap.plugins.registry import get_plugin
from vlmcap.records import Item, Record, Status


@pytest.fixture(scope="module")
def qwen(tiny_model_path):
    return Qwen25VLPlugin(tiny_model_path)


def engine_request(plugin, prompt, media, fps=None):
    """What the plugin hands vLLM's engine for ``prompt`` over ``media``."""
    return plugin.engine_inputs(plugin.make_request(prompt, media, fps=fps), plugin.processor())


def test_video_request_has_one_placeholder_and_uint8_frames_with_metadata(qwen):
    frames = torch.rand(6, 3, 56, 84)
    req = engine_request(qwen, "What happens?", frames, fps=3.0)
    assert req["prompt"].count("<|video_pad|>") == 1
    assert "<|image_pad|>" not in req["prompt"]
    assert req["prompt"].rstrip().endswith("<|im_start|>assistant")
    video, meta = req["multi_modal_data"]["video"]
    assert video.shape == (6, 56, 84, 3) and video.dtype == np.uint8
    np.testing.assert_array_equal(video[2, 10, 20], np.rint(frames[2, :, 10, 20].numpy() * 255))
    assert meta["fps"] == 3.0 and meta["total_num_frames"] == 6
    assert meta["duration"] == pytest.approx(2.0)


def test_several_images_get_one_placeholder_each(qwen):
    imgs = [Image.new("RGB", (56, 56), c) for c in ("red", "blue", "green")]
    req = engine_request(qwen, "Which is blue?", imgs)
    assert req["prompt"].count("<|image_pad|>") == 3
    assert req["multi_modal_data"]["image"] == imgs
    single = engine_request(qwen, "x", Image.new("L", (56, 56)))
    assert single["multi_modal_data"]["image"].mode == "RGB"


def test_stage2_request_reuses_media_and_appends_the_stage1_text(qwen):
    frames = torch.rand(4, 3, 56, 56)
    record = Record(key="k", request_id="r", item=Item("k", frames, fps=2.0))
    record.stage1_text = "a red circle moving left"
    request = qwen.make_stage2_request(record, "Refine this: ")
    assert request.media is frames and request.fps == 2.0
    req = qwen.engine_inputs(request, qwen.processor())
    assert "Refine this: a red circle moving left" in req["prompt"]
    assert req["multi_modal_data"]["video"][0].shape == (4, 56, 56, 3)
    with pytest.raises(ValueError, match="stage-1 text"):
        qwen.make_stage2_request(Record(key="k", request_id="r"), "x")


def test_prompt_styles():
    plugin = get_plugin("qwen2.5-vl")
    assert plugin.prompt("short").startswith("Write a very short caption")
    assert plugin.prompt("short", text="custom") == "custom"
    with pytest.raises(ValueError, match="no prompt variant 'poem'; known: default, image"):
        plugin.prompt("poem")
    assert get_plugin("cosmos-reason1").prompt() != plugin.prompt()


def test_cosmos_uses_its_reasoning_system_prompt(tiny_model_path):
    plugin = CosmosReason1Plugin(tiny_model_path)
    req = engine_request(plugin, "Describe.", torch.rand(2, 3, 56, 56))
    assert "<think>" in req["prompt"] and "You are a helpful assistant. Answer" in req["prompt"]


def test_entry_point_plugin_runs_through_the_real_engine(engine, tiny_model_path):
    _, llm = engine
    plugin = get_plugin("example-shouty", str(tiny_model_path))
    config = engine_config(tiny_model_path, model="example-shouty")
    item = Item("red.png", Image.new("RGB", (56, 56), (255, 0, 0)))
    (record,) = caption_items([item], llm, plugin, config)
    assert record.status == Status.OK
    assert record.prompt == "Describe this image in detail."
    assert record.text.startswith("SHOUTY: ")
    assert record.text == record.text.upper()


def test_engine_inputs_and_chat_messages_come_from_one_request(qwen):
    """The engine's prompt and the server's messages are two views of the same ModelRequest:
    same turns, same order, media where the placeholders were."""
    images = [Image.new("RGB", (56, 56), c) for c in ("red", "blue")]
    request = qwen.make_request("Which is red?", images)
    parts = [[{"type": "image_url", "image_url": {"url": f"data:{i}"}}] for i in range(2)]
    [user] = qwen.chat_messages(request, parts)
    assert [p["type"] for p in user["content"]] == ["image_url", "image_url", "text"]
    assert [p["image_url"]["url"] for p in user["content"][:2]] == ["data:0", "data:1"]
    assert user["content"][2]["text"] == "Which is red?"
    prompt = qwen.engine_inputs(request, qwen.processor())["prompt"]
    assert prompt.count("<|image_pad|>") == 2 and "Which is red?" in prompt
    with pytest.raises(ValueError, match="no placeholder"):
        qwen.chat_messages(request, [*parts, parts[0]])
    with pytest.raises(ValueError, match="more media placeholders"):
        qwen.chat_messages(request, parts[:1])
