"""``stop_on_signals``: SIGTERM/SIGINT unwind through ``finally``; a second signal ends at once."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

#: Seconds a child may take to start, or to exit once signalled.
TIMEOUT_S = 60.0

SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from vlmcap.runtime import Interrupted, stop_on_signals

    marker, cleanup_s = Path(sys.argv[1]), float(sys.argv[2])
    with stop_on_signals():
        try:
            print("ready", flush=True)
            time.sleep(3600)
        except Interrupted as exc:
            status = exc.exit_status
        finally:
            print("cleaning", flush=True)
            time.sleep(cleanup_s)
            marker.write_text("cleaned up")
    sys.exit(status)
    """
)


def run_until(tmp_path: Path, signals: list[int], cleanup_s: float) -> tuple[int, bool]:
    marker = tmp_path / "marker"
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(marker), str(cleanup_s)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signals[0])
        if len(signals) > 1:
            assert proc.stdout.readline().strip() == "cleaning"
            proc.send_signal(signals[1])
        return proc.wait(TIMEOUT_S), marker.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_unwinds_through_finally(tmp_path: Path, sig: int, status: int) -> None:
    assert run_until(tmp_path, [sig], cleanup_s=0.0) == (status, True)


def test_a_second_signal_during_cleanup_exits_at_once(tmp_path: Path) -> None:
    code, cleaned = run_until(tmp_path, [signal.SIGTERM, signal.SIGINT], cleanup_s=3600)
    assert (code, cleaned) == (130, False)
