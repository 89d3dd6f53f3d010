"""The QA report page: content checked in the HTML, the command line, and a real render in
headless Chromium (Debian's package) checked on its screenshot and DOM."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import signal
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import psutil
import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.qa.fixtures_qa import BLUE, png
from vlmcap.cli.app import app
from vlmcap.qa import report_charts, report_table
from vlmcap.qa.report import build_report
from vlmcap.qa.report_charts import confusion
from vlmcap.qa.report_table import pick_rows
from vlmcap.qa.results import qa_metrics

MODEL = "tiny-test"
CHROMIUM = Path("/usr/bin/chromium")
#: Seconds one Chromium run may take before it is killed.
CHROMIUM_TIMEOUT_S = 20
#: A model output that would run as a script if it were not escaped.
EVIL_OUTPUT = '<script>alert("pwned")</script> the answer is B'
EVIL_CATEGORY = "shape <b>bold</b>"
#: Resource attributes whose value the browser would load.
LOADING_ATTRIBUTES = {"src", "href", "data", "poster", "srcset"}
#: The page's scripts: plotly.js, one per chart (four), the table filter.
PAGE_SCRIPTS = 6

runner = CliRunner()


def _entry(qid: str, outcome: str, **fields: Any) -> dict[str, Any]:
    """One question's results as ``vlmcap qa`` writes them (truth A of three choices)."""
    predicted = {"correct": "A", "wrong": "B"}.get(outcome)
    entry: dict[str, Any] = {
        "qid": qid,
        "question": f"Question {qid}: what colour is the square?",
        "choices": ["red", "blue", "green"],
        "gt_answer": "A",
        "gt_letter": "A",
        "predicted_letter": predicted,
        "model_output": f"The answer is {predicted}" if predicted else "I cannot tell.",
        "is_correct": outcome == "correct",
        "category": "colour",
        "source": "synthetic",
        "image_paths": ["images/red.png"],
        "num_images": 1,
        "status": "failed" if outcome == "failed" else "ok",
        "outcome": outcome,
        "error": None,
        "extraction_method": {"unparsed": "none", "refused": "refusal", "failed": None}.get(
            outcome, "letter"
        ),
        "extraction_evidence": predicted,
        "prompt_tokens": 90,
        "output_tokens": 5,
    }
    entry.update(fields)
    return entry


def make_results() -> dict[str, dict[str, Any]]:
    entries = [
        _entry("q1-correct", "correct"),
        _entry(
            "q2-wrong",
            "wrong",
            model_output=EVIL_OUTPUT,
            image_paths=["images/red.png", "images/blue.png"],
            num_images=2,
        ),
        _entry(
            "q3-unparsed",
            "unparsed",
            category=EVIL_CATEGORY,
            source="other",
            image_paths=["images/missing.png"],
        ),
        _entry("q4-refused", "refused", model_output="I will not answer that."),
        _entry("q5-failed", "failed", model_output=None, error="request timed out", image_paths=[]),
        _entry(
            "q6-correct",
            "correct",
            category=EVIL_CATEGORY,
            image_paths=["images/red.png", "images/blue.png"],
            num_images=2,
        ),
    ]
    return {e["qid"]: e for e in entries}


