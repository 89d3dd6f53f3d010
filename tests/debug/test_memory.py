"""``--memory-report``: checkpoints around the session's real engine, the leak rule on
synthetic series, real memory growth in this process, and the per-GPU fields.

This machine has no GPU, so the per-GPU fields are checked against the fake ``pynvml`` module
of ``tests.monitor.test_gpu`` (extended with per-process figures): the only mock here.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import engine_config
from tests.monitor.test_gpu import FakeNVMLError, fake_nvml
from vlmcap.core.progress import Progress
from vlmcap.core.stats import LoopStats
from vlmcap.debug.leak import leak_verdict
from vlmcap.debug.memory import (
    END,
    ITEMS,
    LOADED,
    MIB,
    START,
    MemoryReport,
    memory_report_path,
)
from vlmcap.debug.memory_readings import read_checkpoint
from vlmcap.engine import iter_records
from vlmcap.records import Item, Status

EVERY = 2
ITEMS_RUN = 4
POLL_S = 0.02
#: Seconds a test waits for the follower thread to see a count.
WAIT_S = 5.0
#: Bytes this process keeps per step in the growth test (touched, so they are resident).
GROWTH_STEP_BYTES = 16 * MIB
STEPS = 8


def images(n: int) -> list[Item]:
    return [Item(f"img{i}", Image.new("RGB", (56, 56), (30 * i, 90, 200))) for i in range(n)]


def wait_for_items(report: MemoryReport, done: int) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if any(p.label == ITEMS and p.items_done == done for p in report.checkpoints):
            return
        time.sleep(POLL_S)
    raise AssertionError(f"no item checkpoint at {done} items within {WAIT_S} s")


@pytest.mark.engine
def test_a_report_around_real_requests(engine, tiny_model_path, tmp_path):
    """The session engine is already loaded, so "start" is taken after it too (a job takes it
    before ``build_llm``); everything else is as a job does it."""
    plugin, llm = engine
    path = memory_report_path(tmp_path)
    report = MemoryReport(path, every=EVERY, poll_s=POLL_S)
    report.checkpoint(START)
    report.checkpoint(LOADED)
    stats = LoopStats()
    report.follow(stats.progress)
    config = engine_config(tiny_model_path, max_inflight=1)
    records = []
    for record in iter_records(images(ITEMS_RUN), llm, plugin, config, stats):
        records.append(record)
        if len(records) % EVERY == 0:  # the loop is paused here: the thread sees this count
            wait_for_items(report, len(records))
    summary = report.finish()
    assert [r.status for r in records] == [Status.OK] * ITEMS_RUN
    points = report.checkpoints
    assert [p.label for p in points] == [START, LOADED, ITEMS, ITEMS, END]
    assert [p.items_done for p in points] == [0, 0, 2, 4, 4]
    for p in points:
        assert p.process_rss_bytes is not None and p.process_rss_bytes > 0
        assert p.engine_rss_bytes is not None and p.engine_rss_bytes > 0
        assert p.engine_rss_bytes == sum(e.rss_bytes for e in p.engine_processes)
        assert any(e.name.startswith("VLLM::") for e in p.engine_processes)
        assert p.ram_used_bytes and p.ram_available_bytes and p.ram_total_bytes
        assert p.ram_used_bytes + p.ram_available_bytes == p.ram_total_bytes
        assert p.wall_time <= time.time()
    assert [p.elapsed_s for p in points] == sorted(p.elapsed_s for p in points)
    data = json.loads(path.read_text())
    assert data["memory_every"] == EVERY
    assert [c["label"] for c in data["checkpoints"]] == [p.label for p in points]
    assert data["checkpoints"][-1]["engine_rss_bytes"] == points[-1].engine_rss_bytes
    assert {v["series"] for v in data["leaks"]} == {"this process RSS", "engine RSS"}
    assert not any(v["suspected"] for v in data["leaks"])  # 2 item checkpoints: too few
    assert str(path) in summary
    assert "growth since loaded" in summary and "possible leak" not in summary
    labels = [line.split()[0] for line in summary.splitlines()[2:7]]
    assert labels == [START, LOADED, ITEMS, ITEMS, END]
    assert not [n for n in os.listdir(path.parent) if n.endswith(".tmp")]  # atomic write


def test_a_failing_save_is_logged_once_and_the_thread_goes_on(tmp_path, caplog):
    """The JSON's path is a folder, so every save fails: a real error, not a raised one."""
    blocked = tmp_path / "memory.json"
    blocked.mkdir()
    report = MemoryReport(blocked, every=1, poll_s=POLL_S, save_every_s=0.0)
    progress = Progress()
    with caplog.at_level(logging.WARNING, logger="vlmcap.debug.memory"):
        report.follow(progress)
        for done in range(1, 4):
            progress.item_done(ok=True)
            wait_for_items(report, done)
        report.finish()
    failures = [r for r in caplog.records if "a checkpoint failed" in r.message]
    assert len(failures) == 1 and "IsADirectoryError" in failures[0].message
    assert any("could not write" in r.message for r in caplog.records)  # finish's own save
    assert [p.items_done for p in report.checkpoints] == [1, 2, 3, 3]
    assert blocked.is_dir()


