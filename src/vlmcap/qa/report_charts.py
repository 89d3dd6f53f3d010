"""The charts of the QA report: what each one counts, and the plotly figure that shows it.

Accuracy per category and per source (bars, with the overall accuracy as a line), the
confusion of answered against true letters (a heatmap whose last columns are the answers
that named no letter: unparsed, refused and, when any, failed), and how answers were read
(extraction method by outcome, stacked bars). The counting is pure (``confusion``,
``method_counts``) so that it can be checked without plotly; the outcome names, their colours
and the letters of options are shared with the table of answers (``vlmcap.qa.report_table``).

Every chart label taken from the data is escaped: plotly reads a few HTML tags in labels.
Each chart becomes a ``div`` and the script that draws it; plotly.js itself (``plotly_js``)
is inlined once in the page's head, so the page opens offline.
"""

from __future__ import annotations

import functools
import html
import string
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

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


# ---------------------------------------------------------------------------------------------
# What each chart counts (pure)


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


def accuracy_figure(groups: Mapping[str, Mapping[str, Any]], overall: float | None) -> Any:
    """Accuracy of each group (category or source) of the metrics file, and ``overall``."""
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


def confusion_figure(rows: list[str], columns: list[str], z: list[list[int]]) -> Any:
    """The heatmap of ``confusion``'s counts."""
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


def methods_figure(counts: Mapping[str, Mapping[str, int]]) -> Any:
    """``method_counts`` as bars of outcomes stacked per extraction method."""
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


def chart_html(fig: Any, div_id: str) -> str:
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
def plotly_js() -> str:
    """The plotly.js library, to inline once in the page's head."""
    from plotly.offline import get_plotlyjs

    js: str = get_plotlyjs()
    return js
