"""The background monitor thread and the environment switches."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import pytest

from vlmcap.monitor import (
    BackgroundMonitor,
    HealthSnapshot,
    LocalSource,
    monitor_from_env,
    start_background_logging,
    start_from_env,
    stop_background_logging,
)
from vlmcap.monitor.background import DEFAULT_INTERVAL_S

INTERVAL_S = 0.2
ENV_NAMES = (
    "VLMCAP_MONITOR",
    "VLMCAP_MONITOR_INTERVAL",
    "ENABLE_VLLM_MONITOR",
    "VLLM_MONITOR_INTERVAL",
)


@pytest.fixture
def monitor_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """caplog on ``vlmcap.monitor`` itself (the CLI's set-up stops vlmcap's propagation)."""
    log = logging.getLogger("vlmcap.monitor")
    level, propagate = log.level, log.propagate
    log.addHandler(caplog.handler)
    log.setLevel(logging.DEBUG)
    log.propagate = False  # each record once, whatever the parents' handlers
    yield caplog
    stop_background_logging()
    log.removeHandler(caplog.handler)
    log.setLevel(level)
    log.propagate = propagate


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def summaries(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "vlmcap.monitor" and r.levelno == logging.INFO]


def monitor_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "vlmcap-monitor"]


def test_logs_every_interval_and_stops_cleanly(monitor_log):
    monitor = start_background_logging(INTERVAL_S, LocalSource())
    time.sleep(1.0)
    assert monitor.running and monitor_threads()
    t0 = time.monotonic()
    stop_background_logging()
    assert time.monotonic() - t0 < 1.0  # the Event wakes the thread at once
    assert not monitor.running and not monitor_threads()
    lines = summaries(monitor_log)
    assert len(lines) >= 3, [r.getMessage() for r in lines]
    assert "RAM" in lines[0].getMessage() and "requests" in lines[0].getMessage()
    count = len(lines)
    time.sleep(3 * INTERVAL_S)
    assert len(summaries(monitor_log)) == count  # nothing after stop


class FlakySource:
    """Raises for its first ``failures`` snapshots, then answers."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def snapshot(self) -> HealthSnapshot:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("metrics endpoint went away")
        return LocalSource(name="flaky").snapshot()


def test_a_failing_source_is_logged_once_and_the_thread_goes_on(monitor_log):
    source = FlakySource(failures=3)
    monitor = start_background_logging(INTERVAL_S, source)
    deadline = time.monotonic() + 5.0
    while monitor.snapshots < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert monitor.running
    assert source.calls >= 5 and monitor.snapshots >= 2
    warnings = [r for r in monitor_log.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "metrics endpoint went away" in warnings[0].getMessage()
    assert warnings[0].exc_info is not None  # with its traceback
    assert any(r.getMessage().startswith("flaky |") for r in summaries(monitor_log))


def test_starting_again_replaces_the_running_monitor(monitor_log):
    first = start_background_logging(INTERVAL_S, LocalSource())
    second = start_background_logging(INTERVAL_S, LocalSource())
    assert not first.running and second.running
    assert len(monitor_threads()) == 1


def test_bad_interval_is_refused():
    with pytest.raises(ValueError, match="> 0"):
        BackgroundMonitor(LocalSource(), 0)


def test_monitor_is_off_unless_switched_on(clean_env):
    assert monitor_from_env() is None
    clean_env.setenv("VLMCAP_MONITOR_INTERVAL", "5")
    assert monitor_from_env() is None  # an interval alone does not switch it on
    assert start_from_env() is None


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"VLMCAP_MONITOR": "1"}, DEFAULT_INTERVAL_S),
        ({"VLMCAP_MONITOR": "1", "VLMCAP_MONITOR_INTERVAL": "5"}, 5.0),
        ({"ENABLE_VLLM_MONITOR": "1", "VLLM_MONITOR_INTERVAL": "7.5"}, 7.5),
        ({"VLMCAP_MONITOR": "1", "VLLM_MONITOR_INTERVAL": "7"}, 7.0),
        (
            {"VLMCAP_MONITOR": "1", "VLMCAP_MONITOR_INTERVAL": "3", "VLLM_MONITOR_INTERVAL": "9"},
            3.0,
        ),
        ({"VLMCAP_MONITOR": "0", "ENABLE_VLLM_MONITOR": "1"}, None),  # the new name wins
        ({"ENABLE_VLLM_MONITOR": "true"}, DEFAULT_INTERVAL_S),
        ({"VLMCAP_MONITOR": "1", "VLMCAP_MONITOR_INTERVAL": "soon"}, DEFAULT_INTERVAL_S),
        ({"VLMCAP_MONITOR": "1", "VLMCAP_MONITOR_INTERVAL": "-2"}, DEFAULT_INTERVAL_S),
    ],
)
def test_environment_switches(clean_env, env, expected):
    for name, value in env.items():
        clean_env.setenv(name, value)
    assert monitor_from_env() == expected


def test_start_from_env_runs_at_the_environment_interval(clean_env, monitor_log):
    clean_env.setenv("ENABLE_VLLM_MONITOR", "1")
    clean_env.setenv("VLLM_MONITOR_INTERVAL", str(INTERVAL_S))
    monitor = start_from_env(LocalSource())
    assert monitor is not None and monitor.interval_s == INTERVAL_S and monitor.running
