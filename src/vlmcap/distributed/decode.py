"""The decode stage of a Ray job: load jobs in, entries out (Ray Data CPU tasks).

``task.load`` is the same as on one machine (``vlmcap.tasks``): a file decoded and sampled into
items, or a question's pictures opened. An input that cannot be loaded becomes its failed rows
here, so it never reaches an engine.
"""

from __future__ import annotations

import logging
import pickle
from typing import Any

from vlmcap.distributed.entries import DONE, ITEM, ROW, Batch, Entry, to_batch

logger = logging.getLogger(__name__)

#: Column of the first stage: a pickled load job (``task.plan``'s).
JOB_COLUMN = "job"


def decode_jobs(batch: Batch, task: Any) -> Batch:
    """Load every job of ``batch`` with ``task`` (a ``vlmcap.tasks.base.Task``)."""
    entries: list[Entry] = []
    for raw in batch[JOB_COLUMN]:
        job = pickle.loads(bytes(raw))  # written by this job's driver
        loaded = task.load(job)
        for reason in loaded.not_sent:
            logger.warning("%s", reason)
        skipped = len(loaded.not_sent)
        if loaded.error is not None:
            rows = task.failed_rows(loaded)
            for i, row in enumerate(rows):
                entries.append(Entry.of(loaded.key, len(rows), ROW, row, skipped if i == 0 else 0))
        elif not loaded.items:
            entries.append(Entry.of(loaded.key, 0, DONE, not_sent=skipped))
        else:
            size = len(loaded.items)
            for i, item in enumerate(loaded.items):
                entries.append(Entry.of(loaded.key, size, ITEM, item, skipped if i == 0 else 0))
    return to_batch(entries)
