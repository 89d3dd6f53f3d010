"""A full disk while a job writes: a clean stop (exit 74, one line), complete rows, a resume.

Everything here writes to a real size-limited file system: a small tmpfs mounted under the
test's folder, then filled up to its last byte by a filler file. Mounting needs root (CI runs as
root): without it these tests fail with a clear message, they are never skipped.
"""

from __future__ import annotations

import errno
import json
import logging
import mmap
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from vlmcap.cli.job import DISK_FULL_STATUS
from vlmcap.media.inputs import discover
from vlmcap.sinks.disk_full import DiskFullError, LogGuard, as_disk_full, writing
from vlmcap.sinks.files import json_line
from vlmcap.sinks.lock import LOCK_NAME
from vlmcap.sinks.parquet import write_parquet_from_jsonl
from vlmcap.sinks.store import RecordStore
from vlmcap.tiny.synthetic import make_dataset

MODEL = "m"
STYLE = "default"
#: tmpfs hands out space in pages: a write that needs a new page fails when none is left.
PAGE = mmap.PAGESIZE
FILLER_NAME = "filler.bin"
FILL_CHUNK = b"\0" * (1 << 16)
#: vLLM's engine processes may still hold the run log a moment after the CLI has exited.
UNMOUNT_WAIT_S = 15.0
RUN_TIMEOUT_S = 300.0
POLL_S = 0.01

MountFs = Callable[[str], Path]


def _unmount(point: Path) -> None:
    deadline = time.monotonic() + UNMOUNT_WAIT_S
    while True:
        done = subprocess.run(["umount", str(point)], capture_output=True, text=True, check=False)
        if done.returncode == 0:
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    lazy = subprocess.run(["umount", "-l", str(point)], capture_output=True, text=True, check=False)
    if lazy.returncode != 0:
        pytest.fail(f"cannot unmount {point}: {done.stderr.strip()} / {lazy.stderr.strip()}")


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[MountFs]:
    """``mount(size)``: a new tmpfs of ``size`` (e.g. ``"256k"``) under ``tmp_path``; every
    one is unmounted at the end, whatever the test's outcome."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        point = tmp_path / f"fs{len(mounted)}"
        point.mkdir()
        command = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, check=False)
        except FileNotFoundError as exc:
            pytest.fail(f"cannot mount a tmpfs for the disk-full tests: {exc}", pytrace=False)
        if done.returncode != 0:
            said = " ".join(done.stderr.split())
            pytest.fail(
                f"cannot mount a {size} tmpfs at {point} ({said}); the disk-full tests need "
                f"root (CAP_SYS_ADMIN) to mount a real size-limited file system",
                pytrace=False,
            )
        mounted.append(point)
        assert shutil.disk_usage(point).free > 0
        return point

    try:
        yield mount
    finally:
        for point in reversed(mounted):
            _unmount(point)


def fill(fs: Path) -> Path:
    """Write a filler file on ``fs`` until not one byte is left; its path (delete it to free
    the space again)."""
    filler = fs / FILLER_NAME
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        while True:
            os.write(fd, FILL_CHUNK)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
    finally:
        os.close(fd)
    assert shutil.disk_usage(fs).free == 0
    return filler


def ok(key: str, caption: str | None = None) -> dict[str, Any]:
    return {"key": key, "status": "ok", "caption": caption or f"caption of {key}"}


def pad_records(store: RecordStore, *, room: int) -> None:
    """Write one ok row ("pad") that leaves ``room`` bytes free in records.jsonl's last page."""
    size = store.records_path.stat().st_size
    empty = {"key": "pad", "model": MODEL, "prompt_style": STYLE, "status": "ok", "caption": ""}
    n = (-room - size - len(json_line(empty))) % PAGE
    store.write(ok("pad", "p" * n))
    assert PAGE - store.records_path.stat().st_size % PAGE == room


def rows(path: Path) -> list[dict[str, Any]]:
    """Every line of ``path``; each must be complete JSON and the file must end in a newline."""
    data = path.read_bytes() if path.exists() else b""
    assert not data or data.endswith(b"\n"), f"{path} ends in a partial line: {data[-80:]!r}"
    return [json.loads(line) for line in data.splitlines()]


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def leftover_temp_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob(".*.tmp"))


def assert_message(error: DiskFullError, path: Path) -> None:
    text = str(error)
    assert error.path == path
    assert f"cannot write {path}: no space left on device" in text
    assert "rerun the same command" in text
    assert "\n" not in text


def resume_all(out: Path, keys: list[str]) -> list[str]:
    """Reopen ``out``, write every key not done yet; the keys written."""
    with RecordStore(out, MODEL, STYLE) as store:
        assert store.summary.repaired_bytes == 0  # no partial line was left to repair
        todo = [key for key in keys if not store.should_skip(key)]
        for key in todo:
            store.write(ok(key))
    return todo


