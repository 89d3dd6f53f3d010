"""The output-folder lock: refusal messages, stale-lock takeover, release."""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from vlmcap.sinks.lock import LOCK_NAME, LockedError, LockInfo, OutputLock


@pytest.fixture
def live_child() -> Iterator[subprocess.Popen[bytes]]:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield child
    child.kill()
    child.wait()


def _exited_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: the pid is free
    return child.pid


def _write_lock(folder: Path, info: LockInfo) -> Path:
    path = folder / LOCK_NAME
    path.write_text(info.to_json(), encoding="utf-8")
    return path


def _info(pid: int, **changes: Any) -> LockInfo:
    base = LockInfo(
        pid=pid,
        host=socket.gethostname(),
        started=time.time() - 600,
        command="vlmcap caption /data --output /out",
        create_time=None,
        token="someone-else",
    )
    return replace(base, **changes)


def test_lock_file_holds_who_took_it_and_is_removed_on_exit(tmp_path: Path) -> None:
    with OutputLock(tmp_path, command="vlmcap caption x") as lock:
        data = json.loads((tmp_path / LOCK_NAME).read_text(encoding="utf-8"))
        assert data["pid"] == os.getpid()
        assert data["host"] == socket.gethostname()
        assert data["command"] == "vlmcap caption x"
        assert data["started"] <= time.time()
        assert lock.held
    assert not (tmp_path / LOCK_NAME).exists()
    assert sorted(tmp_path.iterdir()) == []  # no temporary files left


def test_second_holder_is_refused_with_who_and_what_to_do(tmp_path: Path) -> None:
    with OutputLock(tmp_path), pytest.raises(LockedError) as err:
        OutputLock(tmp_path).acquire()
    message = str(err.value)
    assert f"pid {os.getpid()}" in message
    assert socket.gethostname() in message
    assert "since " in message
    assert "already in use by this process" in message
    assert err.value.holder is not None and err.value.holder.pid == os.getpid()


def test_live_pid_on_this_host_is_refused(
    tmp_path: Path, live_child: subprocess.Popen[bytes]
) -> None:
    path = _write_lock(tmp_path, _info(live_child.pid))
    before = path.read_text(encoding="utf-8")
    with pytest.raises(LockedError) as err:
        OutputLock(tmp_path).acquire()
    message = str(err.value)
    assert f"pid {live_child.pid} on host {socket.gethostname()}" in message
    assert "since " in message and "10 min ago" in message
    assert "vlmcap caption /data --output /out" in message
    assert f"kill {live_child.pid}" in message
    assert path.read_text(encoding="utf-8") == before  # untouched


def test_stale_lock_of_an_exited_process_is_taken_over(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dead = _exited_pid()
    _write_lock(tmp_path, _info(dead))
    with caplog.at_level(logging.WARNING, logger="vlmcap.sinks.lock"), OutputLock(tmp_path):
        data = json.loads((tmp_path / LOCK_NAME).read_text(encoding="utf-8"))
        assert data["pid"] == os.getpid()
    assert "taking over stale lock" in caplog.text
    assert f"process {dead} is no longer running" in caplog.text
    assert not (tmp_path / LOCK_NAME).exists()


def test_reused_pid_is_detected_by_its_creation_time(
    tmp_path: Path, live_child: subprocess.Popen[bytes]
) -> None:
    # The pid is alive, but the recorded process started long before the live one.
    _write_lock(tmp_path, _info(live_child.pid, create_time=time.time() - 86400))
    with OutputLock(tmp_path) as lock:
        assert lock.info is not None
        assert json.loads((tmp_path / LOCK_NAME).read_text())["token"] == lock.info.token


def test_lock_from_another_host_is_never_stale(tmp_path: Path) -> None:
    _write_lock(tmp_path, _info(_exited_pid(), host="gpu-node-17"))
    with pytest.raises(LockedError) as err:
        OutputLock(tmp_path).acquire()
    message = str(err.value)
    assert "gpu-node-17" in message
    assert "another host" in message
    assert f"delete {tmp_path / LOCK_NAME}" in message


def test_unreadable_lock_is_refused_not_removed(tmp_path: Path) -> None:
    path = tmp_path / LOCK_NAME
    path.write_text("garbage", encoding="utf-8")
    with pytest.raises(LockedError, match="cannot be read"):
        OutputLock(tmp_path).acquire()
    assert path.read_text(encoding="utf-8") == "garbage"


def test_release_leaves_a_lock_that_is_no_longer_ours(tmp_path: Path) -> None:
    lock = OutputLock(tmp_path)
    lock.acquire()
    other = _write_lock(tmp_path, _info(os.getpid(), token="taken-over"))
    lock.release()
    assert other.exists()
    assert json.loads(other.read_text())["token"] == "taken-over"


_RACER = """
import os, sys, time
from pathlib import Path
from vlmcap.sinks.lock import LockedError, OutputLock
folder, marks, start = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
while time.time() < start:
    time.sleep(0.001)
try:
    with OutputLock(folder):
        (marks / str(os.getpid())).touch()
        deadline = time.time() + 20
        while len(list(marks.iterdir())) < 4 and time.time() < deadline:
            time.sleep(0.01)  # hold the lock until every racer has tried
    print("won")
except LockedError:
    (marks / str(os.getpid())).touch()
    print("refused")
"""


def test_racing_takeovers_of_one_stale_lock_have_one_winner(tmp_path: Path) -> None:
    folder, marks = tmp_path / "out", tmp_path / "marks"
    folder.mkdir()
    marks.mkdir()
    _write_lock(folder, _info(_exited_pid()))
    start = time.time() + 1.0
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, str(folder), str(marks), str(start)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = sorted(p.communicate(timeout=60)[0].strip() for p in racers)
    assert results == ["refused", "refused", "refused", "won"]
    assert not (folder / LOCK_NAME).exists()


def test_works_where_hard_links_are_not_supported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(src: object, dst: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    with OutputLock(tmp_path) as lock:
        assert lock.info is not None
        assert json.loads((tmp_path / LOCK_NAME).read_text())["token"] == lock.info.token
        with pytest.raises(LockedError):
            OutputLock(tmp_path).acquire()
    assert sorted(tmp_path.iterdir()) == []
