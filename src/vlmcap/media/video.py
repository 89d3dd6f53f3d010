"""Video decoding with PyAV: one streaming pass samples the frames of every time window.

Flow of ``sample_windows``:
  1. ``check_file`` and ``av.open``; failures become ``MediaError`` (file name + cause).
  2. ``plan_windows`` over the header's duration (a packet scan, no decoding, when the header
     has none), and the frame times wanted in each window (``fps_targets`` / ``count_targets``).
  3. ``_decode``: frames stream out of the decoder once; a frame that reaches one or more wanted
     times is converted to RGB at the pixel budget (once, even when windows overlap), every other
     frame is dropped undecoded-to-RGB. Memory is the picked frames, whatever the clip length.
  4. Windows with fewer than ``min_frames`` frames, or cut short by a decoding error, are listed
     in ``VideoWindows.skipped`` with the reason instead of being returned as sendable; a clip
     that is one window and too short for that (a single frame) is sent with its last frame
     repeated up to ``min_frames``.

``sample_video`` is the one-window case, kept for callers that want the whole clip.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from vlmcap.media.images import (
    DEFAULT_PIXEL_MULTIPLE,
    MediaError,
    check_file,
    display_name,
    fit_pixels,
)
from vlmcap.media.windows import EPS, count_targets, fps_targets, plan_windows

__all__ = [
    "VIDEO_EXTENSIONS",
    "SkippedWindow",
    "VideoClip",
    "VideoWindow",
    "VideoWindows",
    "fit_pixels",
    "sample_video",
    "sample_windows",
]

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg"})
#: A decoded stream this much shorter than its header says is reported as possibly truncated.
_SHORTFALL_S = 1.0


@dataclass
class VideoClip:
    """Sampled frames of one clip: ``frames`` is ``(T, H, W, 3)`` uint8."""

    frames: np.ndarray
    fps: float  # rate of the sampled frames
    timestamps: list[float]  # seconds from the start of the video stream, one per frame
    duration: float  # seconds covered by the file's video stream


@dataclass
class VideoWindow:
    """The frames sampled in ``[start, end)`` seconds of a video, ready to send."""

    index: int
    start: float
    end: float
    frames: np.ndarray  # (T, H, W, 3) uint8
    timestamps: list[float]  # seconds from the start of the video stream, from frame pts
    fps: float  # effective rate of these frames ((T - 1) / their time span)


@dataclass(frozen=True)
class SkippedWindow:
    """A planned window that is not sendable, and why."""

    index: int
    start: float
    end: float
    frames: int  # frames it got
    reason: str


@dataclass
class VideoWindows:
    """Everything ``sample_windows`` got from one file."""

    path: Path
    duration: float  # seconds of video decoded (from the first frame to the end of the last)
    source_fps: float
    source_size: tuple[int, int]  # (width, height) as displayed, before resizing
    frames_decoded: int
    windows: list[VideoWindow] = field(default_factory=list)
    skipped: list[SkippedWindow] = field(default_factory=list)
    error: str | None = None  # why decoding stopped before the end of the file, if it did


@dataclass(frozen=True)
class _Plan:
    spans: list[tuple[float, float]]  # the windows
    targets: list[list[float]]  # the frame times wanted in each window
    rate: float  # frames per second of the source


@dataclass
class _Decoded:
    picks: list[list[tuple[float, np.ndarray]]]  # per window: (time, frame)
    frames: int = 0
    end: float = 0.0  # time just after the last decoded frame
    error: str | None = None
    size: tuple[int, int] = (0, 0)


def sample_video(
    path: str | Path,
    fps: float = 2.0,
    max_frames: int = 32,
    max_pixels: int = 448 * 448,
    min_frames: int = 2,
) -> VideoClip:
    """Frames of the whole clip at ``fps`` (at most ``max_frames``, spread over a long clip).

    Raises ``MediaError`` naming the file for anything unusable: no video stream, corrupt or
    truncated data, fewer than ``min_frames`` frames.
    """
    result = sample_windows(
        path, fps=fps, max_frames=max_frames, max_pixels=max_pixels, min_frames=min_frames
    )
    if not result.windows:
        reason = result.skipped[0].reason if result.skipped else "no frames to sample"
        raise MediaError(f"{display_name(path)}: {reason}")
    window = result.windows[0]
    return VideoClip(window.frames, window.fps, window.timestamps, result.duration)


def sample_windows(
    path: str | Path,
    *,
    window_s: float | None = None,
    overlap_s: float = 0.0,
    min_window_s: float | None = None,
    fps: float = 2.0,
    num_frames: int | None = None,
    max_frames: int = 32,
    max_pixels: int = 448 * 448,
    min_frames: int = 2,
    pixel_multiple: int = DEFAULT_PIXEL_MULTIPLE,
) -> VideoWindows:
    """Decode ``path`` once and sample frames for each window of ``window_s`` seconds.

    ``window_s=None`` is one window over the whole clip; windows overlap by ``overlap_s``; a
    tail under ``min_window_s`` (default half a window) joins the window before it. Frames are
    picked every ``1/fps`` s inside each window, or, with ``num_frames``, that many spread
    evenly over it; never more than ``max_frames`` (a long window is then covered evenly).
    Frames are resized to ``max_pixels`` (sides multiples of ``pixel_multiple``, the model's
    pixel grid) and turned upright when the file carries a rotation. Raises ``MediaError`` when
    the file gives no frame at all.
    """
    if fps <= 0 or not math.isfinite(fps):
        raise ValueError(f"fps must be > 0, got {fps}")
    if num_frames is not None and num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    if not 1 <= min_frames <= max_frames:
        raise ValueError(f"need 1 <= min_frames <= max_frames, got {min_frames}, {max_frames}")
    p = Path(path)
    name = display_name(p)
    check_file(p)
    try:
        with av.open(str(p)) as container:
            stream = _video_stream(container, name)
            rate = float(stream.average_rate or stream.guessed_rate or 25)
            header_s = _header_duration(container, stream) or _scan_duration(p, rate)
            spans = plan_windows(header_s, window_s, overlap_s, min_window_s)
            if not spans:
                raise MediaError(f"{name}: the video stream has no frames (duration 0 s)")
            frame_s = 1.0 / rate
            n_pick = None if num_frames is None else min(num_frames, max_frames)
            targets = [
                fps_targets(s, e, fps, max_frames)
                if n_pick is None
                else count_targets(s, e, n_pick, frame_s)
                for s, e in spans
            ]
            plan = _Plan(spans, targets, rate)
            decoded = _decode(
                container, stream, plan, max_pixels=max_pixels, multiple=pixel_multiple, name=name
            )
    except MediaError:
        raise
    except PermissionError:
        raise MediaError(f"{name}: permission denied (cannot open the file)") from None
    except av.error.DecoderNotFoundError:
        raise MediaError(
            f"{name}: unsupported video codec (this FFmpeg build has no decoder for it)"
        ) from None
    except av.error.InvalidDataError as exc:
        raise MediaError(
            f"{name}: not a video file, or its data is damaged or truncated ({_cause(exc)})"
        ) from None
    except (av.FFmpegError, OSError) as exc:
        raise MediaError(f"{name}: cannot decode video ({_cause(exc)})") from None
    if decoded.frames == 0:
        reason = f": {decoded.error}" if decoded.error else ""
        raise MediaError(f"{name}: no video frame could be decoded{reason}")
    if decoded.end < header_s - _SHORTFALL_S:
        logger.warning(
            "%s: decoded %.2f s of video but its header says %.2f s; the file may be truncated",
            name,
            decoded.end,
            header_s,
        )
    elif decoded.end > header_s + _SHORTFALL_S:
        logger.warning(
            "%s: the video runs to %.2f s, past the %.2f s its header says; windows were planned "
            "from the header, so frames after it were not sampled",
            name,
            decoded.end,
            header_s,
        )
    mode_fps = fps if n_pick is None else None
    return _collect(p, plan, decoded, fps=mode_fps, min_frames=min_frames)


def _cause(exc: av.FFmpegError | OSError) -> str:
    """FFmpeg's reason without the file name it repeats."""
    return str(exc.strerror or exc)


