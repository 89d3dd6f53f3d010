"""Atomic writes and the append-only JSONL writer."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from vlmcap.sinks.files import (
    JsonlWriter,
    atomic_path,
    atomic_write_json,
    atomic_write_text,
    remove_temp_files,
)


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "map.json"
    atomic_write_json(target, {"b": 1, "a": "é"})
    atomic_write_text(target, '{"new": true}\n')
    assert json.loads(target.read_text(encoding="utf-8")) == {"new": True}
    assert [p.name for p in target.parent.iterdir()] == ["map.json"]


def test_atomic_write_gives_a_readable_mode_not_mkstemps_0600(tmp_path: Path) -> None:
    target = tmp_path / "map.json"
    atomic_write_json(target, {})
    mode = stat.S_IMODE(target.stat().st_mode)
    umask = os.umask(0o022)
    os.umask(umask)
    assert mode == 0o666 & ~umask
    os.chmod(target, 0o640)
    atomic_write_json(target, {"x": 1})
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # an existing file keeps its mode


def test_atomic_path_keeps_old_file_when_the_writer_fails(tmp_path: Path) -> None:
    target = tmp_path / "data.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("writer died")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.bin"]


def test_jsonl_writer_appends_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    with JsonlWriter(path) as writer:
        writer.write({"key": "a", "caption": "line\nbreak"})
        # Each line is on disk as soon as write returns (no buffering in the process).
        assert path.read_bytes().endswith(b"\n")
    with JsonlWriter(path) as writer:
        writer.write({"key": "b"})
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [r["key"] for r in rows] == ["a", "b"]
    assert rows[0]["caption"] == "line\nbreak"


def test_jsonl_writer_never_merges_with_a_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_bytes(b'{"key": "a"}\n{"key": "b", "cap')
    with JsonlWriter(path) as writer:
        writer.write({"key": "c"})
    lines = path.read_bytes().split(b"\n")
    assert lines[1] == b'{"key": "b", "cap'
    assert json.loads(lines[2]) == {"key": "c"}


def test_jsonl_writer_fsyncs_on_its_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [0.0]
    synced: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    writer = JsonlWriter(tmp_path / "r.jsonl", fsync_every_s=5.0, clock=lambda: now[0])
    for _ in range(10):
        writer.write({"key": "x"})
    assert synced == []  # not per line
    now[0] = 5.0
    writer.write({"key": "y"})
    assert len(synced) >= 1
    writer.close()
    assert writer.closed


def test_remove_temp_files_only_touches_that_files_temps(tmp_path: Path) -> None:
    target = tmp_path / "map.json"
    (tmp_path / ".map.json.abc123.tmp").write_text("partial")
    (tmp_path / ".other.json.abc123.tmp").write_text("someone else's")
    target.write_text("{}")
    assert remove_temp_files(target) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.json.abc123.tmp", "map.json"]
    (tmp_path / ".map.json.new.tmp").write_text("fresh")
    assert remove_temp_files(target, older_than_s=3600) == 0
