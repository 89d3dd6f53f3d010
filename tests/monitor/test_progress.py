"""A job's ``Progress`` as snapshot fields, and the rates between two snapshots."""

from __future__ import annotations

import threading

from vlmcap.core.progress import Progress
from vlmcap.core.request import Completion
from vlmcap.monitor.progress import FIRST_SNAPSHOT, NO_COUNTERS, RateMeter, progress_readings


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def finish(progress: Progress, request_id: str, ok: bool, tokens: int = 0) -> None:
    progress.finished(request_id, Completion(text="x", output_tokens=tokens))
    progress.item_done(ok)


def test_fields_track_done_failed_and_the_oldest_request():
    clock = Clock()
    progress = Progress(clock=clock)
    progress.submitted("a", "a.png", "stage1")
    clock.now = 103.0
    progress.submitted("b", "b.png", "stage1")
    clock.now = 110.0
    readings = progress_readings(progress, None, RateMeter())
    assert readings.values["oldest_inflight_age_s"] == 10.0
    finish(progress, "a", ok=True, tokens=7)
    assert progress_readings(progress, None, RateMeter()).values["oldest_inflight_age_s"] == 7.0
    finish(progress, "b", ok=False)
    readings = progress_readings(progress, None, RateMeter())
    assert (readings.values["items_done"], readings.values["items_failed"]) == (1, 1)
    assert readings.values["oldest_inflight_age_s"] is None
    assert readings.notes["oldest_inflight_age_s"] == "no request in flight"


def test_progress_is_thread_safe():
    progress = Progress()
    per_thread = 2000

    def work(prefix: str) -> None:
        for i in range(per_thread):
            progress.submitted(f"{prefix}{i}", f"{prefix}{i}", "stage1")
            finish(progress, f"{prefix}{i}", ok=i % 4 != 0, tokens=2)

    threads = [threading.Thread(target=work, args=(f"t{n}-",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    view = progress.view()
    assert view.items_ok + view.items_failed == view.requests_done == 4 * per_thread
    assert view.items_failed == 4 * per_thread // 4
    assert view.output_tokens == 2 * 4 * per_thread and view.inflight == 0


def test_rates_are_since_the_previous_snapshot():
    clock = Clock()
    progress = Progress(clock=clock)
    meter = RateMeter()
    first = progress_readings(progress, None, meter)
    assert first.values["items_per_s"] is None and first.notes["items_per_s"] == FIRST_SNAPSHOT
    for i in range(6):
        progress.submitted(str(i), str(i), "stage1")
        finish(progress, str(i), ok=True, tokens=10)
    clock.now += 2.0
    second = progress_readings(progress, None, meter)
    assert second.values["items_per_s"] == 3.0
    assert second.values["output_tokens_per_s"] == 30.0
    clock.now += 1.0
    third = progress_readings(progress, None, meter)
    assert third.values["items_per_s"] == 0.0  # measured: nothing finished meanwhile


def test_counters_going_back_give_no_rate():
    meter = RateMeter()
    assert meter.rates(1.0, 10, 100) == (None, None)
    assert meter.rates(2.0, 3, 20) == (None, None)  # a restarted server
    assert meter.rates(3.0, 5, 30) == (2.0, 10.0)


def test_without_progress_or_metrics_the_fields_are_none_with_a_note():
    readings = progress_readings(None, None, RateMeter())
    for name in ("items_done", "items_failed", "items_per_s", "oldest_inflight_age_s"):
        assert readings.values[name] is None
        assert NO_COUNTERS in readings.notes[name]
