"""The breakdown bench's clock (``bench/probes.py``): what it counts where.

The GPU breakdown's shares of the loop's wall time are only right if calls made on the
request-building threads are kept apart and nested calls are attributed to their caller."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.append(str(BENCH))  # last: its module names must shadow nothing

from probes import Clock  # noqa: E402 - bench/ is not a package


class Work:
    def inner(self) -> int:
        return 1

    def outer(self) -> int:
        return self.inner() + 1


def test_calls_on_other_threads_and_inside_other_calls_are_counted_apart():
    clock, work = Clock(), Work()
    assert clock.wrap(work, "inner", "inner") and clock.wrap(work, "outer", "outer")
    assert work.outer() == 2  # on the clock's own thread
    other = threading.Thread(target=lambda: [work.outer() for _ in range(3)])
    other.start()
    other.join()
    assert clock.calls["outer"] == 1 and clock.calls["inner"] == 1
    assert clock.calls["inner@outer"] == 1
    assert clock.calls["prep.outer"] == 3 and clock.calls["prep.inner@outer"] == 3
    assert clock.seconds["outer"] >= clock.seconds["inner@outer"]
    clock.unwrap()
    assert "outer" not in vars(work) and work.outer() == 2
    assert clock.calls["outer"] == 1  # no longer counted


def test_a_missing_method_is_listed_not_fatal():
    clock = Clock()
    assert not clock.wrap(Work(), "absent", "absent")
    assert not clock.wrap(None, "inner", "nothing")
    assert clock.missing == ["absent", "nothing"]
