"""``StartupWatch``: a slow start-up is reported with the time spent and where it waits."""

from __future__ import annotations

import logging
import time

import pytest

from vlmcap.monitor.startup import StartupWatch, where_main_waits

EVERY_S = 0.2


def slow_model_load(seconds: float) -> None:
    time.sleep(seconds)


def test_a_slow_start_is_reported_with_where_it_waits(caplog):
    watch = StartupWatch("loading test-model", every_s=EVERY_S)
    with caplog.at_level(logging.INFO, logger="vlmcap.monitor.startup"), watch:
        slow_model_load(EVERY_S * 3.5)
    warnings = [r.message for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == watch.reports >= 2
    assert warnings[0].startswith("still loading test-model after 0 s; waiting in ")
    assert "slow_model_load" in warnings[0]  # the main thread's innermost Python frame
    assert "test_startup.py" in warnings[0]
    assert any(r.message.startswith("loading test-model took") for r in caplog.records)


def test_a_quick_start_says_nothing(caplog):
    watch = StartupWatch("loading test-model", every_s=5.0)
    with caplog.at_level(logging.INFO, logger="vlmcap.monitor.startup"), watch:
        pass
    assert watch.reports == 0
    assert not caplog.records


def test_where_main_waits_names_this_function():
    assert "test_where_main_waits_names_this_function" in where_main_waits()


def test_the_interval_must_be_positive():
    with pytest.raises(ValueError, match="> 0 seconds"):
        StartupWatch("x", every_s=0)
