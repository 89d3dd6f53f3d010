"""RecordStore: lock, resume, overwrite, map and parquet kept in step with records.jsonl."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from vlmcap.sinks.lock import LOCK_NAME, LockedError
from vlmcap.sinks.store import RECORDS_NAME, DuplicateRecordError, RecordStore


def ok(key: str, caption: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"key": key, "status": "ok", "caption": caption or f"caption of {key}", **extra}


def failed(key: str, error: str = "decode error") -> dict[str, Any]:
    return {"key": key, "status": "failed", "caption": None, "error": error}


def records(out: Path) -> list[dict[str, Any]]:
    lines = (out / RECORDS_NAME).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def test_first_run_writes_records_map_and_parquet(tmp_path: Path) -> None:
    with RecordStore(tmp_path, "m", "default", parquet=True) as store:
        assert (tmp_path / LOCK_NAME).exists()
        assert not store.should_skip("b")
        store.write(ok("b", path="/data/b.mp4", window_start=0.0, window_end=2.0))
        store.write(failed("a"))
        store.write(ok("c"))
        outputs = store.outputs
    assert outputs == {
        "records": tmp_path / "records.jsonl",
        "captions": tmp_path / "captions" / "m" / "m_default.json",
        "parquet": tmp_path / "captions" / "m" / "m_default.parquet",
    }
    rows = records(tmp_path)
    assert [r["key"] for r in rows] == ["b", "a", "c"]
    assert all(r["model"] == "m" and r["prompt_style"] == "default" for r in rows)
    assert rows[0]["path"] == "/data/b.mp4"
    assert load_json(outputs["captions"]) == {"b": "caption of b", "c": "caption of c"}
    assert pq.read_table(outputs["parquet"]).column("key").to_pylist() == ["a", "b", "c"]
    assert store.summary.ok == 2 and store.summary.failed == 1 and store.summary.skipped == 0
    assert not (tmp_path / LOCK_NAME).exists()


def test_resume_skips_done_keys_and_counts_them(tmp_path: Path) -> None:
    with RecordStore(tmp_path, "m", "default") as store:
        store.write(ok("a"))
        store.write(failed("b"))
    with RecordStore(tmp_path, "m", "default") as store:
        assert store.summary.resumed_ok == 1 and store.summary.resumed_failed == 1
        assert store.should_skip("a")
        assert store.should_skip("a")  # counted once
        assert store.should_skip("b")  # failed, not retried
        assert not store.should_skip("c")
        store.write(ok("c"))
        assert store.should_skip("c")  # written in this run
    assert store.summary.skipped == 2
    assert store.summary.ok == 1
    assert [r["key"] for r in records(tmp_path)] == ["a", "b", "c"]
    assert load_json(store.map_path) == {"a": "caption of a", "c": "caption of c"}


def test_retry_failed_redoes_failures_and_the_new_row_wins(tmp_path: Path) -> None:
    with RecordStore(tmp_path, "m", "default", parquet=True) as store:
        store.write(failed("a"))
        store.write(ok("b"))
    with RecordStore(tmp_path, "m", "default", retry_failed=True, parquet=True) as store:
        assert not store.should_skip("a")
        assert store.should_skip("b")
        store.write(ok("a", "second try"))
    assert [(r["key"], r["status"]) for r in records(tmp_path)] == [
        ("a", "failed"),
        ("b", "ok"),
        ("a", "ok"),
    ]
    assert load_json(store.map_path)["a"] == "second try"
    table = pq.read_table(store.parquet_path)
    assert table.column("status").to_pylist() == ["ok", "ok"]
    with RecordStore(tmp_path, "m", "default") as store:
        assert store.state.failed == {}
        assert store.should_skip("a")


def test_map_is_rebuilt_from_the_jsonl_on_resume(tmp_path: Path) -> None:
    with RecordStore(tmp_path, "m", "default", save_every_items=1000) as store:
        for key in ("a", "b", "c"):
            store.write(ok(key))
        map_path = store.map_path
    # A crash after the JSONL append but before the next map save: the map lags behind.
    map_path.write_text(json.dumps({"a": "caption of a"}), encoding="utf-8")
    with RecordStore(tmp_path, "m", "default") as store:
        assert load_json(map_path) == {k: f"caption of {k}" for k in "abc"}  # at open already


def test_map_saves_incrementally_while_running(tmp_path: Path) -> None:
    now = [0.0]
    with RecordStore(
        tmp_path, "m", "default", save_every_items=2, save_every_s=60.0, clock=lambda: now[0]
    ) as store:
        store.write(ok("a"))
        assert load_json(store.map_path) == {}
        store.write(ok("b"))
        assert set(load_json(store.map_path)) == {"a", "b"}
        store.write(ok("c"))
        assert set(load_json(store.map_path)) == {"a", "b"}
        now[0] = 61.0
        store.write(failed("d"))
        assert set(load_json(store.map_path)) == {"a", "b", "c"}


def test_overwrite_removes_only_this_runs_outputs(tmp_path: Path) -> None:
    with RecordStore(tmp_path, "m", "default", parquet=True) as store:
        store.write(ok("a"))
    with RecordStore(tmp_path, "m", "short") as other:
        other.write(ok("a", "short caption"))
    (tmp_path / "notes.txt").write_text("user file")
    with RecordStore(tmp_path, "m", "default", overwrite=True) as store:
        assert store.summary.resumed_ok == 0
        assert not store.should_skip("a")
        assert not store.parquet_path.exists()
        store.write(ok("b"))
    assert [(r["key"], r["prompt_style"]) for r in records(tmp_path)] == [
        ("a", "short"),
        ("b", "default"),
    ]
    assert load_json(store.map_path) == {"b": "caption of b"}
    assert load_json(other.map_path) == {"a": "short caption"}
    assert (tmp_path / "notes.txt").read_text() == "user file"
    assert "parquet" not in store.outputs


def test_overwrite_of_the_only_run_deletes_its_records(tmp_path: Path) -> None:
    with RecordStore(tmp_path, "m", "default") as store:
        store.write(ok("a"))
    with RecordStore(tmp_path, "m", "default", overwrite=True) as store:
        assert not (tmp_path / RECORDS_NAME).exists() or records(tmp_path) == []
    assert load_json(store.map_path) == {}


def test_same_key_twice_in_one_run_raises(tmp_path: Path) -> None:
    with RecordStore(tmp_path, "m", "default") as store:
        store.write(failed("a"))
        with pytest.raises(DuplicateRecordError, match="'a' was already written"):
            store.write(ok("a"))
    assert len(records(tmp_path)) == 1


def test_malformed_rows_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    with RecordStore(tmp_path, "m", "default") as store:
        with pytest.raises(ValueError, match="no key"):
            store.write({"status": "ok", "caption": "x"})
        with pytest.raises(ValueError, match="status must be one of"):
            store.write({"key": "a", "status": "pending"})
        with pytest.raises(ValueError, match="needs a caption"):
            store.write({"key": "a", "status": "ok", "caption": None})
        with pytest.raises(ValueError, match="differs from this store"):
            store.write(ok("a", model="other-model"))
        with pytest.raises(TypeError):
            store.write(ok("a", tensor=object()))
        store.write(ok("a"))  # none of the refused rows counted as written
    assert [r["key"] for r in records(tmp_path)] == ["a"]


def test_second_store_on_the_same_folder_is_refused(tmp_path: Path) -> None:
    with RecordStore(tmp_path, "m", "default") as store:
        store.write(ok("a"))
        with pytest.raises(LockedError, match="already in use by this process"):
            RecordStore(tmp_path, "m", "other").open()
    with RecordStore(tmp_path, "m", "other") as other:
        assert not other.should_skip("a")  # another style: its own state


def test_torn_line_from_a_crash_is_repaired_at_open(tmp_path: Path) -> None:
    with RecordStore(tmp_path, "m", "default") as store:
        store.write(ok("a"))
    with (tmp_path / RECORDS_NAME).open("ab") as fh:
        fh.write(b'{"key": "b", "status": "ok", "caption": "half')
    with RecordStore(tmp_path, "m", "default") as store:
        assert store.summary.repaired_bytes > 0
        assert not store.should_skip("b")
        store.write(ok("b"))
    assert [r["key"] for r in records(tmp_path)] == ["a", "b"]


def test_use_outside_a_with_block_is_an_error(tmp_path: Path) -> None:
    store = RecordStore(tmp_path, "m", "default")
    with pytest.raises(RuntimeError, match="not opened"):
        store.write(ok("a"))
    with pytest.raises(ValueError, match="file name"):
        RecordStore(tmp_path, "../m", "default")
