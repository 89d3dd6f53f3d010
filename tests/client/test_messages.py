"""Caption media -> OpenAI chat content: what the server will decode is what we sampled."""

from __future__ import annotations

import base64
import io

import av
import numpy as np
import pytest
import torch
from PIL import Image

from vlmcap.client.messages import MediaEncoding, encode_media, frames_data_url, image_data_url
from vlmcap.plugins.registry import get_plugin


def decode_url(url: str) -> tuple[str, bytes]:
    head, _, data = url.partition(",")
    assert head.startswith("data:") and head.endswith(";base64")
    return head[5:].removesuffix(";base64"), base64.b64decode(data)


def clip(t: int = 5, h: int = 48, w: int = 64) -> torch.Tensor:
    """(T, C, H, W) floats in [0, 1] with a distinct grey level per frame."""
    levels = torch.linspace(0.1, 0.9, t).view(t, 1, 1, 1)
    return levels.expand(t, 3, h, w).clone()


def test_image_is_a_lossless_png_data_url():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    encoded = encode_media(Image.fromarray(pixels))
    assert encoded.media_io_kwargs is None
    [part] = encoded.parts
    assert part["type"] == "image_url"
    mime, data = decode_url(part["image_url"]["url"])
    assert mime == "image/png"
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), pixels)


def test_several_images_give_one_part_each_and_jpeg_on_request():
    images = [Image.new("RGB", (20, 10), c) for c in ("red", "blue", "green")]
    encoded = encode_media(images, enc=MediaEncoding(image_format="jpeg"))
    assert [p["type"] for p in encoded.parts] == ["image_url"] * 3
    assert all(decode_url(p["image_url"]["url"])[0] == "image/jpeg" for p in encoded.parts)


def test_video_frames_url_carries_every_frame_and_the_rate():
    encoded = encode_media(clip(t=5), fps=2.5)
    [part] = encoded.parts
    assert part["type"] == "video_url"
    url = part["video_url"]["url"]
    head, _, data = url.partition(",")
    assert head == "data:video/jpeg;base64"
    frames = [np.asarray(Image.open(io.BytesIO(base64.b64decode(f)))) for f in data.split(",")]
    assert len(frames) == 5 and frames[0].shape == (48, 64, 3)
    means = [f.mean() for f in frames]
    assert means == sorted(means) and means[-1] - means[0] > 150  # order and content kept
    assert encoded.media_io_kwargs == {"video": {"num_frames": -1, "fps": 2.5}}


def test_png_frames_are_exact():
    frames = np.random.default_rng(1).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    url = frames_data_url(frames, MediaEncoding(frame_format="png"))
    parts = url.partition(",")[2].split(",")
    decoded = [np.asarray(Image.open(io.BytesIO(base64.b64decode(p)))) for p in parts]
    assert all(np.array_equal(a, b) for a, b in zip(decoded, frames, strict=True))


def test_video_as_mp4_decodes_to_the_same_number_of_frames():
    encoded = encode_media(clip(t=6, h=47, w=63), fps=3.0, video="mp4")
    mime, data = decode_url(encoded.parts[0]["video_url"]["url"])
    assert mime == "video/mp4"
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        rate = float(stream.average_rate or 0)
    assert len(frames) == 6 and frames[0].shape == (46, 62, 3)  # even sides for yuv420p
    assert rate == pytest.approx(3.0)
    assert encoded.media_io_kwargs == {"video": {"num_frames": -1}}


def test_video_as_images_is_capped_and_spread_over_the_clip():
    encoded = encode_media(clip(t=9), video="images", max_images=4)
    assert [p["type"] for p in encoded.parts] == ["image_url"] * 4
    means = [
        np.asarray(Image.open(io.BytesIO(decode_url(p["image_url"]["url"])[1]))).mean()
        for p in encoded.parts
    ]
    assert means[0] < 0.15 * 255 and means[-1] > 0.85 * 255  # first and last frame kept


def test_bad_media_raises():
    with pytest.raises(ValueError, match="no images"):
        encode_media([])
    with pytest.raises(ValueError):
        image_data_url(Image.new("RGB", (2, 2)), enc=MediaEncoding(jpeg_quality=0))


def test_plugin_messages_put_media_before_the_prompt_and_add_the_system_turn():
    parts = [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}]
    image = Image.new("RGB", (4, 4))
    qwen = get_plugin("qwen2.5-vl")
    [user] = qwen.chat_messages(qwen.make_request("Describe.", image), [parts])
    assert user["role"] == "user"
    assert user["content"] == [*parts, {"type": "text", "text": "Describe."}]
    cosmos = get_plugin("cosmos-reason1")
    system, user = cosmos.chat_messages(cosmos.make_request("Describe.", image), [parts])
    assert system == {"role": "system", "content": cosmos.system_prompt}
    assert user["content"][-1]["text"] == "Describe."


def test_a_clip_sent_as_images_fills_its_one_placeholder_with_every_frame():
    import torch

    qwen = get_plugin("qwen2.5-vl")
    clip = torch.rand(5, 3, 28, 28)
    encoded = encode_media(clip, 2.0, video="images", max_images=3)
    assert [len(g) for g in encoded.groups] == [3]
    [user] = qwen.chat_messages(qwen.make_request("What moves?", clip), encoded.groups)
    assert [p["type"] for p in user["content"]] == ["image_url"] * 3 + ["text"]
