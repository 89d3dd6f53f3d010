"""One media file -> the caption items it yields (an image, a clip, or a clip's windows).

Runs on the decode threads. Never raises for a bad file: the failure comes back in the result,
named and explained, so the job goes on.
"""

from __future__ import annotations

import logging

from vlmcap.media.dump import dump_frames
from vlmcap.media.images import DEFAULT_PIXEL_MULTIPLE, MediaError, load_image
from vlmcap.media.inputs import MediaFile
from vlmcap.media.video import sample_windows
from vlmcap.options.media import MediaOptions
from vlmcap.plugins.capabilities import Capabilities
from vlmcap.records import Item
from vlmcap.tasks.base import Loaded

logger = logging.getLogger(__name__)


def window_key(rel: str, start: float, end: float) -> str:
    """Unit key of one window of a clip: ``clip.mp4#12.00-22.00`` (seconds)."""
    return f"{rel}#{start:.2f}-{end:.2f}"


#: What decoding one file gave: items to caption, or the reason it failed.
LoadResult = Loaded[MediaFile]


def load_file(
    media: MediaFile,
    opts: MediaOptions,
    prompts: dict[str, str],
    skip: frozenset[str],
    caps: Capabilities | None = None,
) -> LoadResult:
    """Decode ``media`` into items (windows whose key is in ``skip`` are left out).

    ``caps``, the model's capabilities, shape the frames: sides on its pixel grid, at most
    its picture count for a model that takes a clip as pictures, a frame count it can merge
    (None: ``MediaOptions`` alone, on Qwen2.5-VL's grid). Each item's ``meta`` holds the facts
    a caption row records about it (``CaptionRow``'s item fields: path, kind, sizes, window
    times).
    """
    try:
        if media.kind == "image":
            image = load_image(media.path)  # refuses decompression bombs
            meta = {"path": media.key, "kind": "image", "width": image.width}
            meta["height"] = image.height
            item = Item(key=media.key, media=image, prompt=prompts["image"], meta=meta)
            return LoadResult(media, media.key, [item])
        return _load_video(media, opts, prompts["video"], skip, caps)
    except MediaError as exc:
        return LoadResult(media, media.key, error=str(exc))
    except (OSError, ValueError, RuntimeError) as exc:  # a decoder bug must not stop the job
        logger.debug("unexpected error while loading %s", media.path, exc_info=True)
        reason = f"{media.key}: cannot load ({type(exc).__name__}: {exc})"
        return LoadResult(media, media.key, error=reason)


def frame_limits(opts: MediaOptions, caps: Capabilities | None) -> tuple[int, int]:
    """``(max_frames, min_frames)`` per window for ``opts`` on a model with ``caps``: the cap
    is at most the model's pictures for a clip sent as pictures and a multiple of its frame
    multiple (so the processor pads nothing); the floor is at least one frame multiple."""
    if caps is None:
        return opts.max_frames, opts.min_frames
    step = caps.frame_multiple
    most = caps.max_frames(opts.max_frames)
    most = max(step, most // step * step)
    least = max(step, min(opts.min_frames, most))
    return most, least


def _load_video(
    media: MediaFile,
    opts: MediaOptions,
    prompt: str,
    skip: frozenset[str],
    caps: Capabilities | None,
) -> LoadResult:
    max_frames, min_frames = frame_limits(opts, caps)
    got = sample_windows(
        media.path,
        window_s=opts.window_s,
        overlap_s=opts.overlap_s,
        fps=opts.video_fps,
        num_frames=opts.num_frames,
        max_frames=max_frames,
        max_pixels=opts.max_pixels,
        min_frames=min_frames,
        pixel_multiple=caps.pixel_multiple if caps is not None else DEFAULT_PIXEL_MULTIPLE,
    )
    result = LoadResult(media, media.key)
    for s in got.skipped:
        result.not_sent.append(
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
            Item(
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
