"""The QA report's table of every answer that is not right, with thumbnails of its images.

Each row shows the images, the question and its choices (the true one and the picked one
marked), the truth, the prediction (every rotation of a circular run), the rule that decided,
what the judge replied where one was asked, and the model's output (cut past
``MAX_OUTPUT_CHARS``). Filters above the table (outcome, category, free text) work through
the page's inline script, on the ``data-`` attributes of the rows.

The table is capped (``MAX_TABLE_ROWS``, shared fairly between outcomes, see ``pick_rows``) so
that a large run keeps the page small; it says how many were left out. Thumbnails are small
JPEG data URLs, each image encoded once, so the page loads nothing from anywhere. Every text
taken from the data is escaped (``esc``): model outputs may hold HTML.
"""

from __future__ import annotations

import base64
import html
import io
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from vlmcap.qa.report_charts import NOT_RIGHT, first_pass, letter

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


def esc(value: object) -> str:
    """``value`` as HTML text (``None`` as nothing), quotes escaped for attributes too."""
    return html.escape("" if value is None else str(value), quote=True)


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
            url, name = self.url(key), esc(key)
            if url is None:
                parts.append(
                    f'<span class="thumb missing" title="{name}">no image<br>{name}</span>'
                )
            else:
                parts.append(f'<img class="thumb" src="{url}" alt="{name}" title="{name}">')
        if len(keys) > MAX_THUMBS_PER_ROW:
            parts.append(f'<span class="more">+{len(keys) - MAX_THUMBS_PER_ROW}</span>')
        return "".join(parts) or '<span class="muted">no images</span>'


def _choices(entry: Mapping[str, Any]) -> str:
    truth, predicted = entry.get("gt_letter"), first_pass(entry)[0]
    items = []
    for i, text in enumerate(entry.get("choices") or []):
        mark = letter(i)
        cls = " ".join(
            c for c, on in (("truth", mark == truth), ("picked", mark == predicted)) if on
        )
        items.append(f'<li class="{cls}"><b>{esc(mark)}.</b> {esc(text)}</li>')
    return f'<ol class="choices">{"".join(items)}</ol>' if items else ""


def _option_text(entry: Mapping[str, Any], mark: str | None) -> str:
    choices = entry.get("choices") or []
    for i, text in enumerate(choices):
        if letter(i) == mark:
            return f' <span class="muted">{esc(text)}</span>'
    return ""


def _prediction(entry: Mapping[str, Any]) -> str:
    outcome = str(entry.get("outcome") or "")
    predicted = entry.get("predicted_letter")
    shown = esc(predicted) if predicted else "—"
    out = [
        f'<span class="badge {esc(outcome)}">{esc(outcome)}</span> '
        f"<b>{shown}</b>{_option_text(entry, predicted)}"
    ]
    passes = entry.get("passes") or []
    if len(passes) > 1:
        rows = "".join(
            f"<li>rotation {esc(p.get('rotation'))}: {esc(p.get('predicted_letter') or '—')} "
            f"({esc(p.get('outcome'))})</li>"
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
    err = f'<div class="error">{esc(error)}</div>' if error else ""
    body = f"<pre>{esc(text)}</pre>" if text else '<span class="muted">no output</span>'
    return err + body + cut


def _row(entry: Mapping[str, Any], thumbs: _Thumbnails) -> str:
    outcome = str(entry.get("outcome") or "")
    category = str(entry.get("category") or "(none)")
    source = entry.get("source")
    method = entry.get("extraction_method") or "(failed)"
    evidence = entry.get("extraction_evidence")
    truth = entry.get("gt_letter")
    where = esc(category) + (f" · {esc(source)}" if source else "")
    return (
        f'<tr data-outcome="{esc(outcome)}" data-category="{esc(category)}">'
        f'<td class="images">{thumbs.cell([str(k) for k in entry.get("image_paths") or []])}</td>'
        f'<td class="question"><div class="qid">{esc(entry.get("qid"))}'
        f' <span class="muted">{where}</span></div>'
        f'<div class="text">{esc(entry.get("question"))}</div>{_choices(entry)}</td>'
        f"<td><b>{esc(truth)}</b>{_option_text(entry, truth)}</td>"
        f"<td>{_prediction(entry)}</td>"
        f"<td><code>{esc(method)}</code>"
        + (f'<div class="evidence">“{esc(evidence)}”</div>' if evidence else "")
        + _judged(entry)
        + f'</td><td class="output">{_output(entry)}</td></tr>'
    )


def _judged(entry: Mapping[str, Any]) -> str:
    """What the judge replied, for an answer no rule could read (``--judge-url``)."""
    if not entry.get("judged"):
        return ""
    return f'<div class="evidence">judge replied “{esc(entry.get("judge_output") or "")}”</div>'


def answers_table(results: Mapping[str, Mapping[str, Any]], image_roots: Sequence[Path]) -> str:
    """The filterable table of the answers in ``results`` that are not right; images are
    looked up under ``image_roots``, in order."""
    thumbs = _Thumbnails(image_roots)
    wrong = [e for e in results.values() if not e.get("is_correct")]
    if not wrong:
        return '<p class="muted">Every answer is right.</p>'
    shown = pick_rows(wrong, MAX_TABLE_ROWS)
    counts = Counter(str(e.get("outcome")) for e in wrong)
    categories = sorted({str(e.get("category") or "(none)") for e in wrong})
    outcome_options = "".join(
        f'<option value="{o}">{o} ({counts[o]})</option>' for o in NOT_RIGHT if counts[o]
    )
    category_options = "".join(f'<option value="{esc(c)}">{esc(c)}</option>' for c in categories)
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
