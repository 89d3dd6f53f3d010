"""A QA run's summary files, rebuilt from its rows: per-question results and the metrics.

    OUT/qa/<model>/<model>_qa_results.json   {qid: {qid, question, choices, gt_answer,
                                              gt_letter, predicted_letter, model_output,
                                              is_correct, category, source, image_paths,
                                              num_images, status, error, extraction_method,
                                              prompt_tokens, output_tokens, passes}}
    OUT/qa/<model>/<model>_qa_metrics.json   model, total_questions, correct_answers,
                                              overall_accuracy, category_metrics, source_metrics,
                                              unparsed, refused, ambiguous, failed, ...

The names and shapes are the ones the QA scripts of this field write, so tools that read those
read these; the extra fields say why an answer scored as it did. Both files are views of the
rows JSONL (the source of truth), rewritten atomically.

Scoring: a question is correct when its answer was read and is the ground truth (in circular
mode: every pass). ``overall_accuracy`` counts answers read by the rules and by a judge
(``--judge-url``); ``rule_accuracy`` only those the rules read, and ``judged`` /
``judged_correct`` say how many the judge decided. A failed request (the item could not be
asked) counts as wrong and under ``failed``; an answer nothing could read counts as wrong and
under ``unparsed``; a refusal under ``refused``. Accuracy is over every question of the
set, nothing left out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from vlmcap.rows import QARow
from vlmcap.sinks.files import atomic_write_json

#: Methods whose letter is ``None`` because nothing could be read.
UNPARSED_METHODS = frozenset({"none", "invalid", "ambiguous"})
#: Digits kept in accuracies.
ACCURACY_DIGITS = 4
RESULTS_SUFFIX = "_qa_results.json"
METRICS_SUFFIX = "_qa_metrics.json"


def qa_dir(output_dir: Path, model: str) -> Path:
    return output_dir / "qa" / model


def results_path(output_dir: Path, model: str) -> Path:
    return qa_dir(output_dir, model) / f"{model}{RESULTS_SUFFIX}"


def metrics_path(output_dir: Path, model: str) -> Path:
    return qa_dir(output_dir, model) / f"{model}{METRICS_SUFFIX}"


def _outcome(row: QARow) -> str:
    if not row.ok:
        return "failed"
    if row.extraction_method == "refusal":
        return "refused"
    if row.predicted_letter is None:
        return "unparsed"
    return "correct" if row.is_correct else "wrong"


def question_results(rows: Iterable[QARow]) -> dict[str, dict[str, Any]]:
    """Per question (in qid order), folding the passes of circular mode into one entry."""
    by_qid: dict[str, list[QARow]] = defaultdict(list)
    for row in rows:
        by_qid[row.qid or row.key].append(row)
    results: dict[str, dict[str, Any]] = {}
    for qid in sorted(by_qid):
        passes = sorted(by_qid[qid], key=lambda r: r.rotation or 0)
        first = passes[0]
        outcomes = [_outcome(p) for p in passes]
        entry: dict[str, Any] = {
            "qid": qid,
            "question": first.question,
            "choices": first.choices,
            "gt_answer": first.gt_answer,
            "gt_letter": first.gt_letter,
            "predicted_letter": first.predicted_letter,
            "model_output": first.model_output,
            "is_correct": all(o == "correct" for o in outcomes),
            "category": first.category,
            "source": first.source,
            "image_paths": first.image_paths,
            "num_images": first.num_images,
            "status": "failed" if "failed" in outcomes else "ok",
            "outcome": _worst(outcomes),
            "error": next((p.error for p in passes if p.error), None),
            "extraction_method": first.extraction_method,
            "extraction_evidence": first.extraction_evidence,
            "judged": any(p.judged for p in passes),
            "judge_output": first.judge_output,
            "prompt_tokens": sum(p.prompt_tokens for p in passes),
            "output_tokens": sum(p.output_tokens for p in passes),
        }
        if len(passes) > 1 or first.rotation is not None:
            entry["passes"] = [
                {
                    "rotation": p.rotation,
                    "predicted_letter": p.predicted_letter,
                    "extraction_method": p.extraction_method,
                    "outcome": o,
                    "model_output": p.model_output,
                }
                for p, o in zip(passes, outcomes, strict=True)
            ]
        results[qid] = entry
    return results


#: Which outcome names a question whose passes differ (the first that any pass has).
_OUTCOME_ORDER = ("failed", "refused", "unparsed", "wrong", "correct")


def _worst(outcomes: list[str]) -> str:
    return next(o for o in _OUTCOME_ORDER if o in outcomes)


def _accuracy(correct: int, total: int) -> float:
    return round(correct / total, ACCURACY_DIGITS) if total else 0.0


def _grouped(results: Iterable[Mapping[str, Any]], field: str) -> dict[str, dict[str, Any]]:
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for entry in results:
        name = entry.get(field) or "(none)"
        totals[name][0] += 1
        totals[name][1] += bool(entry["is_correct"])
    return {
        name: {"total": t, "correct": c, "accuracy": _accuracy(c, t)}
        for name, (t, c) in sorted(totals.items())
    }


def qa_metrics(
    results: Mapping[str, Mapping[str, Any]],
    *,
    model: str,
    questions_path: str | None = None,
    dataset_path: str | None = None,
    server_url: str | None = None,
    circular: bool = False,
    total_questions: int | None = None,
) -> dict[str, Any]:
    """The metrics of ``results`` (over ``total_questions`` when more were asked for)."""
    entries = list(results.values())
    total = total_questions if total_questions is not None else len(entries)
    correct = sum(bool(e["is_correct"]) for e in entries)
    judged = [e for e in entries if e.get("judged")]
    judged_correct = sum(bool(e["is_correct"]) for e in judged)
    counts: dict[str, int] = defaultdict(int)
    methods: dict[str, int] = defaultdict(int)
    for entry in entries:
        counts[entry["outcome"]] += 1
        methods[entry.get("extraction_method") or "(failed)"] += 1
    return {
        "model": model,
        "total_questions": total,
        "answered_questions": len(entries),
        "correct_answers": correct,
        "overall_accuracy": _accuracy(correct, total),
        "rule_accuracy": _accuracy(correct - judged_correct, total),
        "category_metrics": _grouped(entries, "category"),
        "source_metrics": _grouped(entries, "source"),
        "wrong": counts["wrong"],
        "unparsed": counts["unparsed"],
        "refused": counts["refused"],
        "failed": counts["failed"],
        "judged": len(judged),
        "judged_correct": judged_correct,
        "extraction_methods": dict(sorted(methods.items())),
        "circular": circular,
        "question_path": questions_path,
        "dataset_path": dataset_path,
        "server_url": server_url,
    }


def write_qa_outputs(
    rows: Iterable[QARow], output_dir: Path, model: str, **meta: Any
) -> tuple[Path, Path]:
    """Rewrite the results and metrics files from ``rows``; their paths."""
    results = question_results(rows)
    metrics = qa_metrics(results, model=model, **meta)
    out_results, out_metrics = results_path(output_dir, model), metrics_path(output_dir, model)
    out_results.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_results, results)
    atomic_write_json(out_metrics, metrics)
    return out_results, out_metrics
