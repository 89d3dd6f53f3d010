"""Plan the time windows a long video is cut into, and the frame times sampled in each.

Pure arithmetic, no decoding: ``video.sample_windows`` plans here, then decodes the file once
and picks, for every planned time, the first frame at or after it.

Times are seconds from the start of the video stream. Windows start every
``window_s - overlap_s`` seconds; the last one ends at the clip's end. A tail shorter than
``min_window_s`` is not worth a request of its own, so it is merged into the window before it.
"""

from __future__ import annotations

import math

#: Slack for float comparisons of times (a microsecond is far below any frame interval).
EPS = 1e-6


def plan_windows(
    duration: float,
    window_s: float | None,
    overlap_s: float = 0.0,
    min_window_s: float | None = None,
) -> list[tuple[float, float]]:
    """``(start, end)`` of each window over a clip of ``duration`` seconds, in order.

    ``window_s=None`` gives one window for the whole clip. ``min_window_s`` defaults to half a
    window. A clip of zero (or negative) duration has no windows. Raises ``ValueError`` for a
    window of zero length, a negative overlap or one not shorter than the window.
    """
    if not math.isfinite(duration):
        raise ValueError(f"duration must be a finite number of seconds, got {duration}")
    if duration <= 0:
        return []
    if window_s is None:
        return [(0.0, float(duration))]
    if not window_s > 0:
        raise ValueError(f"window_s must be > 0 seconds, got {window_s}")
    if not 0 <= overlap_s < window_s:
        raise ValueError(
            f"overlap_s must be >= 0 and shorter than the window ({window_s} s), got {overlap_s}"
        )
    min_len = window_s / 2 if min_window_s is None else min_window_s
    if min_len < 0:
        raise ValueError(f"min_window_s must be >= 0 seconds, got {min_window_s}")
    stride = window_s - overlap_s
    windows: list[tuple[float, float]] = []
    i = 0
    while True:
        start = i * stride  # multiplied, not accumulated: no drift over long clips
        end = min(start + window_s, duration)
        windows.append((start, end))
        if end >= duration - EPS:
            break
        i += 1
    if len(windows) > 1 and windows[-1][1] - windows[-1][0] < min_len - EPS:
        windows.pop()
        windows[-1] = (windows[-1][0], float(duration))
    return windows


def fps_targets(start: float, end: float, fps: float, max_frames: int) -> list[float]:
    """Times every ``1/fps`` s in ``[start, end)``; past ``max_frames`` of them, ``max_frames``
    times spread evenly over the window instead (so a long window is covered to its end)."""
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    length = end - start
    if length <= EPS:
        return [start]
    count = math.ceil(length * fps - EPS)
    if count <= max_frames:
        return [start + k / fps for k in range(count)]
    return [start + k * length / max_frames for k in range(max_frames)]


def count_targets(start: float, end: float, num_frames: int, frame_s: float) -> list[float]:
    """``num_frames`` times spread evenly from ``start`` to the last frame of the window
    (``end - frame_s``), both ends included; a single frame comes from the middle."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    last = max(start, end - frame_s)
    if num_frames == 1:
        return [(start + last) / 2]
    step = (last - start) / (num_frames - 1)
    return [start + k * step for k in range(num_frames)]
