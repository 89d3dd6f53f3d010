"""The dataset pipeline on the session's real engine: windows, resume, lock, bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.conftest import engine_config
from vlmcap.media.inputs import discover
from vlmcap.pipeline.backend import OfflineBackend
from vlmcap.pipeline.caption import RunOptions, caption_files, open_store
from vlmcap.pipeline.load import MediaOptions
from vlmcap.sinks.lock import LockedError
from vlmcap.tiny.synthetic import SceneSpec, make_dataset, write_video


def rows_of(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    make_dataset(root, n_images=4, n_videos=3, seed=11, seconds=1.5, fps=8)
    return root


def run(engine, tiny_model_path, root, out, **opts):
    plugin, llm = engine
    config = engine_config(tiny_model_path, max_output_tokens=8)
    files = discover([root], extensions=opts.pop("extensions", None))
    return caption_files(
        files, OfflineBackend(llm, plugin, config), plugin, config, out, run=RunOptions(**opts)
    )


def test_every_file_gets_one_row_and_the_map_holds_the_ok_ones(
    engine, tiny_model_path, dataset, tmp_path
):
    summary = run(engine, tiny_model_path, dataset, tmp_path, parquet=True)
    rows = rows_of(tmp_path)
    keys = [r["key"] for r in rows]
    assert sorted(keys) == sorted(f.key for f in discover([dataset]))
    assert len(set(keys)) == len(keys)
    assert summary.ok + summary.failed == len(rows) == 7
    cmap = json.loads(summary.outputs["captions"].read_text())
    assert cmap == {r["key"]: r["caption"] for r in rows if r["status"] == "ok"}
    assert all(r["model"] == "tiny-qwen2.5-vl" and r["prompt_style"] == "default" for r in rows)
    table = pq.read_table(summary.outputs["parquet"]).to_pylist()
    assert sorted((r["key"], r["status"]) for r in table) == sorted(
        (r["key"], r["status"]) for r in rows
    )
    assert 0 < summary.loop.busy_fraction <= 1


def test_video_windows_have_keys_and_timestamps(engine, tiny_model_path, tmp_path):
    src = tmp_path / "src"
    write_video(src / "clip.mp4", SceneSpec("red", "circle", "left"), seconds=5.0, fps=10)
    out = tmp_path / "out"
    opts = MediaOptions(window_s=2.0, video_fps=2.0)
    summary = run(engine, tiny_model_path, src, out, media=opts)
    rows = sorted(rows_of(out), key=lambda r: r["window_start"])
    # 0-2, 2-4 and a 1 s tail (>= half a window) of its own
    assert [(r["window_start"], r["window_end"]) for r in rows] == [(0, 2), (2, 4), (4, 5)]
    assert [r["key"] for r in rows] == [
        "clip.mp4#0.00-2.00",
        "clip.mp4#2.00-4.00",
        "clip.mp4#4.00-5.00",
    ]
    for r in rows:
        assert r["path"] == "clip.mp4" and r["window_count"] == 3
        assert all(r["window_start"] <= t < r["window_end"] for t in r["frame_times"])
        assert r["frames"] == len(r["frame_times"]) >= 2
    assert summary.ok + summary.failed == 3


def test_resume_skips_done_files_and_overwrite_starts_over(
    engine, tiny_model_path, dataset, tmp_path
):
    plugin, llm = engine
    config = engine_config(tiny_model_path, max_output_tokens=8)
    backend = OfflineBackend(llm, plugin, config)
    files = discover([dataset]).files
    first = caption_files(files[:3], backend, plugin, config, tmp_path)
    assert first.ok + first.failed == 3
    second = caption_files(files, backend, plugin, config, tmp_path)
    assert second.inputs_done_before == 3
    assert second.skipped_keys == 3  # the store counts what resume skipped (it logs it too)
    assert second.ok + second.failed == len(files) - 3
    keys = [r["key"] for r in rows_of(tmp_path)]
    assert sorted(keys) == sorted(f.key for f in files)  # no gaps, no duplicates
    third = caption_files(files, backend, plugin, config, tmp_path, run=RunOptions(overwrite=True))
    assert third.inputs_done_before == 0 and third.ok + third.failed == len(files)
    assert sorted(r["key"] for r in rows_of(tmp_path)) == sorted(f.key for f in files)


def test_failed_items_are_retried_only_when_asked(engine, tiny_model_path, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "empty.png").write_bytes(b"")
    write_video(src / "ok.mp4", SceneSpec("blue", "square"), seconds=1.0)
    out = tmp_path / "out"
    first = run(engine, tiny_model_path, src, out)
    assert first.inputs_failed == 1
    again = run(engine, tiny_model_path, src, out)
    assert again.inputs_done_before == 2 and again.rows == 0
    retried = run(engine, tiny_model_path, src, out, retry_failed=True)
    assert retried.inputs_done_before == 1 and retried.failed == 1
    assert [r["key"] for r in rows_of(out)].count("empty.png") == 2


def test_a_second_job_on_the_same_folder_is_refused(engine, tiny_model_path, tmp_path):
    plugin, _ = engine
    config = engine_config(tiny_model_path)
    first = open_store(tmp_path, plugin, config, RunOptions())
    try:
        with pytest.raises(LockedError) as exc:
            open_store(tmp_path, plugin, config, RunOptions())
        assert str(os.getpid()) in str(exc.value)
    finally:
        first.close()
    open_store(tmp_path, plugin, config, RunOptions()).close()  # free again once released


def test_bad_files_fail_alone_with_reasons(engine, tiny_model_path, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    write_video(src / "good.mp4", SceneSpec("green", "triangle", "up"), seconds=1.0)
    (src / "zero.mp4").write_bytes(b"")
    (src / "text.mp4").write_text("this is not a video\n")
    good = (src / "good.mp4").read_bytes()
    (src / "cut.mp4").write_bytes(good[: len(good) // 3])
    (src / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 nope")
    (src / "café ☕.png").write_bytes((src / "bad.jpg").read_bytes())
    out = tmp_path / "out"
    summary = run(engine, tiny_model_path, src, out)
    by_key = {r["key"]: r for r in rows_of(out)}
    assert set(by_key) == {"good.mp4", "zero.mp4", "text.mp4", "cut.mp4", "bad.jpg", "café ☕.png"}
    assert by_key["good.mp4"]["status"] == "ok"
    for key in ("zero.mp4", "text.mp4", "bad.jpg", "café ☕.png"):
        row = by_key[key]
        assert row["status"] == "failed" and row["caption"] is None
        assert key in row["error"], row["error"]
    assert "empty" in by_key["zero.mp4"]["error"]
    assert summary.inputs_failed >= 4
