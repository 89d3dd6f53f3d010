"""One self-contained HTML page of a QA run, to see where a model goes wrong at a glance.

``vlmcap qa`` leaves numbers (``<model>_qa_metrics.json``) and per-question facts
(``<model>_qa_results.json``); reading why answers were wrong from those means scrolling JSON.
The page puts them side by side: the headline numbers, accuracy per category and per source,
the confusion of predicted against true letters (unparsed, refused and failed answers as
columns of their own), how answers were read (extraction method by outcome), and a filterable
table of every answer that was not right, with thumbnails of its images, the question, the
choices, the truth, the prediction, the rule that decided and the model's output.

The page is one file that opens offline: plotly.js is inlined once in the head, thumbnails are
small JPEG data URLs, and nothing is loaded from anywhere. Every text taken from the data is
escaped (model outputs may hold HTML), in the page and in chart labels alike. The table is
capped (``MAX_TABLE_ROWS``, shared fairly between outcomes) so that a large run keeps the page
small; the page says how many were left out.

``build_report`` is pure apart from reading the images: it takes the two files' contents and
returns the page. ``find_run`` and ``load_run`` read a run's folder for the command line.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import json
import string
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from vlmcap.qa.results import METRICS_SUFFIX, RESULTS_SUFFIX

#: Name of the page beside the run's files: ``<model>_qa_report.html``.
REPORT_SUFFIX = "_qa_report.html"
#: Outcomes the table lists, in the order the filter offers them.
NOT_RIGHT = ("wrong", "unparsed", "refused", "failed")
#: Every outcome, in the order the extraction chart stacks them.
OUTCOMES = ("correct", *NOT_RIGHT)
#: Colour of each outcome in the charts and badges.
OUTCOME_COLOURS = {
    "correct": "#2e7d32",
    "wrong": "#c62828",
    "unparsed": "#ef6c00",
    "refused": "#6a1b9a",
    "failed": "#455a64",
}
#: Table rows shown at most (thumbnails are most of their size).
MAX_TABLE_ROWS = 300
#: Thumbnails shown per question at most (the rest are counted).
MAX_THUMBS_PER_ROW = 4
#: Longest side of a thumbnail, in pixels.
THUMB_PX = 112
#: JPEG quality of thumbnails.
THUMB_QUALITY = 70
#: Characters of a model output shown at most (the rest is cut with a note).
MAX_OUTPUT_CHARS = 4000
#: Characters of a category or source name on a chart axis (the hover has the full name).
MAX_LABEL_CHARS = 40
#: Accuracy from which a bar's label fits inside it (shorter bars have it beside them).
INSIDE_LABEL_MIN = 0.3
#: Height of one bar of the accuracy and extraction charts, and what every chart adds to it.
BAR_PX = 30
CHART_BASE_PX = 110
#: Column names of the confusion heatmap for answers that named no letter.
NO_LETTER_COLUMNS = ("unparsed", "refused", "failed")
#: Options of every chart: no toolbar (it covers small charts; hovering still shows values),
#: resizing with the page.
PLOT_CONFIG: dict[str, Any] = {"displayModeBar": False, "responsive": True}
#: The look of every chart (plotly's white template, tighter margins).
PLOT_TEMPLATE = "plotly_white"
MARGINS = {"l": 10, "r": 20, "t": 30, "b": 40}


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
# Figures (pure): what each chart counts


def letter(index: int) -> str:
    """The letter of option ``index`` (A, B, ...; past Z, the index itself)."""
    return string.ascii_uppercase[index] if index < len(string.ascii_uppercase) else str(index)


def first_pass(entry: Mapping[str, Any]) -> tuple[str | None, str]:
    """The predicted letter and outcome of ``entry``'s first pass (circular mode asks several
    rotations; only the first keeps the letters of the question as written)."""
    passes = entry.get("passes") or []
    if passes and isinstance(passes[0], Mapping):
        return passes[0].get("predicted_letter"), str(passes[0].get("outcome") or "")
    return entry.get("predicted_letter"), str(entry.get("outcome") or "")


def confusion(
    results: Iterable[Mapping[str, Any]],
) -> tuple[list[str], list[str], list[list[int]]]:
    """Rows (true letters), columns (predicted letters, then ``unparsed`` and ``refused``, and
    ``failed`` when any failed) and the count of questions in each cell."""
    cells: Counter[tuple[str, str]] = Counter()
    letters: set[str] = set()
    failed = False
    for entry in results:
        truth = entry.get("gt_letter") or "?"
        predicted, outcome = first_pass(entry)
        if outcome == "failed":
            column, failed = "failed", True
        elif outcome == "refused":
            column = "refused"
        elif predicted is None:
            column = "unparsed"
        else:
            column = str(predicted)
            letters.add(column)
        letters.add(str(truth))
        letters.update(letter(i) for i in range(len(entry.get("choices") or [])))
        cells[str(truth), column] += 1
    ordered = sorted(letters, key=lambda x: (len(x), x))
    columns = [*ordered, *NO_LETTER_COLUMNS[: 3 if failed else 2]]
    return ordered, columns, [[cells[r, c] for c in columns] for r in ordered]


def method_counts(results: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """Per extraction method (``(failed)`` where none ran), the questions of each outcome."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(OUTCOMES, 0))
    for entry in results:
        method = entry.get("extraction_method") or "(failed)"
        outcome = entry.get("outcome") or "failed"
        counts[method][outcome if outcome in OUTCOMES else "failed"] += 1
    return dict(sorted(counts.items()))


