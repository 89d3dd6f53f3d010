"""The hang watchdog on the real engine: a request made to stall is reported with the stacks,
a healthy run is not, and ``--on-hang abort`` stops the run with every row written kept."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.conftest import engine_config
from vlmcap.core.progress import Progress
from vlmcap.core.stats import LoopStats
from vlmcap.engine import iter_records
from vlmcap.monitor.watchdog import HangWatchdog
from vlmcap.records import Item, Status
from vlmcap.runtime import HANG_EXIT_STATUS, HangAbort, abort_stuck_run, stop_on_signals

#: Seconds the stalling plugin sleeps while building one request (others are inside then).
STALL_S = 2.5
HANG_TIMEOUT_S = 0.5


def stalling(plugin: Any, stall_on: int, *, where: str = "engine_inputs") -> Any:
    """``plugin`` whose ``stall_on``-th call of ``where`` takes ``STALL_S`` longer: building a
    request (as a stuck image preprocessor would) or decoding an answer; the requests already
    inside stay there meanwhile."""
    calls = {"n": 0}

    def stall() -> None:
        calls["n"] += 1
        if calls["n"] == stall_on:
            time.sleep(STALL_S)

    class Stalling(type(plugin)):  # type: ignore[misc]
        def engine_inputs(self, request: Any, processor: Any) -> Any:
            if where == "engine_inputs":
                stall()
            return super().engine_inputs(request, processor)

        def decode(self, completion: Any) -> Any:
            if where == "decode":
                stall()
            return super().decode(completion)

    return Stalling(plugin.model_path)


def images(n: int) -> list[Item]:
    return [Item(f"img{i}", Image.new("RGB", (56, 56), (40 * i, 90, 200))) for i in range(n)]


@pytest.mark.parametrize(
    ("threads", "stall_on", "inside"),
    [
        (0, 2, "1 request inside"),  # the loop's thread stuck building img1, img0 inside
        (1, 1, "3 requests inside"),  # a building thread stuck on img0, the others behind it
    ],
    ids=["on-the-loop-s-thread", "on-a-building-thread"],
)
def test_a_stalled_request_is_reported_once_with_stacks(
    engine, tiny_model_path, caplog, threads, stall_on, inside
):
    plugin, llm = engine
    stats = LoopStats()
    watchdog = HangWatchdog(stats.progress, HANG_TIMEOUT_S)
    config = engine_config(tiny_model_path, prepare_threads=threads)
    with caplog.at_level(logging.WARNING, logger="vlmcap.monitor.watchdog"), watchdog:
        slow = stalling(plugin, stall_on)
        records = list(iter_records(images(3), llm, slow, config, stats))
    assert [r.status for r in records] == [Status.OK] * 3  # warn: the run carries on
    assert watchdog.fired == 1
    (report,) = [r.message for r in caplog.records if r.message.startswith("HANG:")]
    assert inside in report
    assert "img0 stage1 for" in report  # the oldest request inside, named
    assert "in engine_inputs" in report  # the stuck thread's stack shows where it is stuck
    assert "Current thread" in report  # faulthandler's stacks, the watchdog's own among them
    assert "engine processes:" in report


def test_a_healthy_run_does_not_fire(engine, tiny_model_path, caplog):
    plugin, llm = engine
    stats = LoopStats()
    watchdog = HangWatchdog(stats.progress, timeout_s=10.0)
    with caplog.at_level(logging.WARNING, logger="vlmcap.monitor.watchdog"), watchdog:
        records = list(iter_records(images(4), llm, plugin, engine_config(tiny_model_path), stats))
    assert len(records) == 4
    assert watchdog.fired == 0
    assert not [r for r in caplog.records if r.message.startswith("HANG:")]


def test_on_hang_abort_stops_the_run_and_keeps_what_was_done(engine, tiny_model_path, tmp_path):
    from vlmcap.media.inputs import discover
    from vlmcap.pipeline.backend import OfflineBackend
    from vlmcap.pipeline.caption import caption_files

    plugin, llm = engine
    config = engine_config(tiny_model_path, max_inflight=2)
    for i in range(4):
        Image.new("RGB", (56, 56), (50 * i, 30, 160)).save(tmp_path / f"f{i}.png")
    files = discover([str(tmp_path)]).files
    out = tmp_path / "out"
    live = Progress()
    slow = stalling(plugin, 3, where="decode")  # the 4th request is inside meanwhile
    watchdog = HangWatchdog(live, HANG_TIMEOUT_S, on_abort=abort_stuck_run)
    with stop_on_signals() as signals, pytest.raises(HangAbort) as raised:  # noqa: SIM117
        with signals.raising(), watchdog:
            caption_files(files, OfflineBackend(llm, slow, config), slow, config, out, live=live)
    assert raised.value.exit_status == HANG_EXIT_STATUS == 124
    assert signals.exit_status(0) == HANG_EXIT_STATUS
    written = _keys(out)
    assert 1 <= len(written) < 4  # what finished before the hang is on disk
    summary = caption_files(files, OfflineBackend(llm, plugin, config), plugin, config, out)
    assert summary.ok == 4 - len(written)  # the rerun does only the rest
    assert sorted(_keys(out)) == sorted(f.key for f in files)  # no gap, no duplicate


def _keys(out: Path) -> list[str]:
    import json

    (records,) = out.rglob("*records*.jsonl")
    return [json.loads(line)["key"] for line in records.read_text().splitlines() if line]
