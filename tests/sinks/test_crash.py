"""kill -9 at random moments, then resume: no gaps, no duplicates, every file readable.

A child process (``crash_writer.py``) writes rows through RecordStore; the test kills it with
SIGKILL at seeded random moments (during start-up, appends, map saves, parquet writes, the lock),
checks after every kill that what is on disk is consistent, and finally lets a resumed run finish.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from tests.sinks.crash_writer import MODEL, STYLE, caption_of, key_of
from vlmcap.sinks.lock import LOCK_NAME
from vlmcap.sinks.resume import parse_line

HELPER = Path(__file__).with_name("crash_writer.py")
COUNT = 1500
KILLS = 8


def _run(out: Path, mode: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(HELPER), str(out), str(COUNT), mode])


def _complete_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of every complete line; each complete line must parse (only the tail may be torn)."""
    if not path.exists():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")[:-1]  # the part after the last newline may be torn
    rows = [parse_line(line) for line in lines]
    assert all(row is not None for row in rows), "a complete line does not parse"
    return [row for row in rows if row is not None]


def _ok_captions(rows: list[dict[str, Any]]) -> dict[str, str]:
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:
        latest[row["key"]] = row
    return {k: r["caption"] for k, r in latest.items() if r["status"] == "ok"}


def _check_consistent(out: Path, map_path: Path, parquet_path: Path) -> list[dict[str, Any]]:
    rows = _complete_rows(out / "records.jsonl")
    ok = _ok_captions(rows)
    if map_path.exists():
        on_disk = json.loads(map_path.read_text(encoding="utf-8"))
        # The map is saved after the records it holds: it never runs ahead of the JSONL.
        assert set(on_disk) <= set(ok)
        assert all(on_disk[k] == ok[k] for k in on_disk)
    if parquet_path.exists():
        pq.read_table(parquet_path)  # readable whole, never half-written
    return rows


def test_kill9_at_random_moments_then_resume(tmp_path: Path) -> None:
    out = tmp_path / "out"
    map_path = out / "captions" / MODEL / f"{MODEL}_{STYLE}.json"
    parquet_path = map_path.with_suffix(".parquet")
    rng = random.Random(20261122)
    killed_while_writing = 0
    previous = 0
    for _ in range(KILLS):
        child = _run(out, "kill")
        time.sleep(rng.uniform(0.1, 0.8))
        child.send_signal(signal.SIGKILL)
        returncode = child.wait(timeout=30)
        rows = _check_consistent(out, map_path, parquet_path)
        if returncode == -signal.SIGKILL and len(rows) > previous:
            killed_while_writing += 1
        previous = len(rows)
    assert killed_while_writing >= KILLS // 2, "kills did not land while rows were written"
    assert previous < COUNT, "the killed runs finished everything: nothing left to resume"

    final = _run(out, "final")
    assert final.wait(timeout=60) == 0

    rows = _complete_rows(out / "records.jsonl")
    assert (out / "records.jsonl").read_bytes().endswith(b"\n")
    keys = [key_of(i) for i in range(COUNT)]
    ok_counts = Counter(r["key"] for r in rows if r["status"] == "ok")
    assert set(ok_counts) == set(keys)  # no gaps
    assert max(ok_counts.values()) == 1  # no duplicates among ok rows
    assert all(r["caption"] == caption_of(r["key"]) for r in rows if r["status"] == "ok")
    failed_keys = {r["key"] for r in rows if r["status"] == "failed"}
    assert failed_keys and all(keys.index(k) % 7 == 0 for k in failed_keys)

    captions = json.loads(map_path.read_text(encoding="utf-8"))
    assert captions == {k: caption_of(k) for k in keys}
    assert list(captions) == sorted(captions)
    table = pq.read_table(parquet_path)
    assert sorted(table.column("key").to_pylist()) == sorted(keys)
    assert set(table.column("status").to_pylist()) == {"ok"}
    assert not (out / LOCK_NAME).exists()
    leftovers = [p.name for p in out.rglob("*.tmp") if not p.name.startswith(f".{LOCK_NAME}")]
    assert leftovers == []
