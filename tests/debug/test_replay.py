"""Replaying dumped requests on the session's real engine: same output, edited dumps, bad files."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from tests.conftest import engine_config
from tests.debug.test_request_dump import dumps, run
from tests.engine.test_offline import mixed_items
from vlmcap.cli.replay import BAD_DUMP, DIFFERS, REPRODUCED, report_replay, run_replay
from vlmcap.debug.replay import DumpError, load_dump, replay_dump
from vlmcap.options import ClientOptions
from vlmcap.pipeline.backend import OfflineBackend


def greedy(tiny_model_path: Path, **overrides: Any) -> Any:
    return engine_config(tiny_model_path, temperature=0.0, top_p=1.0, **overrides)


@pytest.fixture
def dumped(engine, tiny_model_path, tmp_path) -> dict[str, Path]:
    """Dumps of one image and one video request at temperature 0, by kind."""
    items = mixed_items(1, 1)
    run(engine, greedy(tiny_model_path, debug_first=2), items, tmp_path)
    found = dumps(tmp_path)
    return {
        "image": found[(items[0].key, "stage1")]["_path"],
        "video": found[(items[1].key, "stage1")]["_path"],
    }


def console() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, width=200, color_system=None), buf


@pytest.mark.parametrize("kind", ["image", "video"])
def test_replay_reproduces_the_dumped_tokens(engine, tiny_model_path, dumped, kind):
    plugin, llm = engine
    config = greedy(tiny_model_path)
    result = replay_dump(dumped[kind], OfflineBackend(llm, plugin, config))
    expected = json.loads(dumped[kind].read_text())["output"]
    assert result.via == "engine" and not result.notes
    assert list(result.completion.token_ids) == expected["token_ids"] != []
    assert result.diff.same_text and result.diff.same_token_ids
    assert result.diff.first_difference is None
    assert result.diff.same_prompt_tokens is True  # same prompt text and pixels
    out, buf = console()
    assert report_replay(result, out) == REPRODUCED
    assert "reproduced" in buf.getvalue()


def test_an_edited_dump_is_reported_as_a_difference(engine, tiny_model_path, dumped, tmp_path):
    plugin, llm = engine
    data = json.loads(dumped["image"].read_text())
    data["output"]["text"] = "an expected text the model never wrote"
    ids = data["output"]["token_ids"]
    data["output"]["token_ids"] = [*ids[:1], ids[1] + 1, *ids[2:]] if len(ids) > 1 else [ids[0] + 1]
    dumped["image"].write_text(json.dumps(data))
    result = replay_dump(dumped["image"], OfflineBackend(llm, plugin, greedy(tiny_model_path)))
    assert not result.reproduced
    assert not result.diff.same_text and result.diff.same_token_ids is False
    assert result.diff.first_difference == min(1, len(ids) - 1)
    out, buf = console()
    assert report_replay(result, out) == DIFFERS
    assert "differs" in buf.getvalue()
    assert f"first differing token at position {result.diff.first_difference}" in buf.getvalue()


def test_a_corrupt_dump_gives_status_2_naming_the_file(tiny_model_path, dumped, tmp_path):
    bad = tmp_path / "corrupt.json"
    bad.write_text('{"format": "vlmcap.request-dump", "version": 1, "key": ')
    out, buf = console()
    status = run_replay(bad, greedy(tiny_model_path), ClientOptions(), console=out)
    assert status == BAD_DUMP
    text = " ".join(buf.getvalue().split())
    assert str(bad) in text and "not a JSON dump" in text


def test_a_dump_without_its_media_file_is_refused(dumped):
    path = dumped["video"]
    path.with_name(json.loads(path.read_text())["media"]["file"]).unlink()
    with pytest.raises(DumpError, match="cannot read its media file") as err:
        load_dump(path)
    assert err.value.path == path


def test_a_dump_with_foreign_fields_is_refused(dumped):
    data = json.loads(dumped["image"].read_text())
    data["sampling"]["beam_width"] = 4
    dumped["image"].write_text(json.dumps(data))
    with pytest.raises(DumpError, match="bad sampling"):
        load_dump(dumped["image"])
    del data["messages"]
    dumped["image"].write_text(json.dumps(data))
    with pytest.raises(DumpError, match="missing field"):
        load_dump(dumped["image"])