def _video_stream(container: av.container.InputContainer, name: str) -> av.VideoStream:
    if not container.streams.video:
        kinds = sorted({str(s.type) for s in container.streams}) or ["no"]
        raise MediaError(f"{name}: no video stream (the file has {', '.join(kinds)} streams)")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        raise MediaError(
            f"{name}: unsupported video codec (this FFmpeg build has no decoder for it)"
        )
    stream.thread_type = "AUTO"
    return stream


def _header_duration(container: av.container.InputContainer, stream: av.VideoStream) -> float:
    """Seconds of video according to the file's headers (0.0 when they do not say)."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return 0.0


def _scan_duration(path: Path, rate: float) -> float:
    """Seconds of video from the packets' timestamps (demuxing only, nothing is decoded)."""
    logger.debug("%s: no duration in the header, scanning packets", display_name(path))
    first: float | None = None
    end = 0.0
    count = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if packet.pts is None or packet.time_base is None:
                count += packet.size > 0
                continue
            t = float(packet.pts * packet.time_base)
            first = t if first is None else min(first, t)
            end = max(end, t + float((packet.duration or 0) * packet.time_base))
    if first is None:
        return count / rate
    return max(end - first, 1.0 / rate)


def _decode(
    container: av.container.InputContainer,
    stream: av.VideoStream,
    plan: _Plan,
    *,
    max_pixels: int,
    multiple: int,
    name: str,
) -> _Decoded:
    """Run the decoder once; give each wanted time the first frame at or after it."""
    spans, rate = plan.spans, plan.rate
    origin = 0.0
    if stream.start_time is not None and stream.time_base is not None:
        origin = float(stream.start_time * stream.time_base)
    tolerance = min(1e-3, 0.25 / rate)  # pts rounding; far below a frame interval
    queue = sorted((t, w) for w, times in enumerate(plan.targets) for t in times)
    out = _Decoded(picks=[[] for _ in spans])
    last_index = [-1] * len(spans)  # frame number of each window's latest pick (no repeats)
    size: tuple[int, int] | None = None
    turns = 0
    reformatter = VideoReformatter()  # one scaler for the file, not one per frame
    ptr = 0
    frames = container.decode(stream)
    while True:
        try:
            frame = next(frames)
        except StopIteration:
            break
        except (av.FFmpegError, OSError) as exc:
            if out.frames == 0:
                raise
            out.error = f"decoding stopped at {out.end:.2f} s ({_cause(exc)})"
            logger.warning("%s: %s", name, out.error)
            break
        n = out.frames
        out.frames += 1
        t = (float(frame.time) - origin) if frame.time is not None else n / rate
        out.end = t + 1.0 / rate
        rgb: np.ndarray | None = None
        while ptr < len(queue) and queue[ptr][0] <= t + tolerance:
            w = queue[ptr][1]
            ptr += 1
            if t >= spans[w][1] - EPS or last_index[w] == n:
                continue  # past the window's end (a gap in the stream), or already taken
            if rgb is None:
                if size is None:
                    turns = round((frame.rotation or 0) / 90) % 4
                    size = fit_pixels(*_display_size(frame, stream), max_pixels, multiple)
                    out.size = _display_size(frame, stream, turns)
                rgb = _to_rgb(reformatter, frame, size, turns)
            out.picks[w].append((t, rgb))
            last_index[w] = n
    return out