def write_run(tmp_path: Path) -> tuple[Path, Path]:
    """A run folder (OUT/qa/<model>) with its two files, and the dataset root with two PNGs."""
    root = tmp_path / "set"
    png(root / "images/red.png")
    png(root / "images/blue.png", BLUE)
    folder = tmp_path / "out/qa" / MODEL
    folder.mkdir(parents=True)
    results = make_results()
    metrics = qa_metrics(results, model=MODEL, dataset_path=str(root))
    (folder / f"{MODEL}_qa_results.json").write_text(json.dumps(results), encoding="utf-8")
    (folder / f"{MODEL}_qa_metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    return folder, root


class _Tags(HTMLParser):
    """Every start tag of a page with its attributes, and the text of table rows."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def of(self, tag: str) -> list[dict[str, str]]:
        return [attrs for name, attrs in self.tags if name == tag]


def tags_of(page: str) -> _Tags:
    parser = _Tags()
    parser.feed(page)
    return parser


def unescape_json(text: str) -> str:
    """Undo the ``\\uXXXX`` escapes plotly writes in its figure JSON."""
    return re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m[1], 16)), text)


@pytest.fixture
def page(tmp_path: Path) -> str:
    folder, root = write_run(tmp_path)
    results = json.loads((folder / f"{MODEL}_qa_results.json").read_text(encoding="utf-8"))
    metrics = json.loads((folder / f"{MODEL}_qa_metrics.json").read_text(encoding="utf-8"))
    return build_report(results, metrics, root)


def test_the_page_shows_the_accuracy_numbers(page):
    assert '<div class="value">33.3%</div>' in page  # 2 of 6
    assert "2 of 6" in page
    charts = unescape_json(page)
    assert "25.0% (1/4)" in charts  # category colour: q1 right of q1, q2, q4, q5
    assert "50.0% (1/2)" in charts  # category shape: q6 right of q3, q6
    assert "40.0% (2/5)" in charts  # source synthetic
    assert "overall 33.3%" in charts
    for name, value in (("wrong", 1), ("unparsed", 1), ("refused", 1), ("failed", 1)):
        assert f'data-metric="{name}"><div class="value">{value}</div>' in page


def test_every_answer_that_is_not_right_has_a_row(page):
    rows = {a["data-outcome"] for a in tags_of(page).of("tr") if "data-outcome" in a}
    assert rows == {"wrong", "unparsed", "refused", "failed"}
    for qid in ("q2-wrong", "q3-unparsed", "q4-refused", "q5-failed"):
        assert f'<div class="qid">{qid}' in page
    assert '<div class="qid">q1-correct' not in page
    assert "request timed out" in page


def test_text_from_the_data_is_escaped(page):
    assert EVIL_OUTPUT not in page
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;" in page
    assert "<b>bold</b>" not in page  # neither in the table nor in chart labels
    assert "shape &lt;b&gt;bold&lt;/b&gt;" in page
    assert "<b>bold</b>" not in unescape_json(page)  # chart labels too (plotly reads tags)
    assert len(tags_of(page).of("script")) == PAGE_SCRIPTS


def test_the_page_loads_nothing_from_elsewhere(page):
    tags = tags_of(page)
    assert not tags.of("link")
    assert not any(a.get("src") for a in tags.of("script"))  # plotly.js is inline
    for tag, attrs in tags.tags:
        for key in LOADING_ATTRIBUTES & attrs.keys():
            value = attrs[key].strip().lower()
            assert not value.startswith(("http:", "https:", "//")), (tag, key, value)
    assert "Plotly.newPlot" in page and "window.Plotly" in page


def test_thumbnails_are_small_jpeg_data_urls_and_a_missing_image_a_placeholder(page):
    images = tags_of(page).of("img")
    assert len(images) == 3  # q2 (two) and q4, not q6 (right); q3's image is missing
    for attrs in images:
        prefix, data = attrs["src"].split(",", 1)
        assert prefix == "data:image/jpeg;base64"
        with Image.open(io.BytesIO(base64.b64decode(data))) as thumb:
            assert thumb.format == "JPEG"
            assert max(thumb.size) <= report_table.THUMB_PX
    assert '<span class="thumb missing" title="images/missing.png">' in page


def test_judged_answers_are_counted_and_say_what_the_judge_replied():
    results = make_results()
    results["q2-wrong"].update(judged=True, judge_output="B", extraction_method="judge")
    page = build_report(results, qa_metrics(results, model=MODEL), None)
    assert 'data-metric="judged"><div class="value">1 (0 right)</div>' in page
    assert 'data-metric="rule-only accuracy"><div class="value">33.3%</div>' in page
    assert "judge replied “B”" in page


def test_confusion_counts_letters_and_the_answers_without_one():
    rows, columns, z = confusion(make_results().values())
    assert rows == ["A", "B", "C"]
    assert columns == ["A", "B", "C", "unparsed", "refused", "failed"]
    assert z[0] == [2, 1, 0, 1, 1, 1]
    assert z[1] == z[2] == [0] * 6


def test_circular_runs_are_placed_by_their_first_rotation():
    entry = _entry(
        "c1",
        "wrong",
        predicted_letter="A",
        passes=[
            {"rotation": 0, "predicted_letter": "A", "outcome": "correct"},
            {"rotation": 1, "predicted_letter": None, "outcome": "unparsed"},
        ],
    )
    rows, columns, z = confusion([entry])
    assert z[rows.index("A")][columns.index("A")] == 1


def test_pick_rows_keeps_rare_outcomes_and_the_order():
    entries = [{"qid": f"w{i:03}", "outcome": "wrong"} for i in range(500)]
    entries[250:250] = [{"qid": f"u{i}", "outcome": "unparsed"} for i in range(5)]
    picked = pick_rows(entries, 300)
    assert len(picked) == 300
    assert sum(e["outcome"] == "unparsed" for e in picked) == 5
    assert [entries.index(e) for e in picked] == sorted(entries.index(e) for e in picked)
    assert pick_rows(entries[:10], 300) == entries[:10]


def test_a_large_run_shows_a_capped_table_with_a_note(monkeypatch):
    monkeypatch.setattr(report_table, "MAX_TABLE_ROWS", 2)
    results = make_results()
    capped = build_report(results, qa_metrics(results, model=MODEL), None)
    rows = [a for a in tags_of(capped).of("tr") if "data-outcome" in a]
    assert len(rows) == 2
    assert "Showing 2 of 4 answers that are not right" in capped
    assert 'class="thumb missing"' in capped  # no dataset root: placeholders, no crash


def test_cli_writes_the_page_beside_the_run(tmp_path):
    folder, _ = write_run(tmp_path)
    result = runner.invoke(app, ["qa-report", str(folder)], terminal_width=200)
    assert result.exit_code == 0, result.output
    written = folder / f"{MODEL}_qa_report.html"
    assert str(written) in result.output
    text = written.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "q3-unparsed" in text
    assert len(tags_of(text).of("img")) == 3


def test_cli_takes_an_output_path_and_a_dataset_root(tmp_path):
    folder, _ = write_run(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    png(elsewhere / "images/missing.png")
    out = tmp_path / "pages/report.html"
    result = runner.invoke(
        app, ["qa-report", str(folder), "-o", str(out), "--dataset-root", str(elsewhere)]
    )
    assert result.exit_code == 0, result.output
    assert len(tags_of(out.read_text(encoding="utf-8")).of("img")) == 1  # only missing.png there
    assert not (folder / f"{MODEL}_qa_report.html").exists()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda folder: None, "no QA results in"),
        (lambda folder: (folder / f"{MODEL}_qa_results.json").write_text("{}"), "no metrics"),
        (
            lambda folder: [
                (folder / f"{MODEL}_qa_results.json").write_text("{not json"),
                (folder / f"{MODEL}_qa_metrics.json").write_text("{}"),
            ],
            "cannot read",
        ),
    ],
    ids=["empty", "no-metrics", "bad-json"],
)
def test_cli_exits_2_for_a_folder_without_a_readable_run(tmp_path, setup, message):
    folder = tmp_path / "qa" / MODEL
    folder.mkdir(parents=True)
    setup(folder)
    result = runner.invoke(app, ["qa-report", str(folder)], terminal_width=300)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


def test_cli_points_at_the_runs_below_an_output_folder(tmp_path):
    folder, _ = write_run(tmp_path)
    result = runner.invoke(app, ["qa-report", str(tmp_path / "out")], terminal_width=300)
    assert result.exit_code == 2
    assert str(folder) in " ".join(result.output.split())


# ---------------------------------------------------------------------------------------------
# A real render


def _chromium_or_skip() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing in CI: .ci/run installs Debian's chromium")
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium)")


def _run_chromium(chromium: Path, home: Path, *args: str) -> str:
    """Run headless Chromium once, with ``home`` as its HOME and profile; its stdout. Killed,
    with every process it started, after ``CHROMIUM_TIMEOUT_S`` or on any error."""
    home.mkdir(parents=True, exist_ok=True)
    command = [
        str(chromium),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={home / 'profile'}",
        *args,
    ]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        # Its crash handler starts a session of its own; it keeps its files under HOME.
        env={**os.environ, "HOME": str(home)},
        text=True,
    )
    try:
        out, _ = proc.communicate(timeout=CHROMIUM_TIMEOUT_S)
    finally:
        _stop_chromium(proc, home)
    assert proc.returncode == 0, f"chromium exited {proc.returncode}"
    return out


def _ours(home: Path) -> list[psutil.Process]:
    """Chromium processes of one run: those whose command line names its own HOME folder
    (the profile, the crash handler's database)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if any(str(home) in arg for arg in proc.info["cmdline"] or []):
            found.append(proc)
    return found


def _stop_chromium(proc: subprocess.Popen[str], home: Path) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # its own session: helpers it left behind
    left = _ours(home)
    for p in left:
        p.kill()
    psutil.wait_procs(left, timeout=5)


def test_the_page_renders_with_its_charts_in_headless_chromium(tmp_path):
    chromium = _chromium_or_skip()
    folder, _ = write_run(tmp_path)
    assert runner.invoke(app, ["qa-report", str(folder)]).exit_code == 0
    url = (folder / f"{MODEL}_qa_report.html").resolve().as_uri()
    shot = tmp_path / "page.png"
    started = time.monotonic()
    _run_chromium(
        chromium, tmp_path / "chromium-1", f"--screenshot={shot}", "--window-size=1200,1600", url
    )
    dom = _run_chromium(
        chromium,
        tmp_path / "chromium-2",
        "--dump-dom",
        "--virtual-time-budget=5000",
        "--window-size=1200,1600",
        url,
    )
    assert time.monotonic() - started < 2 * CHROMIUM_TIMEOUT_S
    assert not _ours(tmp_path / "chromium-1") and not _ours(tmp_path / "chromium-2")

    # Plotly drew every chart: each chart div holds its SVG.
    drawn = {
        part.split('"', 1)[0]: 'class="main-svg"' in part for part in dom.split('id="chart-')[1:]
    }
    charts = ("category", "source", "confusion", "methods")
    assert drawn == dict.fromkeys(charts, True), f"charts drawn by plotly: {drawn}"
    assert dom.count('class="main-svg"') >= 4
    assert "4 of 4 shown" in dom  # the filter script ran over the table
    assert "<b>bold</b>" not in dom  # the escaped label stayed text in the charts too
    assert "<script>alert" not in dom

    with Image.open(shot) as image:
        rgb = image.convert("RGB")
    assert rgb.size == (1200, 1600)
    colours = rgb.getcolors(maxcolors=1_000_000) or []
    assert len(colours) > 200, "the page looks blank"
    white = sum(n for n, c in colours if min(c) > 245)
    assert white < 0.9 * rgb.width * rgb.height
    # The accuracy bars are drawn in the "correct" green: a bar's worth of its pixels.
    green = tuple(int(report_charts.OUTCOME_COLOURS["correct"][i : i + 2], 16) for i in (1, 3, 5))
    bar_pixels = sum(
        n for n, c in colours if max(abs(a - b) for a, b in zip(c, green, strict=True)) < 12
    )
    assert bar_pixels > 5000, f"only {bar_pixels} pixels of the bars' green"
