"""Reading a records JSONL back after a crash: repair, last row wins, retry semantics."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from vlmcap.sinks.resume import ResumeState, final_rows, repair_tail


def _line(**row: Any) -> str:
    return json.dumps(row) + "\n"


def test_torn_last_line_is_cut_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "records.jsonl"
    good = _line(key="a", status="ok", caption="A") + _line(key="b", status="failed", error="x")
    torn = '{"key": "c", "status": "ok", "capt'
    path.write_text(good + torn, encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="vlmcap.sinks.resume"):
        state = ResumeState.load(path)
    assert path.read_text(encoding="utf-8") == good  # file cut back to the last complete line
    assert state.stats.cut_bytes == len(torn)
    assert set(state.ok) == {"a"}
    assert set(state.failed) == {"b"}
    assert "c" not in state
    assert "torn last line" in caplog.text


def test_torn_file_without_any_newline_is_emptied(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_bytes(b'{"key": "a", "sta')
    assert repair_tail(path) == 17
    assert path.read_bytes() == b""
    assert len(ResumeState.load(path)) == 0


def test_complete_last_row_without_newline_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text(
        _line(key="a", status="ok", caption="A") + '{"key": "b", "status": "ok", "caption": "B"}',
        encoding="utf-8",
    )
    state = ResumeState.load(path)
    assert set(state.ok) == {"a", "b"}
    assert path.read_text(encoding="utf-8").endswith('"B"}\n')


def test_load_without_repair_leaves_the_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    content = _line(key="a", status="ok", caption="A") + '{"key": "b"'
    path.write_text(content, encoding="utf-8")
    state = ResumeState.load(path, repair=False)
    assert path.read_text(encoding="utf-8") == content
    assert set(state.ok) == {"a"}
    assert state.stats.bad_lines == [2]


def test_bad_lines_in_the_middle_are_skipped_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "records.jsonl"
    path.write_bytes(
        _line(key="a", status="ok", caption="A").encode()
        + b'{"key": "b", "status": "ok", "cap\n'  # torn line a later writer appended after
        + b"\x00\x00\x00\x00\n"  # zeros left by a power cut
        + b'["not", "a", "row"]\n'
        + b'{"no_key": 1}\n'
        + b"\n"
        + _line(key="c", status="ok", caption="C").encode()
    )
    with caplog.at_level(logging.WARNING, logger="vlmcap.sinks.resume"):
        state = ResumeState.load(path)
    assert set(state.ok) == {"a", "c"}
    assert state.stats.bad_lines == [2, 3, 4, 5]
    assert state.stats.rows == 2
    assert "skipped 4 unparseable line(s): 2, 3, 4, 5" in caplog.text


def test_last_row_per_key_wins(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text(
        _line(key="a", status="failed", error="oom")
        + _line(key="b", status="ok", caption="B1")
        + _line(key="a", status="ok", caption="A2")
        + _line(key="b", status="ok", caption="B2")
        + _line(key="c", status="ok", caption="C1")
        + _line(key="c", status="failed", error="later failure"),
        encoding="utf-8",
    )
    state = ResumeState.load(path)
    assert state.texts() == {"a": "A2", "b": "B2"}
    assert set(state.failed) == {"c"}
    assert state.failed["c"].error == "later failure"
    assert [r.get("caption") for r in final_rows(path).values()] == ["A2", "B2", None]


def test_retry_failed_semantics(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text(
        _line(key="done", status="ok", caption="D") + _line(key="bad", status="failed", error="e"),
        encoding="utf-8",
    )
    state = ResumeState.load(path)
    assert state.should_skip("done", retry_failed=False)
    assert state.should_skip("done", retry_failed=True)
    assert state.should_skip("bad", retry_failed=False)  # kept as failed
    assert not state.should_skip("bad", retry_failed=True)  # redone
    assert not state.should_skip("new", retry_failed=False)
    # The retried row, appended later, supersedes the failed one.
    with path.open("a", encoding="utf-8") as fh:
        fh.write(_line(key="bad", status="ok", caption="fixed"))
    state = ResumeState.load(path)
    assert state.texts() == {"done": "D", "bad": "fixed"}
    assert state.failed == {}


def test_rows_of_other_models_and_styles_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text(
        _line(key="a", status="ok", caption="m1", model="m", prompt_style="default")
        + _line(key="a", status="failed", error="x", model="other", prompt_style="default")
        + _line(key="b", status="ok", caption="s2", model="m", prompt_style="short")
        + _line(key="c", status="ok", caption="legacy row without model"),
        encoding="utf-8",
    )
    state = ResumeState.load(path, model="m", style="default")
    assert state.texts() == {"a": "m1", "c": "legacy row without model"}
    assert state.failed == {}


def test_missing_file_is_an_empty_state(tmp_path: Path) -> None:
    state = ResumeState.load(tmp_path / "none.jsonl")
    assert len(state) == 0
    assert not (tmp_path / "none.jsonl").exists()
