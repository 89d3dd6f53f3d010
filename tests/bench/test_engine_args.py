"""``bench/engine_args.py``'s command line: each variant names its engine and its arguments."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.append(str(BENCH))  # last: its module names must shadow nothing

from engine_args import parse_args  # noqa: E402 - bench/ is not a package


def test_variants_and_common_arguments_are_read():
    args = parse_args(
        ["--variant", "off:mm_cache=false", "--variant", "on:mm_cache=true,max_num_seqs=64",
         "--engine-arg", "load_format=dummy"]
    )  # fmt: skip
    assert args.variants == [
        ("off", {"mm_cache": False}),
        ("on", {"mm_cache": True, "max_num_seqs": 64}),
    ]
    assert args.engine_overrides == {"load_format": "dummy"}


@pytest.mark.parametrize(
    "argv",
    [
        ["--variant", "only:mm_cache=false"],  # nothing to compare with
        ["--variant", "a:mm_cache=false", "--variant", "a:mm_cache=true"],  # same name twice
        ["--variant", "a:mm_cache=false", "--variant", "no-arguments"],
    ],
)
def test_a_comparison_that_cannot_run_is_refused(argv):
    with pytest.raises(SystemExit):
        parse_args(argv)
