"""``vlmcap qa-report OUT/qa/<model>``: one self-contained HTML page of a QA run.

Reads the results and metrics files ``vlmcap qa`` wrote in the folder and writes the page
(``vlmcap.qa.report``) beside them, or where ``-o`` says, atomically. Thumbnails come from the
images under ``--dataset-root`` (default: the dataset folder the metrics file names), then from
the folder embedded images were decoded into (``OUT/qa_images``).

Exit status: 0 the page was written, 2 no readable QA run in the folder.
"""

from __future__ import annotations

from pathlib import Path

import typer

from vlmcap.cli.errors import usage_error


def qa_report(
    folder: Path = typer.Argument(
        ..., help="A QA run's folder: OUT/qa/<model> (as `vlmcap qa -o OUT` writes)."
    ),
    output: Path | None = typer.Option(
        None, "-o", "--output", help="The page to write (default: FOLDER/<model>_qa_report.html)."
    ),
    dataset_root: Path | None = typer.Option(
        None,
        "--dataset-root",
        help="Folder the question set's image paths are relative to (default: the metrics "
        "file's dataset_path).",
    ),
) -> None:
    """Write one HTML page of a QA run that opens offline: accuracy per category and source,
    the confusion of answered against true letters, how answers were read, and a filterable
    table of every answer that is not right, with thumbnails.

    Exit status: 0 the page was written, 2 no readable QA run in FOLDER.
    """
    from vlmcap.qa.question_images import EMBEDDED_DIR_NAME
    from vlmcap.qa.report import ReportError, build_report, find_run, load_run
    from vlmcap.sinks.files import atomic_write_text

    try:
        run = find_run(folder)
        results, metrics = load_run(run)
    except ReportError as exc:
        usage_error(str(exc))
    given_root = metrics.get("dataset_path")
    root = dataset_root or (Path(given_root) if isinstance(given_root, str) else None)
    # vlmcap qa -o OUT decodes embedded images into OUT/qa_images; FOLDER is OUT/qa/<model>.
    embedded = folder.resolve().parent.parent / EMBEDDED_DIR_NAME
    page = build_report(results, metrics, root, image_dirs=[embedded])
    target = output or run.report_path
    atomic_write_text(target, page)
    size_mb = len(page.encode("utf-8")) / 1e6
    typer.echo(f"report: {target} ({size_mb:.1f} MB)")
