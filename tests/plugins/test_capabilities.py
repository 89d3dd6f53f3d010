"""The capability contract: what each family declares and what reads it (no engine here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import engine_config
from vlmcap.config import VLMConfig
from vlmcap.engine.args import engine_kwargs
from vlmcap.media.inputs import MediaFile
from vlmcap.media.video import sample_windows
from vlmcap.options.media import MediaOptions
from vlmcap.pipeline.load import frame_limits, load_file
from vlmcap.plugins.base import VLMPlugin
from vlmcap.plugins.capabilities import Capabilities, LoRAAdapter, UnsupportedInputError
from vlmcap.plugins.registry import get_plugin_class
from vlmcap.tasks.caption import CaptionTask
from vlmcap.tiny.synthetic import SceneSpec, write_video


def clip(frames: int) -> torch.Tensor:
    return torch.rand(frames, 3, 32, 32)


def test_each_family_declares_its_inputs_and_grid():
    expected = {
        "qwen2.5-vl": (True, 28, 2),
        "cosmos-reason1": (True, 28, 2),
        "qwen3-vl-8b": (True, 32, 2),
        "qwen3-vl-4b": (True, 32, 2),
        "cosmos-reason2": (True, 32, 2),
        "tiny-qwen3-vl": (True, 32, 2),
    }
    for variant, (video, pixels, frames) in expected.items():
        caps = get_plugin_class(variant).capabilities
        assert (caps.video, caps.pixel_multiple, caps.frame_multiple) == (video, pixels, frames)
        assert caps.max_images == 4


def test_check_names_the_model_and_the_input():
    pictures_only = Capabilities(max_images=2)
    with pytest.raises(UnsupportedInputError, match=r"'m' takes no video"):
        pictures_only.check(clip(4), "m")
    with pytest.raises(UnsupportedInputError, match=r"at most 2 picture\(s\).*has 3"):
        pictures_only.check([Image.new("RGB", (8, 8))] * 3, "m")
    pictures_only.check([Image.new("RGB", (8, 8))] * 2, "m")  # within the limit
    as_frames = Capabilities(max_images=4, video_as_images=True)
    as_frames.check(clip(4), "m")
    with pytest.raises(UnsupportedInputError, match="at most 4 frames; this one has 6"):
        as_frames.check(clip(6), "m")


def test_contradictory_capabilities_are_refused():
    with pytest.raises(ValueError, match="either as a video or as pictures"):
        Capabilities(video=True, video_as_images=True)
    with pytest.raises(ValueError, match="at least one picture"):
        Capabilities(max_images=0)


def test_mm_limits_and_inputs_follow_the_declaration():
    caps = Capabilities(max_images=3, video_as_images=True)
    assert caps.mm_limits() == {"image": 3, "video": 0}
    assert caps.inputs == ("image", "images (<= 3)", "video (as <= 3 frames)")
    assert Capabilities(max_images=1, video=True).mm_limits() == {"image": 1, "video": 1}


class FramesPlugin(VLMPlugin):
    """A family that takes a clip as up to three pictures, on a 16-pixel grid."""

    variant = "frames-test"
    model_id = "test/frames"
    capabilities = Capabilities(max_images=3, video_as_images=True, pixel_multiple=16)
    default_max_model_len = 1024


class PicturesPlugin(VLMPlugin):
    variant = "pictures-test"
    model_id = "test/pictures"
    capabilities = Capabilities(max_images=1)


class LoRAPlugin(VLMPlugin):
    variant = "lora-test"
    model_id = "test/lora"
    capabilities = Capabilities(lora=LoRAAdapter("vision-lora", 320))


def test_a_clip_as_pictures_has_one_placeholder_and_one_image_per_frame():
    plugin = FramesPlugin("/nowhere")
    request = plugin.make_request("Describe.", clip(3), fps=2.0)
    assert [p["type"] for p in request.messages[-1]["content"]] == ["video", "text"]
    (user,) = plugin.template_messages(request)
    assert [p["type"] for p in user["content"]] == ["image", "image", "image", "text"]
    data = plugin.multi_modal_data(request)
    assert set(data) == {"image"} and len(data["image"]) == 3
    assert all(isinstance(im, Image.Image) and im.size == (32, 32) for im in data["image"])


def test_engine_settings_come_from_the_declaration():
    config = VLMConfig(model="frames-test", model_path="/nowhere")
    overrides = FramesPlugin("/nowhere").engine_overrides(config)
    assert overrides == {"limit_mm_per_prompt": {"image": 3, "video": 0}, "max_model_len": 1024}
    explicit = VLMConfig(model="frames-test", model_path="/nowhere", max_model_len=512)
    assert "max_model_len" not in FramesPlugin("/nowhere").engine_overrides(explicit)
    lora = LoRAPlugin("/models/x").engine_overrides(config)
    assert (lora["enable_lora"], lora["max_lora_rank"], lora["max_loras"]) == (True, 320, 1)


def test_the_lora_request_points_into_the_model_folder():
    request = LoRAPlugin("/models/x").lora_request()
    assert request.lora_name == "lora-test" and request.lora_path == "/models/x/vision-lora"
    assert FramesPlugin("/nowhere").lora_request() is None


def test_no_preprocess_is_a_qwen_processor_switch(tiny_model_path):
    qwen = engine_config(tiny_model_path, preprocess=False)
    kwargs = engine_kwargs(get_plugin_class("tiny-qwen2.5-vl")(str(tiny_model_path)), qwen)
    assert kwargs["mm_processor_kwargs"] == {
        "do_resize": False,
        "do_rescale": True,
        "do_normalize": True,
    }
    other = VLMConfig(model="frames-test", model_path="/nowhere", preprocess=False)
    assert "mm_processor_kwargs" not in FramesPlugin("/nowhere").engine_overrides(other)


@pytest.fixture(scope="module")
def video_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("caps") / "clip.mp4"
    write_video(
        path, SceneSpec(colour="red", shape="circle", direction="right"), seconds=2.0, fps=8
    )
    return path


def test_frames_follow_the_model_s_pixel_grid(video_file):
    for multiple in (28, 32, 16):
        got = sample_windows(video_file, fps=2.0, max_pixels=200 * 150, pixel_multiple=multiple)
        h, w = got.windows[0].frames.shape[1:3]
        assert h % multiple == 0 and w % multiple == 0


def test_frame_limits_keep_a_mergeable_count_within_the_pictures_a_model_takes():
    opts = MediaOptions(max_frames=15)
    assert frame_limits(opts, None) == (15, 2)
    assert frame_limits(opts, get_plugin_class("qwen3-vl-8b").capabilities) == (14, 2)
    assert frame_limits(opts, FramesPlugin.capabilities) == (3, 2)
    assert frame_limits(MediaOptions(max_frames=1, min_frames=1), PicturesPlugin.capabilities) == (
        1,
        1,
    )


def test_a_clip_for_a_frames_model_is_sampled_to_its_picture_count(video_file):
    media = MediaFile(path=video_file, key="clip.mp4", kind="video")
    prompts = {"image": "p", "video": "v"}
    loaded = load_file(media, MediaOptions(), prompts, frozenset(), FramesPlugin.capabilities)
    (item,) = loaded.items
    assert item.media.shape[0] == 3 and item.media.shape[2] % 16 == 0


def test_a_pictures_only_model_refuses_a_video_file_before_decoding(tmp_path):
    fake = tmp_path / "not-even-a-video.mp4"
    fake.write_bytes(np.zeros(16, dtype=np.uint8).tobytes())
    task = CaptionTask(PicturesPlugin("/nowhere"), VLMConfig(model="pictures-test"))
    loaded = task.load((MediaFile(path=fake, key="x.mp4", kind="video"), frozenset()))
    assert loaded.error == "x.mp4: model 'pictures-test' takes no video (pictures only)"


def test_a_server_serves_the_adapter_under_the_variant_and_the_base_beside_it():
    from vlmcap.server.command import served_names

    assert served_names(LoRAPlugin("/models/x"), "/models/x") == [
        "--served-model-name",
        "lora-test-base",
        "--lora-modules",
        "lora-test=/models/x/vision-lora",
    ]
    assert served_names(FramesPlugin("/m"), "/m") == ["--served-model-name", "frames-test"]
