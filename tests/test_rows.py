"""The typed row: one declaration behind the JSONL line, resume and the parquet schema."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from vlmcap.records import Item, Record
from vlmcap.rows import CaptionRow
from vlmcap.sinks.parquet import parquet_schema, write_parquet
from vlmcap.sinks.resume import ResumeState


def finished_record() -> Record:
    record = Record(key="clip.mp4#0.00-2.00", request_id="r-1", item=Item("k", media=None))
    record.prompt = "Describe."
    record.stage1_finish_reason = "length"
    record.prompt_tokens, record.output_tokens = 40, 8
    record.timings.queued = 10.0
    record.finish("a blue square", now=12.5)
    return record


def test_a_window_row_carries_its_item_facts_and_an_image_row_leaves_them_out():
    meta = {"path": "clip.mp4", "kind": "video", "window_index": 0, "window_count": 3}
    meta |= {"window_start": 0.0, "window_end": 2.0, "frame_times": [0.0, 0.5], "odd": 1}
    line = CaptionRow.from_record(finished_record(), meta).to_json()
    assert line["caption"] == "a blue square" and line["truncated"] is True
    assert line["latency_s"] == 2.5 and line["window_count"] == 3
    assert line["frame_times"] == [0.0, 0.5]
    assert line["odd"] == 1  # an unknown fact is kept, not dropped
    image = CaptionRow.from_record(finished_record(), {"path": "a.png", "kind": "image"})
    assert "window_start" not in image.to_json() and "frame_times" not in image.to_json()


def test_json_round_trip_is_typed_and_keeps_what_it_does_not_know():
    row = CaptionRow.from_record(finished_record(), {"path": "clip.mp4", "frames": 4})
    line = json.loads(json.dumps(row.to_json()))
    line["from_a_newer_version"] = {"x": 1}
    line["frames"] = "four"  # a value of the wrong type
    back = CaptionRow.from_json(line)
    assert back.caption == "a blue square" and back.prompt_tokens == 40
    assert back.frames is None and back.extra == {
        "from_a_newer_version": {"x": 1},
        "frames": "four",
    }
    assert back.to_json()["frames"] == "four"  # written back as it was read


def test_rows_written_by_earlier_versions_resume_typed(tmp_path: Path):
    path = tmp_path / "records.jsonl"
    old = {"key": "a.png", "status": "ok", "caption": "A", "prompt_tokens": 7.0}
    path.write_text(json.dumps(old) + "\n" + json.dumps({"key": "b", "status": "failed"}) + "\n")
    state = ResumeState.load(path)
    assert isinstance(state.ok["a.png"], CaptionRow)
    assert state.ok["a.png"].prompt_tokens == 7 and state.texts() == {"a.png": "A"}
    assert state.failed["b"].error is None and state.failed["b"].caption is None


def test_parquet_schema_follows_the_row_fields(tmp_path: Path):
    schema = parquet_schema(CaptionRow)
    assert schema.names[: len(CaptionRow.columns())] == [n for n, _ in CaptionRow.columns()]
    assert schema.field("frame_times").type == pa.list_(pa.float64())
    assert schema.field("window_count").type == pa.int64()
    row = CaptionRow.from_record(finished_record(), {"frame_times": [0.0, 0.5]}).to_json()
    write_parquet([row], tmp_path / "r.parquet")
    assert pq.read_table(tmp_path / "r.parquet").to_pylist()[0]["frame_times"] == [0.0, 0.5]
