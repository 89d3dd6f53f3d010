"""Caption media -> OpenAI chat content, as vLLM's OpenAI-compatible server accepts it.

What the server (vLLM 0.32) takes, and how we send each kind of media:

    image          ``image_url`` with a ``data:image/png;base64,...`` URL (lossless: the server
                   sees the pixels the offline engine would) or JPEG
    video, frames  ``video_url`` with ``data:video/jpeg;base64,<frame1>,<frame2>,...``: the
                   frames we sampled, in order, none re-sampled by the server; the sampling
                   rate goes in the request's ``media_io_kwargs`` (``{"video": {"fps": ...}}``),
                   which the server only honours when started with ``--trust-request-mm-kwargs``
                   (``vlmcap serve`` does)
    video, mp4     ``video_url`` with ``data:video/mp4;base64,...``: the frames re-encoded
                   (H.264, PyAV) at the sampling rate; the server decodes every frame
    video, images  one ``image_url`` per frame, for models that take no video

The first is the default for videos: exact frames and timestamps, and no video decoder needed
on the server. The encoding runs off the event loop (``asyncio.to_thread``) in the client.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

import numpy as np
from PIL import Image

from vlmcap.media.frames import DEFAULT_VIDEO_FPS, as_image_list, is_video, video_to_uint8_thwc
from vlmcap.records import Media

ImageFormat = Literal["png", "jpeg"]
VideoMode = Literal["frames", "mp4", "images"]
ContentPart = dict[str, Any]


@dataclass(frozen=True)
class MediaEncoding:
    """How media travel to the server (see the module docstring)."""

    image_format: ImageFormat = "png"
    frame_format: ImageFormat = "jpeg"  # frames of ``frames``/``images`` videos
    jpeg_quality: int = 95
    png_compress_level: int = 1  # fast; the bytes are base64 on a local network anyway
    video: VideoMode = "frames"

    def __post_init__(self) -> None:
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be 1-100, got {self.jpeg_quality}")
        if not 0 <= self.png_compress_level <= 9:
            raise ValueError(f"png_compress_level must be 0-9, got {self.png_compress_level}")


@dataclass(frozen=True)
class EncodedMedia:
    """The content parts of one item's media, one group per placeholder of its request.

    A picture or a clip is one part, except a clip sent as images (a model without video
    input), whose frames are one group of parts. ``media_io_kwargs``: per-request media
    options for the server (None: none needed).
    """

    groups: list[list[ContentPart]]
    media_io_kwargs: dict[str, dict[str, Any]] | None = None

    @property
    def parts(self) -> list[ContentPart]:
        """Every content part, in order."""
        return [part for group in self.groups for part in group]

    @property
    def bytes(self) -> int:
        """Characters of data URLs (the request's size, roughly)."""
        total = 0
        for part in self.parts:
            for key in ("image_url", "video_url"):
                if key in part:
                    total += len(part[key]["url"])
        return total


def _image_bytes(image: Image.Image, fmt: ImageFormat, enc: MediaEncoding) -> bytes:
    buf = io.BytesIO()
    if fmt == "png":
        image.save(buf, format="PNG", compress_level=enc.png_compress_level)
    else:
        image.save(buf, format="JPEG", quality=enc.jpeg_quality)
    return buf.getvalue()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def image_data_url(
    image: Image.Image, fmt: ImageFormat = "png", enc: MediaEncoding | None = None
) -> str:
    """``data:image/<fmt>;base64,...`` of one RGB image."""
    enc = enc or MediaEncoding()
    return f"data:image/{fmt};base64,{_b64(_image_bytes(image, fmt, enc))}"


def frames_data_url(frames: np.ndarray, enc: MediaEncoding | None = None) -> str:
    """vLLM's frame-list video URL: ``data:video/jpeg;base64,<f1>,<f2>,...``.

    ``frames`` is ``(T, H, W, 3)`` uint8. The server decodes each part as an image, so the
    frames arrive as sampled (JPEG-compressed unless ``frame_format`` is ``png``).
    """
    enc = enc or MediaEncoding()
    parts = [_b64(_image_bytes(Image.fromarray(frame), enc.frame_format, enc)) for frame in frames]
    return "data:video/jpeg;base64," + ",".join(parts)


def mp4_data_url(frames: np.ndarray, fps: float, crf: int = 18) -> str:
    """``data:video/mp4;base64,...``: ``(T, H, W, 3)`` uint8 frames as H.264 at ``fps``."""
    import av

    t, h, w = frames.shape[:3]
    h2, w2 = h - h % 2, w - w % 2  # yuv420p wants even sides
    if t == 0 or h2 == 0 or w2 == 0:
        raise ValueError(f"cannot encode {frames.shape} frames as mp4")
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        stream: Any = container.add_stream(
            "libx264", rate=Fraction(fps).limit_denominator(1000), options={"crf": str(crf)}
        )
        stream.width, stream.height, stream.pix_fmt = w2, h2, "yuv420p"
        for frame in frames:
            video_frame = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(frame[:h2, :w2]), format="rgb24"
            )
            container.mux(stream.encode(video_frame))
        container.mux(stream.encode())
    return f"data:video/mp4;base64,{_b64(buf.getvalue())}"


def _evenly(n: int, k: int) -> list[int]:
    """``k`` indices out of ``range(n)``, spread evenly, first and last included."""
    if k >= n:
        return list(range(n))
    if k == 1:
        return [0]
    return [round(i * (n - 1) / (k - 1)) for i in range(k)]


def encode_media(
    media: Media,
    fps: float | None = None,
    enc: MediaEncoding | None = None,
    *,
    video: VideoMode | None = None,
    max_images: int | None = None,
) -> EncodedMedia:
    """Content parts for ``media``: a ``(T, C, H, W)`` clip, one PIL image or several.

    ``video`` overrides ``enc.video`` (e.g. ``images`` for a model without video input);
    ``max_images`` caps the frames sent as images (spread evenly over the clip).
    """
    enc = enc or MediaEncoding()
    mode = video or enc.video
    if not is_video(media):
        urls = [image_data_url(im, enc.image_format, enc) for im in as_image_list(media)]
        return EncodedMedia([[{"type": "image_url", "image_url": {"url": u}}] for u in urls])
    frames = video_to_uint8_thwc(media)
    rate = float(fps or DEFAULT_VIDEO_FPS)
    if mode == "images":
        keep = _evenly(len(frames), max_images or len(frames))
        urls = [image_data_url(Image.fromarray(frames[i]), enc.frame_format, enc) for i in keep]
        return EncodedMedia([[{"type": "image_url", "image_url": {"url": u}} for u in urls]])
    if mode == "mp4":
        url = mp4_data_url(frames, rate)
        kwargs: dict[str, Any] = {"num_frames": -1}
    else:
        url = frames_data_url(frames, enc)
        kwargs = {"num_frames": -1, "fps": rate}
    part = {"type": "video_url", "video_url": {"url": url}}
    return EncodedMedia([[part]], {"video": kwargs})
