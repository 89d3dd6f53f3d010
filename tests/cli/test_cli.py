"""The ``vlmcap`` command line, run as a user runs it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vlmcap.cli.app import app
from vlmcap.media.inputs import media_kind

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_models_lists_builtin_and_entry_point_plugins():
    result = runner.invoke(app, ["models"], terminal_width=200)
    assert result.exit_code == 0
    for name in ("qwen2.5-vl", "cosmos-reason1", "tiny-qwen2.5-vl", "example-shouty"):
        assert name in result.output


def test_help_explains_caption():
    result = runner.invoke(app, ["caption", "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert "--stage2" in result.output and "--config" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["caption", "{tmp}/missing"], "no such file or folder"),
        (["caption", "{tmp}", "--temperature", "-1"], "temperature"),
        (["caption", "{tmp}", "--max-frames", "0"], "--max-frames"),
        (["caption", "{tmp}"], "no images or videos"),
        (["caption", "{tmp}", "--config", "{tmp}/nope.yaml"], "not found"),
        (["caption", "{tmp}", "--window", "2", "--overlap", "2"], "--overlap"),
        (["caption", "{tmp}", "--prompt-file", "{tmp}/none.txt"], "none.txt"),
        (["caption", "{tmp}", "--ext", ".txt"], "not an image or video extension"),
        (["caption"], "give media paths or --manifest"),
        (["caption", "--manifest", "{tmp}/m.jsonl"], "m.jsonl"),
    ],
)
def test_bad_usage_exits_2_with_a_message(tmp_path, args, message):
    result = runner.invoke(app, [a.format(tmp=tmp_path) for a in args], terminal_width=200)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())


def test_dry_run_lists_what_would_run_and_what_is_done(tmp_path):
    (tmp_path / "a.png").write_bytes((ROOT / "examples/images/red_circle.png").read_bytes())
    (tmp_path / "b.png").write_bytes((ROOT / "examples/images/red_circle.png").read_bytes())
    out = tmp_path / "out"
    out.mkdir()
    done = {"key": "a.png", "status": "ok", "caption": "x", "model": "tiny-qwen2.5-vl"}
    (out / "records.jsonl").write_text(json.dumps(done | {"prompt_style": "default"}) + "\n")
    args = ["caption", str(tmp_path), "-o", str(out), "-m", "tiny-qwen2.5-vl", "--dry-run"]
    result = runner.invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "image\tb.png" in result.output and "image\ta.png" not in result.output
    assert "1 file(s) to caption, 1 already done" in result.output


def test_a_locked_output_folder_is_refused_before_the_engine_starts(tmp_path):
    from vlmcap.sinks.lock import OutputLock

    (tmp_path / "a.png").write_bytes((ROOT / "examples/images/red_circle.png").read_bytes())
    out = tmp_path / "out"
    with OutputLock(out):
        args = ["caption", str(tmp_path / "a.png"), "-o", str(out), "-m", "tiny-qwen2.5-vl"]
        result = runner.invoke(app, args, terminal_width=200)
    assert result.exit_code == 2
    assert f"pid {os.getpid()}" in " ".join(result.output.split())


def test_caption_command_end_to_end(tmp_path, tiny_model_path, cache_dir):
    """The README demo on the bundled examples plus one broken file, in a fresh process."""
    media = tmp_path / "media"
    shutil.copytree(ROOT / "examples", media, ignore=shutil.ignore_patterns("*.md", "slurm"))
    (media / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    config = tmp_path / "run.yaml"
    config.write_text(
        f"model: tiny-qwen2.5-vl\nmodel_path: {tiny_model_path}\n"
        "max_output_tokens: 12\nenforce_eager: true\n"
    )
    out = tmp_path / "out"
    env = {**os.environ, "VLMCAP_CACHE_DIR": str(cache_dir), "VLLM_LOGGING_LEVEL": "WARNING"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "vlmcap.cli",
            "caption",
            str(media),
            "-c",
            str(config),
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]  # one item failed
    rows = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    media_files = sorted(
        p.relative_to(media).as_posix() for p in media.rglob("*") if media_kind(p) is not None
    )
    assert sorted(r["key"] for r in rows) == media_files
    by_key = {r["key"]: r for r in rows}
    assert by_key["broken.jpg"]["status"] == "failed"
    assert "broken.jpg" in by_key["broken.jpg"]["error"]
    assert by_key["broken.jpg"]["caption"] is None
    ok = {k: r for k, r in by_key.items() if r["status"] == "ok"}
    assert len(ok) == len(rows) - 1
    caption_map = json.loads(
        (out / "captions/tiny-qwen2.5-vl/tiny-qwen2.5-vl_default.json").read_text()
    )
    assert caption_map == {k: r["caption"] for k, r in ok.items()}
    assert "1 failed" in proc.stdout and str(out / "records.jsonl") in proc.stdout
    videos = [r for r in ok.values() if r["kind"] == "video"]
    assert videos and all(r["frames"] >= 2 for r in videos)
