"""The engine benchmarks' workload (``bench/workload.py``): which requests are clips.

The GPU results are compared across runs of different dates, so the default mix must stay the
one they were measured on (every third request a clip), and the caption-shaped workload
(``--video-share 1``) must be clips only."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.append(str(BENCH))  # last: its module names must shadow nothing

from engine_loop import parse_args  # noqa: E402 - bench/ is not a package
from workload import make_items  # noqa: E402


def kinds(share: float, n: int = 12) -> str:
    items, desc = make_items(n, 0, sides=(56,), video_frames=(4,), video_side=56, video_share=share)
    assert desc["videos"] == sum(it.key.startswith("vid") for it in items)
    return "".join("v" if it.key.startswith("vid") else "i" for it in items)


def test_the_default_mix_keeps_every_third_request_a_clip():
    assert kinds(1 / 3) == "iiv" * 4


def test_shares_spread_clips_evenly():
    assert kinds(0.5) == "iv" * 6
    assert kinds(0.25) == "iiiv" * 3
    assert kinds(0.0) == "i" * 12


def test_the_caption_shaped_workload_is_clips_only():
    items, desc = make_items(
        6, 0, video_frames=(8, 12, 16), video_side=56, max_tokens_range=(256, 256), video_share=1
    )
    assert desc["videos"] == 6 and desc["images"] == 0
    assert {it.media.shape[0] for it in items} <= {8, 12, 16}
    assert all(it.media.shape[1:] == (56, 56, 3) and it.max_tokens == 256 for it in items)


def test_a_share_outside_zero_to_one_is_refused():
    with pytest.raises(SystemExit):
        parse_args(["--quick", "--video-share", "1.5"])
