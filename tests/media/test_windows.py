"""Window planning and per-window frame times (pure arithmetic, no decoding)."""

from __future__ import annotations

import pytest

from vlmcap.media.windows import count_targets, fps_targets, plan_windows


def test_no_window_length_is_one_window_over_the_clip():
    assert plan_windows(7.5, None) == [(0.0, 7.5)]


def test_windows_tile_the_clip_and_the_last_ends_at_the_end():
    assert plan_windows(10.0, 4.0, min_window_s=1.0) == [(0, 4), (4, 8), (8, 10)]


def test_exact_multiple_has_no_empty_tail():
    assert plan_windows(10.0, 5.0) == [(0, 5), (5, 10)]


def test_overlap_moves_each_start_by_window_minus_overlap():
    assert plan_windows(10.0, 4.0, overlap_s=1.0) == [(0, 4), (3, 7), (6, 10)]


def test_short_tail_merges_into_the_previous_window():
    # 0-4, 4-8 and a 1 s tail, under the default minimum of half a window (2 s)
    assert plan_windows(9.0, 4.0) == [(0, 4), (4, 9.0)]
    # the same tail is kept when the minimum allows it
    assert plan_windows(9.0, 4.0, min_window_s=1.0) == [(0, 4), (4, 8), (8, 9.0)]


def test_short_tail_with_overlap_merges_into_the_previous_window():
    # stride 3: 0-4, 3-7, 6-10, then a 0.5 s tail 9-10.5 under the 2 s minimum
    assert plan_windows(10.5, 4.0, overlap_s=1.0) == [(0, 4), (3, 7), (6, 10.5)]


def test_clip_shorter_than_a_window_is_one_short_window():
    assert plan_windows(1.5, 10.0) == [(0, 1.5)]


def test_long_clip_starts_do_not_drift():
    windows = plan_windows(3600.0, 0.1, min_window_s=0.0)
    assert len(windows) == 36000
    assert windows[-1] == pytest.approx((3599.9, 3600.0))


def test_empty_clip_has_no_windows():
    assert plan_windows(0.0, 4.0) == []
    assert plan_windows(0.0, None) == []


@pytest.mark.parametrize(
    ("window_s", "overlap_s", "min_window_s", "message"),
    [
        (0.0, 0.0, None, "window_s must be > 0"),
        (4.0, 4.0, None, "overlap_s must be >= 0 and shorter than the window"),
        (4.0, 5.0, None, "shorter than the window"),
        (4.0, -1.0, None, "overlap_s must be >= 0"),
        (4.0, 0.0, -1.0, "min_window_s must be >= 0"),
    ],
)
def test_bad_plans_are_refused(window_s, overlap_s, min_window_s, message):
    with pytest.raises(ValueError, match=message):
        plan_windows(10.0, window_s, overlap_s, min_window_s)


def test_infinite_duration_is_refused():
    with pytest.raises(ValueError, match="finite"):
        plan_windows(float("inf"), 4.0)


def test_fps_targets_every_step_inside_the_window():
    assert fps_targets(4.0, 6.0, 2.0, 32) == pytest.approx([4.0, 4.5, 5.0, 5.5])


def test_fps_targets_past_the_cap_are_spread_over_the_whole_window():
    times = fps_targets(0.0, 60.0, 2.0, 4)
    assert times == pytest.approx([0.0, 15.0, 30.0, 45.0])


def test_count_targets_include_the_first_and_last_frame():
    times = count_targets(0.0, 4.0, 5, frame_s=0.25)
    assert times == pytest.approx([0.0, 0.9375, 1.875, 2.8125, 3.75])
    assert count_targets(2.0, 4.0, 1, frame_s=0.5) == pytest.approx([2.75])


def test_count_targets_need_a_frame():
    with pytest.raises(ValueError, match="num_frames"):
        count_targets(0.0, 1.0, 0, frame_s=0.1)
