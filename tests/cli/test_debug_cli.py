"""The debugging switches of ``vlmcap caption`` end to end, on the real engine: request dumps,
logprobs, the memory report and the profiler in one run, then ``--replay`` of a dump in a
second one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.test_logging_cli import CaptionRun, caption

FIRST = 2  # --debug-first and --logprobs-first
TOP_K = 3
MEMORY_EVERY = 2
PROFILE_STEPS = 2


@pytest.fixture(scope="module")
def debugged(tmp_path_factory, tiny_model_path: Path, cache_dir: Path) -> CaptionRun:
    tmp = tmp_path_factory.mktemp("debugged")
    return caption(
        tmp, tiny_model_path, cache_dir,
        "--temperature", "0", "--max-inflight", "1",
        "--profile", str(tmp / "traces"), "--profile-steps", str(PROFILE_STEPS),
        "--debug-first", str(FIRST), "--logprobs", str(TOP_K), "--logprobs-first", str(FIRST),
        "--memory-report", "--memory-every", str(MEMORY_EVERY),
    )  # fmt: skip


def dumps(run: CaptionRun) -> list[Path]:
    return sorted((run.out / "debug").glob("*.json"))


def test_the_first_requests_are_dumped_with_prompt_media_and_sampling(debugged: CaptionRun):
    assert debugged.status == 0, debugged.stderr[-3000:]
    found = dumps(debugged)
    assert len(found) == FIRST
    dump = json.loads(found[0].read_text(encoding="utf-8"))
    assert "<|vision_start|>" in dump["prompt"]  # as the engine saw it: chat template applied
    (image,) = dump["media"]["items"]
    assert image["engine"]["dtype"] and image["engine"]["shape"]  # what the engine was given
    assert dump["sampling"]["temperature"] == 0.0 and dump["sampling"]["logprobs"] == TOP_K
    assert (found[0].parent / dump["media"]["file"]).exists()  # the pixels, for a replay


def test_logprobs_are_kept_for_the_first_requests_only(debugged: CaptionRun):
    lines = (debugged.out / "debug" / "logprobs.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == FIRST
    entry = json.loads(lines[0])
    assert entry["tokens"] and all(len(t["top"]) == TOP_K for t in entry["tokens"])
    rows = [json.loads(line) for line in (debugged.out / "records.jsonl").open()]
    assert rows and not any("logprobs" in row for row in rows)  # not in the main rows


def test_the_memory_report_has_its_checkpoints(debugged: CaptionRun):
    (path,) = (debugged.out / "logs").glob("caption-*.memory.json")
    report = json.loads(path.read_text(encoding="utf-8"))
    labels = [c["label"] for c in report["checkpoints"]]
    assert labels[:2] == ["start", "loaded"] and labels[-1] == "end"
    assert labels.count("items") >= 1
    loaded = report["checkpoints"][1]
    assert loaded["engine_rss_bytes"] > 0
    assert "memory report" in debugged.stderr


def test_the_profiler_wrote_a_trace_and_named_the_top_operators(debugged: CaptionRun):
    traces = list((debugged.out.parent / "traces").glob("*.pt.trace.json*"))
    assert traces
    assert "aten::" in debugged.terminal  # the top-operators table


def test_a_dumped_request_replays_to_the_same_output(
    debugged: CaptionRun, tmp_path: Path, tiny_model_path: Path, cache_dir: Path
):
    dump = dumps(debugged)[0]
    replay = caption(tmp_path, tiny_model_path, cache_dir, "--replay", str(dump))
    assert replay.status == 0, replay.terminal[-3000:]
    assert "same" in replay.stdout
