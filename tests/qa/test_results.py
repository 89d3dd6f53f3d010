"""Results and metrics of a QA run, computed by hand for a small fixture of rows."""

from __future__ import annotations

import json

from vlmcap.qa.results import qa_metrics, question_results, write_qa_outputs
from vlmcap.rows import QARow


def row(qid: str, status: str = "ok", **values: object) -> QARow:
    base: dict[str, object] = {
        "key": qid,
        "qid": qid,
        "status": status,
        "choices": ["red", "blue", "green", "grey"],
        "gt_letter": "A",
        "gt_answer": "\\boxed{A}",
        "category": "colour",
        "source": "s1",
        "prompt_tokens": 10,
        "output_tokens": 2,
    }
    base.update(values)
    return QARow(**base)  # type: ignore[arg-type]


ROWS = [
    row("q1", predicted_letter="A", is_correct=True, extraction_method="lone_letter"),
    row("q2", predicted_letter="B", is_correct=False, extraction_method="explicit"),
    row("q3", is_correct=False, extraction_method="none", category="shape"),
    row("q4", is_correct=False, extraction_method="refusal", category="shape", source="s2"),
    row("q5", status="failed", error="cannot load", category="shape", source="s2"),
    row(
        "q6",
        predicted_letter="A",
        is_correct=True,
        extraction_method="judge",
        judged=True,
        judge_output="A",
        source="s2",
    ),
]


def test_metrics_match_a_hand_count():
    metrics = qa_metrics(question_results(ROWS), model="m", questions_path="q.parquet")
    # q1 and q6 right out of six; q6 only through the judge
    assert (metrics["total_questions"], metrics["correct_answers"]) == (6, 2)
    assert metrics["overall_accuracy"] == round(2 / 6, 4)
    assert metrics["rule_accuracy"] == round(1 / 6, 4)
    assert (metrics["judged"], metrics["judged_correct"]) == (1, 1)
    assert (metrics["wrong"], metrics["unparsed"], metrics["refused"], metrics["failed"]) == (
        1,
        1,
        1,
        1,
    )
    assert metrics["category_metrics"] == {
        "colour": {"total": 3, "correct": 2, "accuracy": round(2 / 3, 4)},
        "shape": {"total": 3, "correct": 0, "accuracy": 0.0},
    }
    assert metrics["source_metrics"]["s2"] == {"total": 3, "correct": 1, "accuracy": 0.3333}
    assert metrics["extraction_methods"] == {
        "(failed)": 1,
        "explicit": 1,
        "judge": 1,
        "lone_letter": 1,
        "none": 1,
        "refusal": 1,
    }
    assert metrics["question_path"] == "q.parquet"


def test_questions_left_unasked_count_against_the_accuracy():
    metrics = qa_metrics(question_results(ROWS[:2]), model="m", total_questions=4)
    assert metrics["answered_questions"] == 2 and metrics["overall_accuracy"] == 0.25


def test_circular_passes_fold_into_one_question_right_only_if_all_are():
    passes = [
        row("c1", key=f"c1#{k}", rotation=k, predicted_letter="A", is_correct=True)
        for k in range(4)
    ]
    passes[2] = row("c1", key="c1#2", rotation=2, predicted_letter="C", is_correct=False)
    good = [
        row("c2", key=f"c2#{k}", rotation=k, predicted_letter="A", is_correct=True)
        for k in range(4)
    ]
    results = question_results([*passes, *good])
    assert results["c1"]["is_correct"] is False and results["c1"]["outcome"] == "wrong"
    assert [p["outcome"] for p in results["c1"]["passes"]] == [
        "correct",
        "correct",
        "wrong",
        "correct",
    ]
    assert results["c2"]["is_correct"] is True
    assert results["c1"]["prompt_tokens"] == 40  # summed over the passes


def test_files_are_written_where_qa_scripts_put_them(tmp_path):
    results_file, metrics_file = write_qa_outputs(ROWS, tmp_path, "m")
    assert results_file == tmp_path / "qa/m/m_qa_results.json"
    assert metrics_file == tmp_path / "qa/m/m_qa_metrics.json"
    results = json.loads(results_file.read_text())
    assert list(results) == ["q1", "q2", "q3", "q4", "q5", "q6"]
    assert results["q5"]["status"] == "failed" and results["q5"]["error"] == "cannot load"
    assert json.loads(metrics_file.read_text())["model"] == "m"
