"""The device's busy and idle time in a trace, on traces written here in the shape a GPU
worker's torch profiler writes (the CPU engine's traces hold no device events; the real-engine
test in ``test_profiler.py`` checks that they give none)."""

from __future__ import annotations

import pytest

from tests.debug.test_profiler import op, write_trace
from vlmcap.debug.device_time import GAP_US, clip, device_time, gaps, length, union
from vlmcap.debug.profile_summary import summarise
from vlmcap.debug.traces import trace_events

#: Microseconds per unit of the small timelines below (so that gaps of 10 units are 1 ms).
U = GAP_US / 10


def step(ts: float, dur: float) -> dict:
    return op("execute_context_1(9)_generation_0(0)", ts * U, dur * U, cat="user_annotation")


def kernel(ts: float, dur: float, cat: str = "kernel") -> dict:
    return op("gemm", ts * U, dur * U, cat=cat, tid=7)


def test_interval_helpers():
    assert union([(5, 7), (0, 2), (1, 3), (3, 4), (9, 9)]) == [(0, 4), (5, 7)]
    assert clip([(0, 4), (5, 7)], 1, 6) == [(1, 4), (5, 6)]
    assert length([(0, 4), (5, 7)]) == 6
    assert gaps([(2, 4), (5, 7)], 0, 10) == [2, 1, 3]
    assert gaps([], 0, 10) == [10]


def test_busy_idle_in_and_between_steps(tmp_path):
    events = [
        step(0, 100),
        step(150, 100),
        kernel(10, 50),
        kernel(40, 40),  # overlaps the one before: counted once
        kernel(160, 80, cat="gpu_memcpy"),
        kernel(300, 10),  # after the last step: outside the window
        op("aten::mm", 20 * U, 5 * U),  # host work is not device time
    ]
    path = write_trace(tmp_path / "w.pt.trace.json.gz", events)
    dt = device_time(trace_events(path), path.name)
    assert dt is not None and dt.steps == 2
    assert dt.window_us == pytest.approx(250 * U)
    assert dt.busy_us == pytest.approx(150 * U)  # 10..80 and 160..240
    assert dt.idle_between_steps_us == pytest.approx(50 * U)  # 100..150: no step, no kernel
    assert dt.idle_in_steps_us == pytest.approx(50 * U)  # 0..10, 80..100, 150..160, 240..250
    assert dt.gaps == 3 and dt.longest_gap_us == pytest.approx(80 * U)  # 0..10, 80..160, 240..250
    line = dt.line()
    assert "device busy 60.0 %" in line and "idle in steps 20.0 %" in line
    assert "between steps 20.0 %" in line and "the longest 8.0 ms" in line


def test_without_step_marks_the_window_is_the_device_span(tmp_path):
    path = write_trace(tmp_path / "w.pt.trace.json.gz", [kernel(0, 10), kernel(30, 10)])
    dt = device_time(trace_events(path), "w")
    assert dt is not None
    assert (dt.steps, dt.window_us, dt.busy_us) == (0, 40 * U, 20 * U)
    assert dt.idle_between_steps_us == pytest.approx(20 * U)  # no step covers the gap


def test_a_host_only_trace_has_no_device_time_and_the_summary_says_so(tmp_path):
    host = write_trace(tmp_path / "a.pt.trace.json.gz", [step(0, 10), op("aten::mm", 1, 5)])
    assert device_time(trace_events(host), host.name) is None
    write_trace(tmp_path / "b.pt.trace.json.gz", [step(0, 100), kernel(0, 25)])
    summary = summarise(tmp_path)
    assert summary.steps == 2 and [d.trace for d in summary.device] == ["b.pt.trace.json.gz"]
    assert "device busy 25.0 % of 10.0 ms over 1 steps (b.pt.trace.json.gz)" in summary.table()
