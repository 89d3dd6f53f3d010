"""vlmcap on a real local Ray cluster: decode tasks, engine actors running the tiny model on
vLLM's CPU engine, the same outputs as one machine, faults and resume.

Each job starts its own engine actors (about a minute on a 2-core machine), so the tests are few
and each checks several things of one run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import ray
from PIL import Image

from tests.conftest import engine_config
from tests.distributed import poison
from tests.distributed.conftest import cluster_engines, engine_actors
from tests.runtime.procs import wait_for
from vlmcap.core.recovery import poison_reason
from vlmcap.distributed import RayBackend
from vlmcap.media.inputs import discover
from vlmcap.options.ray import RayOptions
from vlmcap.pipeline.backend import OfflineBackend
from vlmcap.pipeline.caption import caption_files
from vlmcap.qa.dataset import load_questions
from vlmcap.tiny.qa_set import write_question_set
from vlmcap.tiny.synthetic import make_dataset

pytestmark = pytest.mark.engine

#: Seconds a whole job may take (engine actors start, restart after deaths, on 2 cores).
JOB_TIMEOUT_S = 600
#: Seconds the processes of a killed job get to go.
GONE_S = 60
#: Output tokens of the caption run: enough that the poison request is still inside its engine
#: when that engine is killed (the random tiny model writes until the limit).
POISON_TOKENS = 48


def rows_of(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_ray_captions_equal_one_machines_and_a_poison_item_fails_alone(
    ray_cluster, engine, tiny_model_path, tmp_path
):
    src = tmp_path / "src"
    make_dataset(src, n_images=8, n_videos=2, seed=5)
    (src / "ground_truth.jsonl").unlink()
    Image.new("RGB", (56, 56), poison.POISON_COLOUR).save(src / "poison.png")
    (src / "broken.png").write_bytes(b"not a picture")
    files = discover([src]).files
    config = engine_config(
        tiny_model_path,
        max_output_tokens=POISON_TOKENS,
        max_inflight=4,
        engine_restarts=3,
        mm_cache=False,
    )
    # one machine: the session's engine, the same weights and prompts
    plugin, llm = engine
    here = caption_files(
        [f for f in files if f.key != "poison.png"],
        OfflineBackend(llm, plugin, config),
        plugin,
        config,
        tmp_path / "here",
    )
    ray.cloudpickle.register_pickle_by_value(poison)  # the workers need not import tests/
    remote_plugin = poison.RayPoisonPlugin(str(tiny_model_path))
    options = RayOptions(ray=True, ray_address=ray_cluster, ray_batch=2)
    there = caption_files(
        files, RayBackend(remote_plugin, config, options), remote_plugin, config, tmp_path / "there"
    )
    assert there.inputs_failed == here.inputs_failed == 1  # broken.png, on both
    mine = {r["key"]: r for r in rows_of(tmp_path / "here" / "records.jsonl")}
    theirs = {r["key"]: r for r in rows_of(tmp_path / "there" / "records.jsonl")}
    assert sorted(theirs) == sorted([*mine, "poison.png"])  # every item once, nothing more
    bad = theirs.pop("poison.png")
    assert bad["status"] == "failed" and bad["error"].startswith(poison_reason(""))
    for key, row in mine.items():
        assert (theirs[key]["status"], theirs[key]["caption"]) == (row["status"], row["caption"]), (
            key
        )
    wait_for(lambda: not cluster_engines(), GONE_S, "the job's engines to stop")


def test_qa_on_ray_resumes_after_the_driver_is_killed_and_rides_out_a_killed_actor(
    ray_cluster, trained_engine, tmp_path
):
    """``vlmcap qa --ray`` joins the cluster; its driver gets SIGKILL mid-run; the rerun
    loses its engine actor's process mid-run too. Every question ends up answered exactly
    once, with the answers a run on one machine gives."""
    root = tmp_path / "set"
    questions_file = write_question_set(root, n_images=24, n_pairs=6, seed=3)
    questions = load_questions(questions_file, root).questions
    out = tmp_path / "out"
    records = out / "qa" / "tiny-qwen2.5-vl" / "tiny-qwen2.5-vl_qa_records.jsonl"
    cmd = [sys.executable, "-m", "vlmcap.cli", "qa", "--questions", str(questions_file),
           "-o", str(out), "--model", "tiny-qwen2.5-vl", "--max-output-tokens", "16",
           "--max-model-len", "2048", "--enforce-eager", "--save-every", "1",
           "--max-inflight", "2", "--ray", "--ray-address", ray_cluster,
           "--ray-batch", "1"]  # fmt: skip

    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: len(rows_of(records)) >= 3, JOB_TIMEOUT_S, "the first answers")
        first.send_signal(signal.SIGKILL)
        first.wait()
        # the dead driver's actors and engines go with it (Ray ends the job's actors; an
        # actor's child guard stops its engine)
        wait_for(lambda: not engine_actors() and not cluster_engines(), GONE_S, "cleanup")
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    before = len(rows_of(records))
    assert 3 <= before < len(questions)

    second = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: len(rows_of(records)) >= before + 3, JOB_TIMEOUT_S, "more answers")
        actors = engine_actors()
        assert len(actors) == 1, actors
        os.kill(actors[0].pid, signal.SIGKILL)  # Ray restarts it; its calls are retried
        _, err = second.communicate(timeout=JOB_TIMEOUT_S)
    finally:
        if second.poll() is None:
            second.kill()
            second.wait()
    assert second.returncode == 0, err.decode(errors="replace")[-3000:]
    written = rows_of(records)
    assert sorted(r["key"] for r in written) == sorted(q.qid for q in questions)  # once each
    assert all(r["status"] == "ok" for r in written)

    llm, plugin, config = trained_engine
    from vlmcap.pipeline.qa import answer_questions

    answer_questions(
        questions, OfflineBackend(llm, plugin, config), plugin, config, tmp_path / "here"
    )
    here = rows_of(tmp_path / "here" / records.relative_to(out))
    assert {r["key"]: r["predicted_letter"] for r in written} == {
        r["key"]: r["predicted_letter"] for r in here
    }
    wait_for(lambda: not engine_actors() and not cluster_engines(), GONE_S, "cleanup")
