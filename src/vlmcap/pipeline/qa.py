"""Answer a question set: the QA task (``vlmcap.tasks.qa``) run by the generic pipeline.

Flow trace::

    answer_questions(questions, backend, plugin, config, output_dir, run=...)
      open_qa_store(...)                        # lock; repair + read the QA rows (resume)
      run_task(QATask(...), questions, backend, store)   # vlmcap.pipeline.run
      write_qa_outputs(rows on disk)            # results + metrics JSON, also after a failure
    -> RunSummary

Outputs, under ``OUT/qa/<model>/``: ``<model>_qa_records.jsonl`` (every row, appended as it
finishes: the source of truth for resume), ``<model>_qa.json`` (qid -> model output),
``<model>_qa_results.json`` and ``<model>_qa_metrics.json`` (``vlmcap.qa.results``), and the
rows as parquet with ``--parquet``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlmcap.core.progress import Progress
from vlmcap.options.run import RunOptions
from vlmcap.pipeline.backend import AnyBackend
from vlmcap.pipeline.run import Callbacks, RunSummary, run_task
from vlmcap.qa.dataset import Question
from vlmcap.qa.results import qa_dir, write_qa_outputs
from vlmcap.rows import QARow, Row
from vlmcap.sinks.disk_full import DiskFullError
from vlmcap.sinks.parquet import final_rows_for
from vlmcap.sinks.store import RecordStore
from vlmcap.tasks.qa import QATask, qa_style

if TYPE_CHECKING:
    from vlmcap.config import VLMConfig
    from vlmcap.plugins.base import VLMPlugin
    from vlmcap.qa.judge import Judge

logger = logging.getLogger(__name__)

#: Folder of QA outputs under the output folder (``OUT/qa/<model>/``).
QA_DIR = "qa"


def records_name(model: str) -> str:
    """The rows JSONL of a QA run, relative to the output folder."""
    return f"{QA_DIR}/{model}/{model}_qa_records.jsonl"


def open_qa_store(
    output_dir: Path, plugin: VLMPlugin, run: RunOptions, *, circular: bool = False
) -> RecordStore:
    """Lock ``output_dir`` and read the QA rows earlier runs left (raises ``LockedError``)."""
    return RecordStore(
        output_dir,
        plugin.variant,
        qa_style(circular),
        overwrite=run.overwrite,
        retry_failed=run.retry_failed,
        parquet=run.parquet,
        save_every_items=run.save_every_items,
        save_every_s=run.save_every_s,
        row_type=QARow,
        map_dir=QA_DIR,
        records_name=records_name(plugin.variant),
    ).open()


def answer_questions(
    questions: Sequence[Question],
    backend: AnyBackend,
    plugin: VLMPlugin,
    config: VLMConfig,
    output_dir: Path,
    *,
    run: RunOptions | None = None,
    store: RecordStore | None = None,
    circular: bool = False,
    judge: Judge | None = None,
    meta: dict[str, Any] | None = None,
    on_row: Callable[[Row], None] | None = None,
    on_plan: Callable[[int, int], None] | None = None,
    on_question_done: Callable[[str], None] | None = None,
    live: Progress | None = None,
) -> RunSummary:
    """Answer ``questions`` into ``output_dir``, resuming what an earlier run left, and write
    the results and metrics files (also when the run stops early: they hold what is done;
    not after a full disk, which names the rows file that could not be written).

    ``meta``: ``questions_path``, ``dataset_path``, ``server_url`` for the metrics file.
    """
    run = run or RunOptions()
    task = QATask(plugin, config, circular=circular, judge=judge)
    active = (
        store if store is not None else open_qa_store(output_dir, plugin, run, circular=circular)
    )
    disk_full = False
    try:
        return run_task(
            task,
            questions,
            backend,
            active,
            workers=run.workers,
            prefetch=run.prefetch,
            live=live,
            callbacks=Callbacks(on_plan=on_plan, on_row=on_row, on_unit_done=on_question_done),
        )
    except DiskFullError:
        disk_full = True  # the summaries are rebuilt from the rows by the rerun
        raise
    finally:
        if store is None:
            active.close()
        if not disk_full:
            write_results(
                active,
                plugin.variant,
                output_dir,
                total_questions=len(questions),
                circular=circular,
                meta=meta or {},
            )


def write_results(
    store: RecordStore,
    model: str,
    output_dir: Path,
    *,
    total_questions: int,
    circular: bool,
    meta: dict[str, Any],
) -> dict[str, Path]:
    """Rebuild the results and metrics files from the rows on disk; their paths."""
    rows = [
        QARow.from_json(obj)
        for obj in final_rows_for(store.records_path, model=model, style=store.style)
    ]
    results, metrics = write_qa_outputs(
        rows,
        output_dir,
        model,
        circular=circular,
        total_questions=total_questions,
        questions_path=meta.get("questions_path"),
        dataset_path=meta.get("dataset_path"),
        server_url=meta.get("server_url"),
    )
    logger.debug("QA results in %s", qa_dir(output_dir, model))
    return {"results": results, "metrics": metrics}
