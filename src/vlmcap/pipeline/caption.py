"""Caption a dataset: the caption task (``vlmcap.tasks.caption``) run by the generic pipeline.

Flow trace::

    caption_files(files, backend, plugin, config, output_dir, run=...)
      open_store(output_dir, plugin, config, run)    # lock; repair + read records.jsonl
      run_task(CaptionTask(...), files, backend, store)   # vlmcap.pipeline.run
    -> RunSummary

Every input ends in exactly one row per unit (the file, or each window of a windowed clip):
``ok`` with its caption, or ``failed`` with the reason. A killed run resumes from the rows on
disk.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from vlmcap.core.progress import Progress
from vlmcap.media.inputs import MediaFile
from vlmcap.options.run import RunOptions
from vlmcap.pipeline.backend import AnyBackend
from vlmcap.pipeline.run import Callbacks, RunSummary, run_task
from vlmcap.rows import CaptionRow, Row
from vlmcap.sinks.store import RecordStore
from vlmcap.tasks.caption import CaptionTask, style_name

if TYPE_CHECKING:
    from vlmcap.config import VLMConfig
    from vlmcap.plugins.base import VLMPlugin

__all__ = ["RunOptions", "caption_files", "open_store", "style_name"]

logger = logging.getLogger(__name__)


def caption_files(
    files: Sequence[MediaFile],
    backend: AnyBackend,
    plugin: VLMPlugin,
    config: VLMConfig,
    output_dir: Path,
    *,
    run: RunOptions | None = None,
    store: RecordStore | None = None,
    on_row: Callable[[Row], None] | None = None,
    on_file_done: Callable[[str], None] | None = None,
    on_plan: Callable[[int, int], None] | None = None,
    live: Progress | None = None,
) -> RunSummary:
    """Caption ``files`` into ``output_dir``, resuming what an earlier run left.

    Callbacks (all on the calling thread): ``on_plan(files_to_do, files_done_before)`` once,
    ``on_row(row)`` per written row, ``on_file_done(key)`` per finished file. ``store``: an
    open store from ``open_store`` (the caller closes it); by default one is opened here.
    ``live``: the run's live progress, for a watchdog or monitor the caller runs.
    """
    run = run or RunOptions()
    task = CaptionTask(plugin, config, run.media)
    active = store if store is not None else open_store(output_dir, plugin, config, run)
    try:
        return run_task(
            task,
            files,
            backend,
            active,
            workers=run.workers,
            prefetch=run.prefetch,
            live=live,
            callbacks=Callbacks(on_plan=on_plan, on_row=on_row, on_unit_done=on_file_done),
        )
    finally:
        if store is None:
            active.close()


def open_store(
    output_dir: Path, plugin: VLMPlugin, config: VLMConfig, run: RunOptions
) -> RecordStore:
    """Lock ``output_dir`` and read what earlier runs left (raises ``LockedError``)."""
    return RecordStore(
        output_dir,
        plugin.variant,
        style_name(config),
        overwrite=run.overwrite,
        retry_failed=run.retry_failed,
        parquet=run.parquet,
        save_every_items=run.save_every_items,
        save_every_s=run.save_every_s,
        row_type=CaptionRow,
    ).open()
