"""One media file -> the caption items it yields (an image, a clip, or a clip's windows).

Runs on the decode threads. Never raises for a bad file: the failure comes back in the result,
named and explained, so the job goes on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from vlmcap.media.dump import dump_frames
from vlmcap.media.images import MediaError, load_image
from vlmcap.media.inputs import MediaFile
from vlmcap.media.video import sample_windows
from vlmcap.records import CaptionItem

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MediaOptions:
    """How videos are cut and sampled, and images limited."""

    video_fps: float = 2.0
    num_frames: int | None = None  # fixed frames per window instead of a rate
    max_frames: int = 16
    min_frames: int = 2
    max_pixels: int = 448 * 448
    window_s: float | None = None  # None: one window for the whole clip
    overlap_s: float = 0.0
    dump_dir: Path | None = None  # write the frames actually sent here (PNG), for debugging

    def __post_init__(self) -> None:
        if not self.video_fps > 0:
            raise ValueError(f"--fps must be > 0 (got {self.video_fps})")
        if self.num_frames is not None and self.num_frames < 1:
            raise ValueError(f"--num-frames must be at least 1 (got {self.num_frames})")
        if not 1 <= self.min_frames <= self.max_frames:
            raise ValueError(
                f"--max-frames must be at least 1 and at least the minimum of "
                f"{self.min_frames} frames per window (got {self.max_frames})"
            )
        if self.window_s is not None and not self.window_s > 0:
            raise ValueError(f"--window must be > 0 seconds (got {self.window_s})")
        if self.window_s is not None and not 0 <= self.overlap_s < self.window_s:
            raise ValueError(
                f"--overlap must be >= 0 and shorter than --window {self.window_s} s "
                f"(got {self.overlap_s})"
            )


def window_key(rel: str, start: float, end: float) -> str:
    """Unit key of one window of a clip: ``clip.mp4#12.00-22.00`` (seconds)."""
    return f"{rel}#{start:.2f}-{end:.2f}"


@dataclass
class LoadResult:
    """What decoding one file gave: items to caption, or the reason it failed."""

    file: MediaFile
    items: list[CaptionItem] = field(default_factory=list)
    error: str | None = None
    skipped_windows: list[str] = field(default_factory=list)  # reasons, for the log


def load_file(
    media: MediaFile, opts: MediaOptions, prompts: dict[str, str], skip: frozenset[str]
) -> LoadResult:
    """Decode ``media`` into items (windows whose key is in ``skip`` are left out)."""
    try:
        if media.kind == "image":
            image = load_image(media.path)  # refuses decompression bombs
            meta = {"path": media.key, "kind": "image", "width": image.width}
            meta["height"] = image.height
            item = CaptionItem(key=media.key, media=image, prompt=prompts["image"], meta=meta)
            return LoadResult(media, [item])
        return _load_video(media, opts, prompts["video"], skip)
    except MediaError as exc:
        return LoadResult(media, error=str(exc))
    except (OSError, ValueError, RuntimeError) as exc:  # a decoder bug must not stop the job
        logger.debug("unexpected error while loading %s", media.path, exc_info=True)
        return LoadResult(media, error=f"{media.key}: cannot load ({type(exc).__name__}: {exc})")


def _load_video(
    media: MediaFile, opts: MediaOptions, prompt: str, skip: frozenset[str]
) -> LoadResult:
    got = sample_windows(
        media.path,
        window_s=opts.window_s,
        overlap_s=opts.overlap_s,
        fps=opts.video_fps,
        num_frames=opts.num_frames,
        max_frames=opts.max_frames,
        max_pixels=opts.max_pixels,
        min_frames=opts.min_frames,
    )
    result = LoadResult(media)
    for s in got.skipped:
        result.skipped_windows.append(
            f"{media.key} window {s.start:.2f}-{s.end:.2f} s not sent: {s.reason}"
        )
    if not got.windows:
        reasons = "; ".join(s.reason for s in got.skipped) or "no frames"
        result.error = f"{media.key}: no window has enough frames ({reasons})"
        return result
    count = len(got.windows)
    for w in got.windows:
        key = media.key if opts.window_s is None else window_key(media.key, w.start, w.end)
        if key in skip:
            continue
        if opts.dump_dir is not None:
            dump_frames(w.frames, opts.dump_dir, key, w.timestamps)
        result.items.append(
            CaptionItem(
                key=key,
                media=w.frames,
                prompt=prompt,
                fps=w.fps,
                meta={
                    "path": media.key,
                    "kind": "video",
                    "window_index": w.index,
                    "window_count": count,
                    "window_start": round(w.start, 3),
                    "window_end": round(w.end, 3),
                    "frames": int(w.frames.shape[0]),
                    "frame_times": [round(t, 3) for t in w.timestamps],
                    "duration": round(got.duration, 3),
                },
            )
        )
    return result
