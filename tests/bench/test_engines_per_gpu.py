"""``bench/engines_per_gpu.py``: how the requests are shared out, and what it refuses."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.append(str(BENCH))  # last: its module names must shadow nothing

from engines_per_gpu import deal, gpu_note, parse_args  # noqa: E402 - bench/ is not a package
from workload import make_items  # noqa: E402


def test_every_request_goes_to_exactly_one_engine_and_the_shares_are_even():
    items, _ = make_items(11, seed=3, video_share=0.5)
    shares = deal(items, 3)
    assert [len(s) for s in shares] == [4, 4, 3]
    keys = [it.key for share in shares for it in share]
    assert sorted(keys) == sorted(it.key for it in items)  # none lost, none twice
    # round-robin: clips and pictures are spread over the engines alike
    assert all(any(it.key.startswith("vid") for it in share) for share in shares)


def test_the_command_line_and_what_it_refuses():
    args = parse_args(["--engines", "3", "--requests", "9", "--engine-arg", "load_format=dummy"])
    assert args.engines == 3 and args.engine_overrides == {"load_format": "dummy"}
    for argv in (["--engines", "1"], ["--engines", "4", "--requests", "3"]):
        with pytest.raises(SystemExit):
            parse_args(argv)


def test_gpu_busy_is_reported_only_where_nvml_answered():
    assert gpu_note([None, None]) == ""
    assert gpu_note([70.0, 90.0, 80.0]) == ", GPU busy 80.0 %"
