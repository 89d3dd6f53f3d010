"""Visual QA through the real engine on the trained tiny model: scores, outputs, circular mode.

The question set is written from the tiny model's synthetic world (``vlmcap.tiny.qa_set``), so
the model's own evaluation (``vlmcap.tiny.evaluate``) can ask the very same questions and the
two scores can be compared.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from vlmcap.media.images import load_image
from vlmcap.pipeline.backend import OfflineBackend
from vlmcap.pipeline.qa import answer_questions
from vlmcap.qa.dataset import Question, load_questions
from vlmcap.qa.results import metrics_path, results_path
from vlmcap.records import Item
from vlmcap.tasks.qa import pass_key
from vlmcap.tiny import evaluate
from vlmcap.tiny.qa_set import write_question_set

pytestmark = pytest.mark.engine

MODEL = "tiny-qwen2.5-vl"
#: How far ``vlmcap qa`` may be from the tiny model's own evaluation on the same questions.
SAME_SCORE = 0.03


@pytest.fixture(scope="module")
def question_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Question]]:
    root = tmp_path_factory.mktemp("qa-set")
    path = write_question_set(root, n_images=40, n_pairs=12, seed=11)
    return path, load_questions(path, root).questions


def run_qa(trained_engine: Any, questions: list[Question], out: Path, **kw: Any) -> Any:
    llm, plugin, config = trained_engine
    backend = OfflineBackend(llm, plugin, config)
    return answer_questions(questions, backend, plugin, config, out, **kw)


def test_scores_match_the_tiny_models_own_evaluation(trained_engine, question_set, tmp_path):
    _, questions = question_set
    summary = run_qa(trained_engine, questions, tmp_path)
    metrics = json.loads(metrics_path(tmp_path, MODEL).read_text())
    assert summary.ok == metrics["total_questions"] == len(questions) == 64
    # the evaluation's own path: its prompts, its engine call, its answer reading
    llm, plugin, config = trained_engine
    own = [
        evaluate.Question(
            Item(
                key=q.qid,
                media=[load_image(p) for p in q.images]
                if len(q.images) > 1
                else load_image(q.images[0]),
                prompt=plugin.qa_prompt(q.question, q.choices),
                max_tokens=config.max_output_tokens,
            ),
            q.answer,
            q.category or "",
            tuple(q.choices.values()),
        )
        for q in questions
    ]
    scores = evaluate.ask(own, llm, plugin, config)
    assert abs(metrics["overall_accuracy"] - scores["accuracy"]) <= SAME_SCORE, (metrics, scores)
    assert metrics["overall_accuracy"] >= 0.75  # it sees (chance is about 0.3 on this mix)
    per = metrics["category_metrics"]
    assert set(per) == {"colour", "shape", "count", "pair", "picture"}
    assert sum(m["total"] for m in per.values()) == len(questions)


def test_results_file_has_the_fields_of_this_field_and_why(trained_engine, question_set, tmp_path):
    _, questions = question_set
    run_qa(trained_engine, questions[:6], tmp_path)
    results = json.loads(results_path(tmp_path, MODEL).read_text())
    assert list(results) == sorted(q.qid for q in questions[:6])
    for q in questions[:6]:
        entry = results[q.qid]
        for field in (
            "qid",
            "question",
            "choices",
            "gt_answer",
            "gt_letter",
            "predicted_letter",
            "model_output",
            "is_correct",
            "category",
            "source",
            "image_paths",
            "num_images",
            "status",
            "extraction_method",
        ):
            assert field in entry, field
        assert entry["choices"] == list(q.choices.values())
        assert entry["gt_letter"] == q.answer and entry["gt_answer"] == q.raw_answer
        assert entry["image_paths"] == list(q.image_keys)
        assert entry["is_correct"] == (entry["predicted_letter"] == q.answer)
        assert entry["model_output"] and entry["extraction_method"] != "none"


def test_two_image_questions_send_both_images_in_order(trained_engine, question_set, tmp_path):
    _, questions = question_set
    pairs = [q for q in questions if q.category == "picture"]
    run_qa(trained_engine, pairs, tmp_path)
    results = json.loads(results_path(tmp_path, MODEL).read_text())
    assert all(results[q.qid]["num_images"] == 2 for q in pairs)
    # "what is in picture N" is answerable only with both images, in order
    right = sum(results[q.qid]["is_correct"] for q in pairs)
    assert right / len(pairs) >= 0.7, results


def test_circular_mode_asks_every_rotation_and_reuses_passes(
    trained_engine, question_set, tmp_path
):
    _, questions = question_set
    subset = [q for q in questions if len(q.choices) == 4][:5]
    first = run_qa(trained_engine, subset, tmp_path, circular=True)
    assert first.ok == 4 * len(subset)  # one row per rotation
    rows = [
        json.loads(line)
        for line in (tmp_path / f"qa/{MODEL}/{MODEL}_qa_records.jsonl").read_text().splitlines()
    ]
    assert sorted(r["key"] for r in rows) == sorted(
        pass_key(q.qid, k) for q in subset for k in range(4)
    )
    results = json.loads(results_path(tmp_path, MODEL).read_text())
    for q in subset:
        passes = results[q.qid]["passes"]
        assert [p["rotation"] for p in passes] == [0, 1, 2, 3]
        assert results[q.qid]["is_correct"] == all(p["outcome"] == "correct" for p in passes)
    metrics = json.loads(metrics_path(tmp_path, MODEL).read_text())
    assert metrics["circular"] is True and metrics["total_questions"] == len(subset)
    again = run_qa(trained_engine, subset, tmp_path, circular=True)
    assert again.rows == 0 and again.inputs_done_before == len(subset)  # passes reused


def test_an_invalid_set_is_reported_before_any_engine_starts(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [
        {"qid": "q1", "question": "Which?\nA. x\nB. y", "answer": "A", "image": ["../out.png"]},
        {"qid": "q1", "question": "", "answer": "C", "image": ["missing.png"]},
    ]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "bad.parquet")
    cmd = [sys.executable, "-m", "vlmcap.cli", "qa", "--questions", str(tmp_path / "bad.parquet")]
    proc = subprocess.run(
        [*cmd, "-o", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    message = " ".join(proc.stderr.split())
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "q1" in message and "--skip-invalid" in message
    assert "outside" in message or ".." in message
    assert not (tmp_path / "out").exists()  # nothing was started or written