def pick_rows(entries: Sequence[Mapping[str, Any]], cap: int) -> list[Mapping[str, Any]]:
    """At most ``cap`` of ``entries``, shared fairly between outcomes (a rare outcome keeps
    all of its rows, the rest is split evenly), in their given order."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, entry in enumerate(entries):
        groups[str(entry.get("outcome"))].append(i)
    quota: dict[str, int] = {}
    left, waiting = cap, sorted(groups, key=lambda o: len(groups[o]))
    while waiting:
        name = waiting.pop(0)
        quota[name] = min(len(groups[name]), left // (len(waiting) + 1))
        left -= quota[name]
    keep = sorted(i for name, idx in groups.items() for i in idx[: quota[name]])
    return [entries[i] for i in keep]


def _axis_labels(names: Sequence[str]) -> list[str]:
    """Short, distinct, escaped axis labels for ``names``."""
    labels: list[str] = []
    seen: set[str] = set()
    for name in names:
        short = name if len(name) <= MAX_LABEL_CHARS else name[: MAX_LABEL_CHARS - 1] + "…"
        label, n = short, 1
        while label in seen:
            n += 1
            label = f"{short} ({n})"
        seen.add(label)
        labels.append(label)
    return [_plot_text(x) for x in labels]


def _plot_text(text: object) -> str:
    """``text`` for a chart label: plotly reads a few HTML tags in labels and decodes
    entities, so escaping shows the text as it is."""
    return html.escape(str(text), quote=False)


# ---------------------------------------------------------------------------------------------
# Charts


def _accuracy_figure(groups: Mapping[str, Mapping[str, Any]], overall: float | None) -> Any:
    import plotly.graph_objects as go

    names = list(groups)
    totals = [int(groups[n].get("total") or 0) for n in names]
    correct = [int(groups[n].get("correct") or 0) for n in names]
    accuracy = [float(groups[n].get("accuracy") or 0.0) for n in names]
    fig = go.Figure(
        go.Bar(
            x=accuracy,
            y=_axis_labels(names),
            orientation="h",
            marker_color=OUTCOME_COLOURS["correct"],
            text=[f"{a:.1%} ({c}/{t})" for a, c, t in zip(accuracy, correct, totals, strict=True)],
            textposition=["inside" if a >= INSIDE_LABEL_MIN else "outside" for a in accuracy],
            insidetextanchor="end",
            constraintext="none",
            customdata=[_plot_text(n) for n in names],
            hovertemplate="%{customdata}: %{x:.1%}<extra></extra>",
        )
    )
    if overall is not None:
        fig.add_vline(
            x=overall,
            line_dash="dash",
            line_color="#333",
            layer="below",
            annotation_text=f"overall {overall:.1%}",
            annotation_position="top",
        )
    fig.update_xaxes(range=[0, 1.05], tickformat=".0%", title_text="accuracy")
    fig.update_yaxes(autorange="reversed", type="category")
    return _styled(fig, len(names))


def _confusion_figure(rows: list[str], columns: list[str], z: list[list[int]]) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=columns,
            y=rows,
            colorscale="Blues",
            text=[[str(v) if v else "" for v in row] for row in z],
            texttemplate="%{text}",
            hovertemplate="true %{y}, answered %{x}: %{z}<extra></extra>",
            colorbar={"title": {"text": "questions"}},
        )
    )
    fig.update_xaxes(type="category", title_text="answered", side="bottom")
    fig.update_yaxes(type="category", title_text="true letter", autorange="reversed")
    height = CHART_BASE_PX + max(4, len(rows)) * 2 * BAR_PX
    return _styled(fig, 0, height=height)


def _methods_figure(counts: Mapping[str, Mapping[str, int]]) -> Any:
    import plotly.graph_objects as go

    methods = list(counts)
    labels = _axis_labels(methods)
    fig = go.Figure(
        [
            go.Bar(
                name=outcome,
                x=[counts[m][outcome] for m in methods],
                y=labels,
                orientation="h",
                marker_color=OUTCOME_COLOURS[outcome],
                hovertemplate=f"%{{y}}: %{{x}} {outcome}<extra></extra>",
            )
            for outcome in OUTCOMES
            if any(counts[m][outcome] for m in methods)
        ]
    )
    fig.update_layout(
        barmode="stack",
        legend={"orientation": "h", "x": 0, "y": 1, "yanchor": "bottom", "traceorder": "normal"},
    )
    fig.update_xaxes(title_text="questions")
    fig.update_yaxes(autorange="reversed", type="category")
    return _styled(fig, len(methods), extra=BAR_PX)


def _styled(fig: Any, bars: int, *, height: int | None = None, extra: int = 0) -> Any:
    fig.update_layout(
        template=PLOT_TEMPLATE,
        margin=MARGINS,
        height=height or CHART_BASE_PX + extra + max(bars, 2) * BAR_PX,
        showlegend=len(fig.data) > 1,
    )
    return fig


def _chart(fig: Any, div_id: str) -> str:
    """The figure as a ``div`` and the script that draws it (plotly.js is in the head)."""
    import plotly.io as pio

    # plotly writes the figure as JSON with <, > and / escaped, so no data closes the script.
    out: str = pio.to_html(
        fig,
        include_plotlyjs=False,
        full_html=False,
        div_id=div_id,
        config=PLOT_CONFIG,
        default_height=f"{fig.layout.height}px",
    )
    return out


@functools.cache
def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    js: str = get_plotlyjs()
    return js


# ---------------------------------------------------------------------------------------------
# Thumbnails


def thumbnail_data_url(path: Path, size: int = THUMB_PX) -> str | None:
    """A small JPEG of the image at ``path`` as a data URL; ``None`` when it cannot be read."""
    try:
        with Image.open(path) as image:
            image.draft("RGB", (size, size))
            image.thumbnail((size, size))
            if image.mode in ("RGBA", "LA") or "transparency" in image.info:
                rgba = image.convert("RGBA")
                flat = Image.new("RGB", rgba.size, "white")
                flat.paste(rgba, mask=rgba.getchannel("A"))
            else:
                flat = image.convert("RGB")
            buf = io.BytesIO()
            flat.save(buf, format="JPEG", quality=THUMB_QUALITY, optimize=True)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class _Thumbnails:
    """Thumbnails of the images a question names, each image encoded once."""

    def __init__(self, roots: Sequence[Path]) -> None:
        self.roots = list(roots)
        self.urls: dict[str, str | None] = {}

    def find(self, key: str) -> Path | None:
        given = Path(key)
        candidates = [given] if given.is_absolute() else [root / given for root in self.roots]
        return next((p for p in candidates if p.is_file()), None)

    def url(self, key: str) -> str | None:
        if key not in self.urls:
            path = self.find(key)
            self.urls[key] = None if path is None else thumbnail_data_url(path)
        return self.urls[key]

    def cell(self, keys: Sequence[str]) -> str:
        parts = []
        for key in keys[:MAX_THUMBS_PER_ROW]:
            url, name = self.url(key), _esc(key)
            if url is None:
                parts.append(
                    f'<span class="thumb missing" title="{name}">no image<br>{name}</span>'
                )
            else:
                parts.append(f'<img class="thumb" src="{url}" alt="{name}" title="{name}">')
        if len(keys) > MAX_THUMBS_PER_ROW:
            parts.append(f'<span class="more">+{len(keys) - MAX_THUMBS_PER_ROW}</span>')
        return "".join(parts) or '<span class="muted">no images</span>'


# ---------------------------------------------------------------------------------------------
# The page


def _esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


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
        f'<div class="card {cls}" data-metric="{_esc(name)}"><div class="value">{_esc(value)}</div>'
        f'<div class="label">{_esc(name)}</div></div>'
        for name, value, cls in cards
    )


def _facts(metrics: Mapping[str, Any], dataset_root: Path | None) -> str:
    facts = [
        ("questions file", metrics.get("question_path")),
        ("images from", dataset_root),
        ("server", metrics.get("server_url")),
        ("circular", "yes (every rotation must be right)" if metrics.get("circular") else None),
    ]
    return "".join(f"<dt>{_esc(name)}</dt><dd>{_esc(value)}</dd>" for name, value in facts if value)


def _choices(entry: Mapping[str, Any]) -> str:
    truth, predicted = entry.get("gt_letter"), first_pass(entry)[0]
    items = []
    for i, text in enumerate(entry.get("choices") or []):
        mark = letter(i)
        cls = " ".join(
            c for c, on in (("truth", mark == truth), ("picked", mark == predicted)) if on
        )
        items.append(f'<li class="{cls}"><b>{_esc(mark)}.</b> {_esc(text)}</li>')
    return f'<ol class="choices">{"".join(items)}</ol>' if items else ""


def _option_text(entry: Mapping[str, Any], mark: str | None) -> str:
    choices = entry.get("choices") or []
    for i, text in enumerate(choices):
        if letter(i) == mark:
            return f' <span class="muted">{_esc(text)}</span>'
    return ""


def _prediction(entry: Mapping[str, Any]) -> str:
    outcome = str(entry.get("outcome") or "")
    predicted = entry.get("predicted_letter")
    shown = _esc(predicted) if predicted else "—"
    out = [
        f'<span class="badge {_esc(outcome)}">{_esc(outcome)}</span> '
        f"<b>{shown}</b>{_option_text(entry, predicted)}"
    ]
    passes = entry.get("passes") or []
    if len(passes) > 1:
        rows = "".join(
            f"<li>rotation {_esc(p.get('rotation'))}: {_esc(p.get('predicted_letter') or '—')} "
            f"({_esc(p.get('outcome'))})</li>"
            for p in passes
            if isinstance(p, Mapping)
        )
        out.append(f'<ul class="passes">{rows}</ul>')
    return "".join(out)


def _output(entry: Mapping[str, Any]) -> str:
    text = str(entry.get("model_output") or "")
    cut = ""
    if len(text) > MAX_OUTPUT_CHARS:
        cut = f'<div class="muted">… {len(text) - MAX_OUTPUT_CHARS} more characters</div>'
        text = text[:MAX_OUTPUT_CHARS]
    error = entry.get("error")
    err = f'<div class="error">{_esc(error)}</div>' if error else ""
    body = f"<pre>{_esc(text)}</pre>" if text else '<span class="muted">no output</span>'
    return err + body + cut


def _row(entry: Mapping[str, Any], thumbs: _Thumbnails) -> str:
    outcome = str(entry.get("outcome") or "")
    category = str(entry.get("category") or "(none)")
    source = entry.get("source")
    method = entry.get("extraction_method") or "(failed)"
    evidence = entry.get("extraction_evidence")
    truth = entry.get("gt_letter")
    where = _esc(category) + (f" · {_esc(source)}" if source else "")
    return (
        f'<tr data-outcome="{_esc(outcome)}" data-category="{_esc(category)}">'
        f'<td class="images">{thumbs.cell([str(k) for k in entry.get("image_paths") or []])}</td>'
        f'<td class="question"><div class="qid">{_esc(entry.get("qid"))}'
        f' <span class="muted">{where}</span></div>'
        f'<div class="text">{_esc(entry.get("question"))}</div>{_choices(entry)}</td>'
        f"<td><b>{_esc(truth)}</b>{_option_text(entry, truth)}</td>"
        f"<td>{_prediction(entry)}</td>"
        f"<td><code>{_esc(method)}</code>"
        + (f'<div class="evidence">“{_esc(evidence)}”</div>' if evidence else "")
        + _judged(entry)
        + f'</td><td class="output">{_output(entry)}</td></tr>'
    )


def _judged(entry: Mapping[str, Any]) -> str:
    """What the judge replied, for an answer no rule could read (``--judge-url``)."""
    if not entry.get("judged"):
        return ""
    return f'<div class="evidence">judge replied “{_esc(entry.get("judge_output") or "")}”</div>'


def _table(results: Mapping[str, Mapping[str, Any]], thumbs: _Thumbnails) -> str:
    wrong = [e for e in results.values() if not e.get("is_correct")]
    if not wrong:
        return '<p class="muted">Every answer is right.</p>'
    shown = pick_rows(wrong, MAX_TABLE_ROWS)
    counts = Counter(str(e.get("outcome")) for e in wrong)
    categories = sorted({str(e.get("category") or "(none)") for e in wrong})
    outcome_options = "".join(
        f'<option value="{o}">{o} ({counts[o]})</option>' for o in NOT_RIGHT if counts[o]
    )
    category_options = "".join(f'<option value="{_esc(c)}">{_esc(c)}</option>' for c in categories)
    note = ""
    if len(shown) < len(wrong):
        note = (
            f'<p class="note">Showing {len(shown)} of {len(wrong)} answers that are not right '
            "(shared between outcomes); the results file has every one.</p>"
        )
    rows = "".join(_row(e, thumbs) for e in shown)
    return f"""{note}