def assert_exactly_once(out: Path, keys: list[str], map_path: Path) -> None:
    final = rows(out / "records.jsonl")
    assert sorted(row["key"] for row in final) == sorted(keys)
    assert all(row["status"] == "ok" for row in final)
    assert load_json(map_path) == {row["key"]: row["caption"] for row in final}
    assert not (out / LOCK_NAME).exists()


# -- store level: no engine ------------------------------------------------------------------


def test_a_line_the_disk_had_no_room_for_is_cut_off_and_the_run_resumes(
    small_fs: MountFs,
) -> None:
    fs = small_fs("256k")
    out = fs / "out"
    keys = [f"img{i:02d}.png" for i in range(8)]
    store = RecordStore(out, MODEL, STYLE, save_every_items=100).open()
    for key in keys[:3]:
        store.write(ok(key))
    pad_records(store, room=100)  # the next, longer line fits only in part
    filler = fill(fs)
    with pytest.raises(DiskFullError) as caught:
        store.write(ok(keys[3], "a long caption " * 400))
    assert_message(caught.value, store.records_path)
    assert caught.value.errno == errno.ENOSPC
    store.close()  # writes nothing more, releases the lock
    assert [row["key"] for row in rows(store.records_path)] == [*keys[:3], "pad"]
    assert load_json(store.map_path) == {}  # the version saved at open, whole
    assert not (out / LOCK_NAME).exists()
    assert not leftover_temp_files(out)

    filler.unlink()
    assert resume_all(out, [*keys, "pad"]) == keys[3:]
    assert_exactly_once(out, [*keys, "pad"], store.map_path)


def test_a_map_save_on_a_full_disk_keeps_the_previous_map(small_fs: MountFs) -> None:
    fs = small_fs("256k")
    out = fs / "out"
    keys = [f"img{i:02d}.png" for i in range(6)]
    # A clock that stands still: every row is a map save (no spacing of slow saves).
    store = RecordStore(out, MODEL, STYLE, save_every_items=1, clock=lambda: 0.0).open()
    for key in keys[:2]:
        store.write(ok(key))
    pad_records(store, room=PAGE // 2)  # the next line fits; the new map does not
    before = store.map_path.read_bytes()
    filler = fill(fs)
    with pytest.raises(DiskFullError) as caught:
        store.write(ok(keys[2]))
    assert_message(caught.value, store.map_path)
    assert store.map_path.read_bytes() == before
    assert not leftover_temp_files(out)
    store.close()
    assert store.map_path.read_bytes() == before
    assert not (out / LOCK_NAME).exists()
    assert [row["key"] for row in rows(store.records_path)] == [*keys[:2], "pad", keys[2]]

    filler.unlink()
    assert resume_all(out, [*keys, "pad"]) == keys[3:]  # keys[2]'s row was complete: kept
    assert_exactly_once(out, [*keys, "pad"], store.map_path)


def test_closing_on_a_full_disk_raises_once_and_releases_the_lock(small_fs: MountFs) -> None:
    fs = small_fs("256k")
    out = fs / "out"
    store = RecordStore(out, MODEL, STYLE, save_every_items=100).open()
    store.write(ok("a.png"))
    filler = fill(fs)
    with pytest.raises(DiskFullError) as caught:
        store.close()  # the final map save finds no room
    assert_message(caught.value, store.map_path)
    assert store.disk_full is caught.value
    store.close()  # idempotent, quiet
    assert not (out / LOCK_NAME).exists()
    assert load_json(store.map_path) == {}
    filler.unlink()
    assert resume_all(out, ["a.png", "b.png"]) == ["b.png"]
    assert_exactly_once(out, ["a.png", "b.png"], store.map_path)


def test_opening_on_a_full_disk_names_the_lock_file_and_leaves_no_lock(
    small_fs: MountFs,
) -> None:
    fs = small_fs("64k")
    out = fs / "out"
    filler = fill(fs)
    store = RecordStore(out, MODEL, STYLE)
    with pytest.raises(DiskFullError) as caught:
        store.open()
    assert_message(caught.value, out / LOCK_NAME)
    assert not (out / LOCK_NAME).exists()
    assert not leftover_temp_files(out)
    filler.unlink()
    assert resume_all(out, ["a.png"]) == ["a.png"]


def test_parquet_on_a_full_disk_keeps_the_previous_file(small_fs: MountFs, tmp_path: Path) -> None:
    fs = small_fs("256k")
    jsonl = tmp_path / "records.jsonl"
    target = fs / "m_default.parquet"
    jsonl.write_bytes(json_line(ok("a.png")))
    write_parquet_from_jsonl(jsonl, target)
    before = target.read_bytes()
    with jsonl.open("ab") as fh:
        for i in range(200):
            fh.write(json_line(ok(f"b{i:03d}.png", "words " * 50)))
    fill(fs)
    with pytest.raises(DiskFullError) as caught:
        write_parquet_from_jsonl(jsonl, target)
    assert_message(caught.value, target)
    assert target.read_bytes() == before
    assert not leftover_temp_files(fs)


def test_log_files_on_a_full_disk_drop_records_without_a_traceback(
    small_fs: MountFs, capsys: pytest.CaptureFixture[str]
) -> None:
    fs = small_fs("64k")
    path = fs / "logs" / "run.log"
    path.parent.mkdir()
    log = logging.getLogger("disk-full-test")
    log.propagate = False
    handler = logging.FileHandler(path, encoding="utf-8")
    log.addHandler(handler)
    try:
        log.warning("before")
        filler = fill(fs)
        with LogGuard([log.name]) as guard:
            log.warning("long %s", "line " * 2000)  # fills the page, the rest is dropped
            log.warning("dropped")
            assert guard.failure is not None
            assert_message(guard.failure, path)
            log.warning("%d", "not a number")  # any other logging error: reported as usual
            filler.unlink()
            log.warning("after")  # room again: written
        assert "handleError" not in vars(handler)
        handler.close()  # nothing unwritten is left to make this raise
    finally:
        log.removeHandler(handler)
        handler.close()
    err = capsys.readouterr().err
    assert err.count("--- Logging error ---") == 1
    assert "TypeError" in err and "ENOSPC" not in err and "No space" not in err
    text = path.read_text(encoding="utf-8")
    assert text.startswith("before\n") and text.endswith("after\n") and "dropped" not in text


def test_disk_full_errors_and_their_message() -> None:
    target = Path("/data/out/records.jsonl")
    with pytest.raises(DiskFullError) as caught, writing(target):
        raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))
    assert_message(caught.value, target)
    assert "quota" in str(caught.value)
    assert isinstance(caught.value.__cause__, OSError)
    with pytest.raises(PermissionError), writing(target):
        raise PermissionError(errno.EACCES, "denied")  # not about space: unchanged
    raw = OSError(errno.ENOSPC, "No space left on device", "/data/out/logs/x.log")
    found = as_disk_full(raw)
    assert found is not None and found.path == Path("/data/out/logs/x.log")
    assert as_disk_full(OSError(errno.EIO, "I/O error")) is None
    assert "an output file" in str(DiskFullError(None))


