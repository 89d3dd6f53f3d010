"""``stop_on_signals`` in a real process: SIGTERM/SIGINT stop the work and wait for the clean-up;
a second signal ends the process at once."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

#: Seconds a child may take to start, or to exit once signalled.
TIMEOUT_S = 60.0
#: Seconds that stand for "until a signal comes".
FOREVER_S = 3600.0
#: Seconds of a clean-up that a signal must not cut short.
CLEANUP_S = 1.0

SCRIPT = textwrap.dedent(
    """
    import contextlib, sys, time
    from pathlib import Path
    from vlmcap.runtime import Interrupted, stop_on_signals

    marker, work_s, cleanup_s = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
    shielded = sys.argv[4] == "shielded"
    with stop_on_signals() as signals:
        with signals.shield() if shielded else contextlib.nullcontext():
            try:
                with signals.raising() if shielded else contextlib.nullcontext():
                    print("working", flush=True)
                    time.sleep(work_s)
            except Interrupted:
                pass
            finally:
                print("cleaning", flush=True)
                time.sleep(cleanup_s)
                marker.write_text("cleaned up")
    sys.exit(signals.exit_status(0))
    """
)


def run(
    tmp_path: Path,
    work_s: float,
    cleanup_s: float,
    signals: dict[str, int],
    mode: str = "shielded",
) -> tuple[int, bool]:
    """Run the script, sending ``signals[phase]`` when it prints ``phase``; (status, cleaned).
    ``mode``: ``shielded`` (clean-up in ``shield()``, work in ``raising()``) or ``plain``."""
    marker = tmp_path / "marker"
    cmd = [sys.executable, "-c", SCRIPT, str(marker), str(work_s), str(cleanup_s), mode]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip() in signals:
                proc.send_signal(signals[line.strip()])
        return proc.wait(TIMEOUT_S), marker.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("mode", ["shielded", "plain"])
@pytest.mark.parametrize(("sig", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_the_work_and_the_clean_up_runs(
    tmp_path: Path, sig: int, status: int, mode: str
) -> None:
    assert run(tmp_path, FOREVER_S, 0.0, {"working": sig}, mode) == (status, True)


def test_a_signal_during_the_clean_up_waits_for_it(tmp_path: Path) -> None:
    assert run(tmp_path, 0.0, CLEANUP_S, {"cleaning": signal.SIGTERM}) == (143, True)


def test_a_second_signal_exits_at_once(tmp_path: Path) -> None:
    signals = {"working": signal.SIGTERM, "cleaning": signal.SIGINT}
    assert run(tmp_path, FOREVER_S, FOREVER_S, signals) == (130, False)