<div class="filters">
  <label>outcome <select id="f-outcome"><option value="">all</option>{outcome_options}
  </select></label>
  <label>category <select id="f-category"><option value="">all</option>{category_options}
  </select></label>
  <label>text <input id="f-text" type="search" placeholder="qid, question, output…"></label>
  <span id="f-count" class="muted"></span>
</div>
<table id="answers">
<thead><tr><th>images</th><th>question</th><th>truth</th><th>answered</th><th>decided by</th>
<th>model output</th></tr></thead>
<tbody>{rows}</tbody>
</table>"""


def _panel(title: str, body: str, note: str = "") -> str:
    foot = f'<p class="muted small">{note}</p>' if note else ""
    return f'<section class="panel"><h2>{_esc(title)}</h2>{body}{foot}</section>'


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
    thumbs = _Thumbnails(roots)
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
            _chart(_accuracy_figure(categories, overall_f), "chart-category")
            if categories
            else empty,
        ),
        _panel(
            "Accuracy by source",
            _chart(_accuracy_figure(sources, overall_f), "chart-source") if sources else empty,
        ),
        _panel(
            "Answered letter against the true one",
            _chart(_confusion_figure(rows, columns, z), "chart-confusion") if rows else empty,
            circular_note,
        ),
        _panel(
            "How answers were read",
            _chart(_methods_figure(counts), "chart-methods") if counts else empty,
            "Questions per extraction method, by outcome.",
        ),
    ]
    return _PAGE.format(
        title=_esc(f"QA report: {model}"),
        model=_esc(model),
        plotly_js=_plotly_js(),
        css=_CSS,
        cards=_cards(metrics),
        facts=_facts(metrics, dataset_root),
        panels="".join(panels),
        table=_table(results, thumbs),
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