# -- end to end: the CLI with the tiny model ----------------------------------------------


def _line_count(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def test_caption_cli_stops_with_74_on_a_full_disk_and_resumes_exactly_once(
    small_fs: MountFs, tmp_path: Path, tiny_model_path: Path, cache_dir: Path
) -> None:
    src = tmp_path / "src"
    make_dataset(src, n_images=48, n_videos=0, seed=7)
    (src / "ground_truth.jsonl").unlink()
    keys = sorted(f.key for f in discover([src]))
    fs = small_fs("1m")
    out = fs / "out"
    records = out / "records.jsonl"
    cmd = [sys.executable, "-m", "vlmcap.cli", "caption", str(src), "-o", str(out),
           "--model", "tiny-random-qwen2.5-vl", "--max-output-tokens", "8", "--enforce-eager",
           "--save-every", "1"]  # fmt: skip
    env = {**os.environ, "VLMCAP_CACHE_DIR": str(cache_dir), "VLLM_LOGGING_LEVEL": "WARNING"}
    err_path = tmp_path / "first.stderr"
    with err_path.open("w") as err_file:
        proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=err_file, start_new_session=True
        )
        try:
            deadline = time.monotonic() + RUN_TIMEOUT_S
            while proc.poll() is None and _line_count(records) < 3:
                assert time.monotonic() < deadline, "no rows written"
                time.sleep(POLL_S)
            assert proc.poll() is None, "the run ended before the disk could be filled"
            filler = fill(fs)
            proc.wait(timeout=RUN_TIMEOUT_S)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    stderr = err_path.read_text(errors="replace")
    assert proc.returncode == DISK_FULL_STATUS, stderr[-3000:]
    assert "Traceback" not in stderr and "Logging error" not in stderr, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr[-3000:]
    named = re.fullmatch(r"error: cannot write (\S+): no space left on device.*", errors[0])
    assert named is not None, errors[0]
    assert Path(named[1]).is_relative_to(out)
    assert "rerun the same command" in errors[0]

    written = rows(records)  # complete lines only, each a valid row
    assert len(written) >= 3
    assert len({row["key"] for row in written}) == len(written)
    assert all(row["status"] == "ok" for row in written)
    map_path = out / "captions/tiny-random-qwen2.5-vl/tiny-random-qwen2.5-vl_default.json"
    saved = load_json(map_path)
    by_key = {row["key"]: row["caption"] for row in written}
    assert all(by_key[key] == caption for key, caption in saved.items())
    assert not (out / LOCK_NAME).exists()
    assert not leftover_temp_files(out)

    filler.unlink()
    again = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"{len(written)} file(s) done by an earlier run" in again.stderr + again.stdout
    assert_exactly_once(out, keys, map_path)