#: A follower thread that never looks by itself: the test calls ``poll()``.
NEVER_S = 3600.0


def test_a_jump_over_several_thresholds_takes_one_checkpoint():
    report = MemoryReport(None, every=10, poll_s=NEVER_S)
    progress = Progress()
    report.follow(progress)
    for _ in range(25):
        progress.item_done(ok=False)
    assert report.poll() is not None
    assert report.poll() is None  # nothing new since
    for _ in range(5):
        progress.item_done(ok=True)
    point = report.poll()
    assert point is not None and point.items_done == 30
    assert [p.items_done for p in report.checkpoints] == [25, 30]
    report.finish()
    assert [p.label for p in report.checkpoints] == [ITEMS, ITEMS, END]


# --- the leak rule on synthetic series -------------------------------------------------------

BASE = 2 * 1024 * MIB
STEP_ITEMS = 100


def series(
    n: int, per_step_mib: float, noise_mib: float = 0.0, seed: int = 0
) -> tuple[list[int], list[float]]:
    rng = np.random.default_rng(seed)
    items = [STEP_ITEMS * (i + 1) for i in range(n)]
    noise = rng.normal(0, noise_mib, n) if noise_mib else np.zeros(n)
    values = [BASE + (i * per_step_mib + noise[i]) * MIB for i in range(n)]
    return items, values


def test_steady_growth_is_flagged():
    items, values = series(10, per_step_mib=8.0, noise_mib=0.3)
    verdict = leak_verdict(items, values, series="engine RSS")
    assert verdict.suspected, verdict.reason
    assert verdict.slope_mib_per_1k_items == pytest.approx(80.0, rel=0.05)
    assert verdict.rising_steps == verdict.steps == 9
    assert verdict.summary().startswith("possible leak: engine RSS grows +79.8 MiB per 1000 items")


def test_a_flat_series_is_not_flagged():
    verdict = leak_verdict(*series(12, per_step_mib=0.0))
    assert not verdict.suspected
    assert verdict.slope_mib_per_1k_items == pytest.approx(0.0, abs=1e-9)
    assert "slope below" in verdict.reason


def test_a_noisy_series_is_not_flagged():
    items, values = series(12, per_step_mib=0.0, noise_mib=40.0, seed=3)
    verdict = leak_verdict(items, values)
    assert not verdict.suspected


def test_a_sawtooth_that_drifts_up_is_noise_not_a_leak():
    items = [STEP_ITEMS * (i + 1) for i in range(12)]
    values = [BASE + (40 * MIB if i % 2 else 0) + i * 5 * MIB for i in range(12)]
    verdict = leak_verdict(items, values)
    assert verdict.slope_mib_per_1k_items is not None
    assert verdict.slope_mib_per_1k_items > 10  # the fit slopes up...
    assert not verdict.suspected  # ...but half of the steps fall
    assert "noise" in verdict.reason


def test_a_steep_but_small_rise_is_not_flagged():
    items = [10, 20, 30, 40, 50]  # 1 MiB per 10 items, 4 MiB in all
    values = [BASE + i * MIB for i in range(5)]
    verdict = leak_verdict(items, values)
    assert verdict.slope_mib_per_1k_items == pytest.approx(100.0)
    assert not verdict.suspected and "fitted growth" in verdict.reason


def test_too_few_checkpoints_are_not_judged():
    verdict = leak_verdict([100, 200, 300], [BASE, BASE + 500 * MIB, BASE + 1000 * MIB])
    assert not verdict.suspected and verdict.slope_mib_per_1k_items is None
    assert "4 needed" in verdict.reason