def _to_rgb(
    reformatter: VideoReformatter, frame: av.VideoFrame, size: tuple[int, int], turns: int
) -> np.ndarray:
    """``frame`` as ``(H, W, 3)`` uint8 RGB at ``size`` (W, H), turned ``turns`` quarters."""
    rgb = reformatter.reformat(frame, width=size[0], height=size[1], format="rgb24").to_ndarray()
    return np.rot90(rgb, turns) if turns else rgb


def _display_size(frame: av.VideoFrame, stream: av.VideoStream, turns: int = 0) -> tuple[int, int]:
    """Frame size with non-square pixels made square (and sides swapped for a quarter turn)."""
    w, h = frame.width, frame.height
    sar = stream.sample_aspect_ratio
    if sar is not None and sar > 0 and sar != 1:
        w = max(1, round(w * Fraction(sar)))
    return (h, w) if turns % 2 else (w, h)


def _collect(
    path: Path, plan: _Plan, decoded: _Decoded, *, fps: float | None, min_frames: int
) -> VideoWindows:
    """Sort the picks into sendable windows and skipped ones (with the reason)."""
    rate = plan.rate
    result = VideoWindows(
        path=path,
        duration=decoded.end,
        source_fps=plan.rate,
        source_size=decoded.size,
        frames_decoded=decoded.frames,
        error=decoded.error,
    )
    whole_clip = len(plan.spans) == 1
    for index, ((start, end), found) in enumerate(zip(plan.spans, decoded.picks, strict=True)):
        picks = found
        if whole_clip and 0 < len(found) < min_frames and decoded.error is None:
            # a clip shorter than the frames a model merges (one frame, say): its last frame
            # repeated, as the model's processor would pad it, rather than the clip refused
            picks = found + [found[-1]] * (min_frames - len(found))
        n = len(picks)
        reason = None
        if decoded.error is not None and end > decoded.end + EPS:
            reason = f"window incomplete: {decoded.error}"
        elif start >= decoded.end - EPS:
            reason = f"no frames: the video ends at {decoded.end:.2f} s, before this window"
        elif n < min_frames:
            how = f"at {fps:g} fps" if fps is not None else "in this window"
            reason = f"only {n} frame(s) {how}, need {min_frames}"
        if reason is not None:
            result.skipped.append(SkippedWindow(index, start, end, n, reason))
            continue
        covered = min(end, decoded.end)  # a stream shorter than its header: what was seen
        times = [t for t, _ in picks]
        span = times[-1] - times[0]
        if n > 1 and span > 0:
            eff = (n - 1) / span
        else:
            eff = fps if fps is not None else n / max(covered - start, 1.0 / rate)
        frames = np.stack([f for _, f in picks])
        result.windows.append(VideoWindow(index, start, covered, frames, times, float(eff)))
    return result
