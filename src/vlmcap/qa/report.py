"""One self-contained HTML page of a QA run, to see where a model goes wrong at a glance.

``vlmcap qa`` leaves numbers (``<model>_qa_metrics.json``) and per-question facts
(``<model>_qa_results.json``); reading why answers were wrong from those means scrolling JSON.
The page puts them side by side: the headline numbers, accuracy per category and per source,
the confusion of predicted against true letters (unparsed, refused and failed answers as
columns of their own), how answers were read (extraction method by outcome) — the charts of
``vlmcap.qa.report_charts`` — and the filterable table of every answer that was not right
(``vlmcap.qa.report_table``). This module assembles the page: its HTML, its CSS and the
inline script that filters the table.

The page is one file that opens offline: plotly.js is inlined once in the head, thumbnails are
small JPEG data URLs, and nothing is loaded from anywhere. Every text taken from the data is
escaped (model outputs may hold HTML), in the page and in chart labels alike.

``build_report`` is pure apart from reading the images: it takes the two files' contents and
returns the page. ``find_run`` and ``load_run`` read a run's folder for the command line.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlmcap.qa.report_charts import (
    NOT_RIGHT,
    accuracy_figure,
    chart_html,
    confusion,
    confusion_figure,
    method_counts,
    methods_figure,
    plotly_js,
)
from vlmcap.qa.report_table import answers_table, esc
from vlmcap.qa.results import METRICS_SUFFIX, RESULTS_SUFFIX

#: Name of the page beside the run's files: ``<model>_qa_report.html``.
REPORT_SUFFIX = "_qa_report.html"


class ReportError(Exception):
    """A folder that holds no readable QA run."""


@dataclass(frozen=True)
class QARun:
    """The files of one run of ``vlmcap qa`` (``OUT/qa/<model>/``)."""

    folder: Path
    model: str

    @property
    def results_path(self) -> Path:
        return self.folder / f"{self.model}{RESULTS_SUFFIX}"

    @property
    def metrics_path(self) -> Path:
        return self.folder / f"{self.model}{METRICS_SUFFIX}"

    @property
    def report_path(self) -> Path:
        return self.folder / f"{self.model}{REPORT_SUFFIX}"


def find_run(folder: Path) -> QARun:
    """The run in ``folder`` (``OUT/qa/<model>``); ``ReportError`` saying what is missing."""
    if not folder.is_dir():
        raise ReportError(f"no such folder: {folder}")
    models = sorted(p.name[: -len(RESULTS_SUFFIX)] for p in folder.glob(f"*{RESULTS_SUFFIX}"))
    if not models:
        hint = ""
        nested = sorted(p.parent for p in folder.glob(f"qa/*/*{RESULTS_SUFFIX}"))
        if nested:
            hint = "; runs below it: " + ", ".join(str(p) for p in nested)
        raise ReportError(
            f"no QA results in {folder} (expected <model>{RESULTS_SUFFIX} and "
            f"<model>{METRICS_SUFFIX}, as `vlmcap qa` writes under OUT/qa/<model>/){hint}"
        )
    if len(models) > 1:
        raise ReportError(f"several QA runs in {folder}: {', '.join(models)}; keep one")
    run = QARun(folder, models[0])
    if not run.metrics_path.is_file():
        raise ReportError(f"{run.results_path} has no metrics file beside it ({run.metrics_path})")
    return run


def load_run(run: QARun) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """The results and metrics of ``run``; ``ReportError`` for a file that is not theirs."""
    results = _read_json(run.results_path)
    metrics = _read_json(run.metrics_path)
    if not all(isinstance(e, dict) for e in results.values()):
        raise ReportError(f"{run.results_path}: every value must be one question's results")
    return results, metrics


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ReportError(f"{path}: expected a JSON object")
    return data


# ---------------------------------------------------------------------------------------------
# The page


def _pct(value: Any) -> str:
    return f"{float(value):.1%}" if isinstance(value, int | float) else "-"


def _cards(metrics: Mapping[str, Any]) -> str:
    total = metrics.get("total_questions", 0)
    cards = [
        ("accuracy", _pct(metrics.get("overall_accuracy")), "big"),
        ("correct", f"{metrics.get('correct_answers', 0)} of {total}", "correct"),
        *((name, str(metrics.get(name, 0)), name) for name in NOT_RIGHT),
    ]
    if metrics.get("judged"):
        judged = f"{metrics['judged']} ({metrics.get('judged_correct', 0)} right)"
        cards.append(("judged", judged, ""))
        cards.append(("rule-only accuracy", _pct(metrics.get("rule_accuracy")), ""))
    return "".join(
        f'<div class="card {cls}" data-metric="{esc(name)}"><div class="value">{esc(value)}</div>'
        f'<div class="label">{esc(name)}</div></div>'
        for name, value, cls in cards
    )


def _facts(metrics: Mapping[str, Any], dataset_root: Path | None) -> str:
    facts = [
        ("questions file", metrics.get("question_path")),
        ("images from", dataset_root),
        ("server", metrics.get("server_url")),
        ("circular", "yes (every rotation must be right)" if metrics.get("circular") else None),
    ]
    return "".join(f"<dt>{esc(name)}</dt><dd>{esc(value)}</dd>" for name, value in facts if value)


def _panel(title: str, body: str, note: str = "") -> str:
    foot = f'<p class="muted small">{note}</p>' if note else ""
    return f'<section class="panel"><h2>{esc(title)}</h2>{body}{foot}</section>'


def build_report(
    results: Mapping[str, Mapping[str, Any]],
    metrics: Mapping[str, Any],
    dataset_root: Path | None,
    *,
    image_dirs: Sequence[Path] = (),
) -> str:
    """The page of one QA run: ``results`` and ``metrics`` as their files hold them; images
    are looked up under ``dataset_root``, then ``image_dirs`` (embedded images' folder)."""
    model = str(metrics.get("model") or "QA run")
    entries = list(results.values())
    roots = [*([dataset_root] if dataset_root is not None else []), *image_dirs]
    overall = metrics.get("overall_accuracy")
    overall_f = float(overall) if isinstance(overall, int | float) else None
    empty = '<p class="muted">nothing to show</p>'
    categories = metrics.get("category_metrics") or {}
    sources = metrics.get("source_metrics") or {}
    rows, columns, z = confusion(entries)
    counts = method_counts(entries)
    circular_note = "Circular run: the first rotation's letters." if metrics.get("circular") else ""
    panels = [
        _panel(
            "Accuracy by category",
            chart_html(accuracy_figure(categories, overall_f), "chart-category")
            if categories
            else empty,
        ),
        _panel(
            "Accuracy by source",
            chart_html(accuracy_figure(sources, overall_f), "chart-source") if sources else empty,
        ),
        _panel(
            "Answered letter against the true one",
            chart_html(confusion_figure(rows, columns, z), "chart-confusion") if rows else empty,
            circular_note,
        ),
        _panel(
            "How answers were read",
            chart_html(methods_figure(counts), "chart-methods") if counts else empty,
            "Questions per extraction method, by outcome.",
        ),
    ]
    return _PAGE.format(
        title=esc(f"QA report: {model}"),
        model=esc(model),
        plotly_js=plotly_js(),
        css=_CSS,
        cards=_cards(metrics),
        facts=_facts(metrics, dataset_root),
        panels="".join(panels),
        table=answers_table(results, roots),
        script=_SCRIPT,
    )


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{css}</style>
<script type="text/javascript">{plotly_js}</script>
</head>
<body>
<header><h1>QA report <span class="model">{model}</span></h1><dl class="facts">{facts}</dl></header>
<div class="cards">{cards}</div>
<div class="grid">{panels}</div>
<section class="panel wide"><h2>Answers that are not right</h2>{table}</section>
<script>{script}</script>
</body>
</html>
"""

_CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 auto; padding: 16px 24px;
  max-width: 1400px; color: #222; background: #f6f7f9; }
h1 { font-size: 22px; margin: 0 0 6px; } h1 .model { color: #1565c0; }
h2 { font-size: 16px; margin: 0 0 8px; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 0 0 12px;
  color: #555; } .facts dt { font-weight: 600; } .facts dd { margin: 0; word-break: break-all; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin-bottom: 14px; }
.card { background: #fff; border-radius: 6px; padding: 10px 16px; min-width: 90px;
  box-shadow: 0 1px 2px rgba(0,0,0,.12); border-top: 4px solid #90a4ae; }
.card .value { font-size: 22px; font-weight: 700; } .card .label { color: #666; }
.card.big { border-top-color: #1565c0; } .card.big .value { font-size: 30px; color: #1565c0; }
.card.correct { border-top-color: #2e7d32; } .card.wrong { border-top-color: #c62828; }
.card.unparsed { border-top-color: #ef6c00; } .card.refused { border-top-color: #6a1b9a; }
.card.failed { border-top-color: #455a64; }
/* Fixed tracks: each chart is drawn as soon as its div is parsed, at the width it has then. */
.grid { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 14px; }
@media (max-width: 1000px) { .grid { grid-template-columns: minmax(0, 1fr); } }
.panel { background: #fff; border-radius: 6px; padding: 12px 14px; margin-bottom: 14px;
  box-shadow: 0 1px 2px rgba(0,0,0,.12); min-width: 0; }
.muted { color: #777; } .small { font-size: 12px; margin: 4px 0 0; }
.note { background: #fff8e1; padding: 6px 10px; border-radius: 4px; }
.filters { display: flex; flex-wrap: wrap; gap: 14px; align-items: center; margin: 6px 0 10px; }
.filters input { width: 260px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: 6px 8px;
  border-bottom: 1px solid #e3e5e8; }
th { background: #eceff1; position: sticky; top: 0; }
td.images { width: 250px; } td.question { max-width: 360px; } td.output { max-width: 380px; }
.thumb { width: 112px; height: 112px; object-fit: contain; background: #eee; margin: 0 4px 4px 0;
  border-radius: 3px; display: inline-block; vertical-align: top; }
.thumb.missing { font-size: 11px; color: #777; text-align: center; overflow: hidden;
  word-break: break-all; line-height: 1.3; padding-top: 30px; box-sizing: border-box;
  border: 1px dashed #bbb; }
.more { color: #555; }
.qid { font-family: ui-monospace, monospace; font-size: 12px; }
.text { margin: 4px 0; white-space: pre-wrap; }
.choices { margin: 0; padding-left: 4px; list-style: none; }
.choices li.truth { color: #2e7d32; font-weight: 600; }
.choices li.picked { color: #c62828; text-decoration: line-through; }
.choices li.truth.picked { text-decoration: none; }
.badge { display: inline-block; color: #fff; border-radius: 3px; padding: 0 6px; font-size: 12px; }
.badge.wrong { background: #c62828; } .badge.unparsed { background: #ef6c00; }
.badge.refused { background: #6a1b9a; } .badge.failed { background: #455a64; }
.badge.correct { background: #2e7d32; }
.passes { margin: 4px 0 0; padding-left: 16px; font-size: 12px; }
.evidence { color: #555; font-size: 12px; margin-top: 4px; word-break: break-word; }
pre { white-space: pre-wrap; word-break: break-word; margin: 0; max-height: 220px; overflow: auto;
  font-size: 12px; background: #f3f4f6; padding: 4px 6px; border-radius: 3px; }
.error { color: #b71c1c; font-size: 12px; margin-bottom: 4px; }
"""

_SCRIPT = """
(function () {
  var table = document.getElementById("answers");
  if (!table) { return; }
  var rows = Array.prototype.slice.call(table.tBodies[0].rows);
  var texts = rows.map(function (r) { return r.textContent.toLowerCase(); });
  var outcome = document.getElementById("f-outcome");
  var category = document.getElementById("f-category");
  var text = document.getElementById("f-text");
  var count = document.getElementById("f-count");
  function apply() {
    var o = outcome.value, c = category.value, t = text.value.trim().toLowerCase(), n = 0;
    rows.forEach(function (r, i) {
      var show = (!o || r.dataset.outcome === o) && (!c || r.dataset.category === c) &&
        (!t || texts[i].indexOf(t) >= 0);
      r.hidden = !show;
      if (show) { n += 1; }
    });
    count.textContent = n + " of " + rows.length + " shown";
  }
  [outcome, category].forEach(function (el) { el.addEventListener("change", apply); });
  text.addEventListener("input", apply);
  apply();
})();
"""
