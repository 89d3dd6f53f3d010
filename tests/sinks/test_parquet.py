"""Parquet copy of the records: one fixed schema, final row per key, atomic rewrite."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from vlmcap.rows import CaptionRow
from vlmcap.sinks.files import JsonlWriter
from vlmcap.sinks.parquet import (
    EXTRA_COLUMN,
    parquet_schema,
    write_parquet,
    write_parquet_from_jsonl,
)


def _full_row(key: str) -> dict[str, object]:
    return {
        "key": key,
        "path": f"/data/{key}",
        "window_start": 0,  # an int in a float column
        "window_end": 2.5,
        "status": "ok",
        "caption": "a red ball",
        "error": None,
        "model": "m",
        "prompt_style": "default",
        "truncated": False,
        "prompt_tokens": 120,
        "output_tokens": 17,
        "latency_s": 0.4,
        "frames": 16,
        "custom_field": [1, 2],
    }


def test_schema_is_the_same_for_empty_and_full_files(tmp_path: Path) -> None:
    empty, full = tmp_path / "empty.parquet", tmp_path / "full.parquet"
    assert write_parquet([], empty) == 0
    assert write_parquet([_full_row("a"), {"key": "b", "status": "failed"}], full) == 2
    empty_schema = pq.read_schema(empty)
    assert empty_schema.equals(pq.read_schema(full))
    assert empty_schema.equals(parquet_schema())
    assert empty_schema.names == [name for name, _ in CaptionRow.columns()] + [EXTRA_COLUMN]
    assert empty_schema.field("window_start").type == pa.float64()
    assert empty_schema.field("prompt_tokens").type == pa.int64()
    assert empty_schema.field("caption").type == pa.string()
    assert all(f.nullable for f in empty_schema)


def test_values_land_in_typed_columns_and_the_rest_in_extra(tmp_path: Path) -> None:
    path = tmp_path / "r.parquet"
    wrong = {"key": "w", "status": "ok", "caption": "c", "prompt_tokens": "many"}
    write_parquet([_full_row("a"), wrong], path)
    rows = pq.read_table(path).to_pylist()
    assert rows[0]["window_start"] == 0.0
    assert rows[0]["frames"] == 16
    assert rows[0]["error"] is None
    assert json.loads(rows[0][EXTRA_COLUMN]) == {"custom_field": [1, 2]}
    assert rows[1]["prompt_tokens"] is None  # wrong type: kept in extra, not lost
    assert json.loads(rows[1][EXTRA_COLUMN]) == {"prompt_tokens": "many"}


def test_parquet_from_jsonl_holds_the_final_row_per_key(tmp_path: Path) -> None:
    jsonl = tmp_path / "records.jsonl"
    with JsonlWriter(jsonl) as writer:
        writer.write({"key": "b", "status": "failed", "error": "oom", "model": "m"})
        writer.write({"key": "a", "status": "ok", "caption": "A", "model": "m"})
        writer.write({"key": "b", "status": "ok", "caption": "B", "model": "m"})
        writer.write({"key": "c", "status": "ok", "caption": "other", "model": "other"})
    path = tmp_path / "out" / "r.parquet"
    assert write_parquet_from_jsonl(jsonl, path, model="m") == 2
    table = pq.read_table(path)
    assert table.column("key").to_pylist() == ["a", "b"]
    assert table.column("caption").to_pylist() == ["A", "B"]
    assert table.column("status").to_pylist() == ["ok", "ok"]
    assert sorted(p.name for p in path.parent.iterdir()) == ["r.parquet"]
