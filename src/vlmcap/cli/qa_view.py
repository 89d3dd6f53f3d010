"""What ``vlmcap qa`` shows at the end: accuracy, how answers were read, where the files are."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table

from vlmcap.debug import terminal
from vlmcap.qa.results import metrics_path, results_path

if TYPE_CHECKING:
    from vlmcap.pipeline.run import RunSummary

out = terminal.console()


def print_qa_summary(summary: RunSummary, output_dir: Path, model: str) -> None:
    """The metrics file's headline numbers, per category, and this run's own counts."""
    metrics = json.loads(metrics_path(output_dir, model).read_text(encoding="utf-8"))
    table = Table("category", "questions", "correct", "accuracy", title="accuracy by category")
    for name, m in metrics["category_metrics"].items():
        table.add_row(name, str(m["total"]), str(m["correct"]), f"{m['accuracy']:.1%}")
    out.print(table)
    facts = Table("", "", show_header=False, title="summary")
    loop = summary.loop
    for name, value in (
        ("questions", f"{metrics['total_questions']} ({summary.inputs_done_before} done earlier)"),
        ("accuracy", f"{metrics['correct_answers']} correct: {metrics['overall_accuracy']:.1%}"),
        (
            "not right",
            f"{metrics['wrong']} wrong, {metrics['unparsed']} unparsed, "
            f"{metrics['refused']} refused, {metrics['failed']} failed",
        ),
        (
            "answers read by",
            ", ".join(f"{k} {v}" for k, v in metrics["extraction_methods"].items()) or "-",
        ),
        ("this run", f"{summary.ok} ok, {summary.failed} failed rows"),
        ("speed", f"{summary.rows_per_s:.2f} rows/s, {summary.tokens_per_s:.1f} tok/s"),
        (
            "busy",
            f"requests inside {loop.busy_fraction:.0%} of {loop.wall_s:.1f} s, "
            f"{loop.mean_inflight:.1f} on average (peak {loop.peak_inflight})",
        ),
    ):
        facts.add_row(name, value)
    out.print(facts)
    out.print(f"results: {results_path(output_dir, model)}")
    out.print(f"metrics: {metrics_path(output_dir, model)}")