def test_real_growth_of_this_process_is_flagged_and_steady_memory_is_not():
    """This process really keeps GROWTH_STEP_BYTES more per checkpoint (pages touched)."""
    report = MemoryReport(None, every=STEP_ITEMS, poll_s=NEVER_S)
    progress = Progress()
    report.follow(progress)
    report.checkpoint(LOADED)
    kept: list[bytearray] = []
    for _ in range(STEPS):
        kept.append(bytearray(b"\x01") * GROWTH_STEP_BYTES)
        for _ in range(STEP_ITEMS):
            progress.item_done(ok=True)
        assert report.poll() is not None
    verdicts = {v.series: v for v in report.leaks()}
    grown = verdicts["this process RSS"]
    assert grown.suspected, grown.reason
    assert grown.slope_mib_per_1k_items is not None
    assert grown.slope_mib_per_1k_items > 100  # 16 MiB per 100 items kept: about 160
    assert not verdicts["engine RSS"].suspected  # the session engine's, if any, is idle
    assert "possible leak: this process RSS" in report.finish()

    steady = MemoryReport(None, every=STEP_ITEMS, poll_s=NEVER_S)
    progress = Progress()
    steady.follow(progress)
    for _ in range(STEPS):
        for _ in range(STEP_ITEMS):
            progress.item_done(ok=True)
        assert steady.poll() is not None
    assert not any(v.suspected for v in steady.leaks())
    assert "possible leak" not in steady.finish()
    assert len(kept) == STEPS


# --- GPUs through a fake NVML ----------------------------------------------------------------


@dataclass
class RunningProcess:
    pid: int
    usedGpuMemory: int | None  # NVML's field name


def fake_nvml_with_processes(pid: int) -> types.SimpleNamespace:
    """Two boards: board 0 lists this process and a stranger's, board 1 gives no per-process
    figure (``None``, as NVML does in some containers); a third refuses the call."""
    fake = fake_nvml(3)

    def running(handle: int) -> list[RunningProcess]:
        if handle == 0:
            return [RunningProcess(pid, 5 * 2**30), RunningProcess(pid + 10**6, 7 * 2**30)]
        if handle == 1:
            return [RunningProcess(pid, None)]
        raise FakeNVMLError("Not Supported")

    fake.nvmlDeviceGetComputeRunningProcesses = running
    return fake


@pytest.fixture
def fake_gpus(monkeypatch: pytest.MonkeyPatch) -> Iterator[types.SimpleNamespace]:
    fake = fake_nvml_with_processes(os.getpid())
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    yield fake


def test_each_gpu_gives_used_total_and_this_jobs_share(fake_gpus):
    point = read_checkpoint("loaded", 0)
    first, second, third = point.gpus
    assert (first.used_bytes, first.total_bytes) == (2**30, 141 * 2**30)
    assert first.name == "NVIDIA H200"
    assert first.job_bytes == 5 * 2**30  # this process only, not the stranger's 7 GiB
    assert [p.pid for p in first.processes] == [os.getpid()]
    assert second.job_bytes is None and "per-process" in second.notes["job_bytes"]
    assert third.job_bytes is None and "Not Supported" in third.notes["job_bytes"]
    assert third.used_bytes == 3 * 2**30  # the rest of the board still reads
    assert "gpus" not in point.notes
    assert "GPU0 1.00/141.00 GiB (this job 5.00 GiB)" in point.summary()
    assert fake_gpus.calls == ["init", "shutdown"]
    data = json.loads(json.dumps(point.to_dict()))
    assert data["gpus"][0]["processes"] == [{"pid": os.getpid(), "used_bytes": 5 * 2**30}]


def test_without_nvml_there_are_no_gpus_and_a_note(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(1, init_fails=True))
    point = read_checkpoint("start", 0)
    assert point.gpus == [] and "Driver Not Loaded" in point.notes["gpus"]


def test_gpu_memory_of_the_job_enters_the_leak_rule(fake_gpus):
    report = MemoryReport(None, every=1)
    for i in range(1, 5):
        report.checkpoint(ITEMS, i)
    names = [v.series for v in report.leaks()]
    assert "GPU0 memory of this job" in names  # board 1 and 2 give no per-process figure
    assert "GPU1 memory of this job" not in names


def test_end_without_a_followed_run_keeps_the_last_count():
    report = MemoryReport(None, every=5)
    report.checkpoint(ITEMS, 15)
    report.finish()
    assert [(p.label, p.items_done) for p in report.checkpoints] == [(ITEMS, 15), (END, 15)]


def test_report_path_is_in_the_logs_folder(tmp_path: Path):
    assert memory_report_path(tmp_path) == tmp_path / "logs" / "memory.json"
