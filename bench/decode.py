"""Video decode throughput: vlmcap's window sampler against decoding every frame to RGB.

    python bench/decode.py [--clips 12] [--seconds 10] [--repeats 5] [--fps 2] [--out PATH]

Contenders, on the same synthetic clips (30 fps, 640x360, H.264 with B-frames, written by
``vlmcap.tiny.synthetic.write_video``) in the same process, each producing the same number
of frames at the same size (2 fps, resized to 448*448 pixels, sides multiples of 28):

    ours        ``sample_windows``: decode once, convert to RGB only the frames it picks
    naive       every frame to a full-size RGB ndarray (PyAV's default threading), then pick
                every 1/fps s and resize the picks with Pillow
    naive_auto  the same with the frame threading ``ours`` uses, which separates what skipping
                conversions gains from what threading gains

Every contender first runs once untimed, then ``--repeats`` times in an order that changes per
repeat (``bench/common.py``). Reported: output frames/s and source seconds/s (median, min, max
and every value) and the ratio ours / naive. Result: ``bench/results/decode.json``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

from common import machine_info, ratio, run_alternating, summarize, write_result
from vlmcap.media.images import fit_pixels
from vlmcap.media.video import sample_windows
from vlmcap.tiny.synthetic import SceneSpec, write_video

SIZE = (640, 360)
SOURCE_FPS = 30
MAX_PIXELS = 448 * 448
MAX_FRAMES = 64  # above fps * seconds: every contender samples strictly every 1/fps s


def make_clips(folder: Path, count: int, seconds: float) -> list[Path]:
    """``count`` clips of moving shapes on a noise background (so frames are not all flat)."""
    colours = ["red", "green", "blue", "yellow", "purple", "orange"]
    shapes = ["circle", "square", "triangle", "star", "cross"]
    directions = ["left", "right", "up", "down"]
    paths = []
    for i in range(count):
        spec = SceneSpec(
            colour=colours[i % len(colours)],
            shape=shapes[i % len(shapes)],
            direction=directions[i % len(directions)],
            background="noise",
            count=1 + i % 3,
            size=64,
            seed=i,
        )
        paths.append(
            write_video(folder / f"clip_{i:02d}.mp4", spec, seconds, SOURCE_FPS, size=SIZE)
        )
    return paths


def run_ours(paths: list[Path], fps: float) -> tuple[int, float]:
    frames = 0
    seconds = 0.0
    for path in paths:
        result = sample_windows(path, fps=fps, max_frames=MAX_FRAMES, max_pixels=MAX_PIXELS)
        frames += sum(len(w.frames) for w in result.windows)
        seconds += result.duration
    return frames, seconds


def run_naive(paths: list[Path], fps: float, thread_type: str | None) -> tuple[int, float]:
    frames = 0
    seconds = 0.0
    for path in paths:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            if thread_type is not None:
                stream.thread_type = thread_type
            decoded = [
                (float(f.time or 0.0), f.to_ndarray(format="rgb24"))
                for f in container.decode(stream)
            ]
        picked = []
        next_t = decoded[0][0]
        for t, rgb in decoded:
            if t + 1e-3 >= next_t:
                picked.append(rgb)
                next_t += 1.0 / fps
        h, w = picked[0].shape[:2]
        size = fit_pixels(w, h, MAX_PIXELS)
        stack = np.stack(
            [np.asarray(Image.fromarray(a).resize(size, Image.Resampling.BILINEAR)) for a in picked]
        )
        frames += len(stack)
        seconds += len(decoded) / SOURCE_FPS
    return frames, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--fps", type=float, default=2.0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="vlmcap-decode-bench-") as tmp:
        start = time.perf_counter()
        paths = make_clips(Path(tmp), args.clips, args.seconds)
        made_s = time.perf_counter() - start
        print(f"wrote {len(paths)} clips in {made_s:.1f} s")
        contenders: dict[str, Callable[[], tuple[int, float]]] = {
            "ours": lambda: run_ours(paths, args.fps),
            "naive": lambda: run_naive(paths, args.fps, None),
            "naive_auto": lambda: run_naive(paths, args.fps, "AUTO"),
        }
        samples = run_alternating(
            contenders,
            args.repeats,
            on_sample=lambda name, s: print(
                f"  {name:<10} repeat {s.repeat:>2}: {s.seconds:.3f} s, {s.value[0]} frames"
            ),
        )
        bytes_total = sum(p.stat().st_size for p in paths)
    results: dict[str, Any] = {}
    frames_per_s: dict[str, list[float]] = {}
    for name, runs in samples.items():
        counts = {r.value[0] for r in runs}
        if len(counts) != 1:
            raise SystemExit(f"{name} gave different frame counts across repeats: {counts}")
        frames_per_s[name] = [r.value[0] / r.seconds for r in runs]
        results[name] = {
            "seconds": summarize([r.seconds for r in runs]),
            "output_frames_per_s": summarize(frames_per_s[name]),
            "source_seconds_per_s": summarize([r.value[1] / r.seconds for r in runs]),
            "output_frames": runs[0].value[0],
            "source_seconds": runs[0].value[1],
        }
    if len({r["output_frames"] for r in results.values()}) != 1:
        raise SystemExit(f"contenders disagree on the number of frames: {results}")
    data = {
        "benchmark": "decode",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "pyav": av.__version__,
        "ffmpeg_libavcodec": av.library_versions.get("libavcodec"),
        "workload": {
            "clips": args.clips,
            "seconds_each": args.seconds,
            "source_fps": SOURCE_FPS,
            "size": SIZE,
            "codec": "libx264 (preset medium, crf 20, B-frames)",
            "bytes_total": bytes_total,
            "sample_fps": args.fps,
            "max_pixels": MAX_PIXELS,
            "repeats": args.repeats,
            "clip_writing_s": made_s,
        },
        "contenders": results,
        "ratio_ours_over_naive": ratio(frames_per_s["ours"], frames_per_s["naive"]),
        "ratio_ours_over_naive_auto": ratio(frames_per_s["ours"], frames_per_s["naive_auto"]),
        "target": "ours >= 3x naive (output frames/s)",
    }
    out = write_result("decode", data, args.out)
    for name, r in results.items():
        fps_med = r["output_frames_per_s"]["median"]
        src_med = r["source_seconds_per_s"]["median"]
        print(f"{name:<10} {fps_med:8.1f} output frames/s  {src_med:7.1f} source s/s")
    for key in ("ratio_ours_over_naive", "ratio_ours_over_naive_auto"):
        r = data[key]
        print(f"{key}: {r['ratio_of_medians']:.2f} (per repeat {r['min']:.2f}-{r['max']:.2f})")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
