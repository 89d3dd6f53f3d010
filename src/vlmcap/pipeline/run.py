"""Run a task over a dataset: inputs -> decode threads -> backend loop -> resumable output store.

Flow trace::

    run_task(task, units, backend, store, run=...)
      task.plan(units, store.state, store.should_skip)   # resume: what is done, what is left
      Prefetcher(task.load)                      # decode threads, bounded look-ahead
      ItemFeed.poll(block)                       # items as they are decoded; an input that
                                                 # fails to load becomes a failed row at once
      backend.run(feed, stats)                   # the loop driver over a transport
      task.row(record) -> store.write(row)       # one typed row per item, appended
    -> RunSummary

A ``RemoteBackend`` (Ray) loads the inputs itself: the plan's jobs go to it, and its records
and rows come back to the same writer (``vlmcap.pipeline.remote``).

Every input ends in exactly one row per item (the file, or each window of a windowed clip; a
question): ``ok`` with its text, or ``failed`` with the reason. A killed run resumes from the
rows on disk. Nothing here knows which task it runs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlmcap.core.progress import Progress
from vlmcap.core.stats import LoopStats
from vlmcap.pipeline.backend import AnyBackend, RemoteBackend
from vlmcap.pipeline.feed import ItemFeed
from vlmcap.pipeline.prefetch import Prefetcher
from vlmcap.rows import Row
from vlmcap.sinks.store import RecordStore
from vlmcap.tasks.base import Loaded

logger = logging.getLogger(__name__)


@dataclass
class RunSummary:
    """What one run did; ``inputs`` are files for captioning, questions for QA."""

    inputs: int = 0  # inputs this run looked at
    inputs_done_before: int = 0  # skipped: finished by an earlier run
    inputs_failed: int = 0  # could not be loaded
    not_sent: int = 0  # items an input produced but could not send (too few frames)
    skipped_keys: int = 0  # keys the store skipped as done (files and windows)
    ok: int = 0
    failed: int = 0
    truncated: int = 0
    prompt_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0
    loop: LoopStats = field(default_factory=LoopStats)
    outputs: dict[str, Path] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return self.ok + self.failed

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.output_tokens / self.seconds if self.seconds > 0 else 0.0

    def add(self, row: Row) -> None:
        self.ok += row.ok
        self.failed += not row.ok
        self.truncated += bool(row.ok and row.truncated)
        self.prompt_tokens += row.prompt_tokens
        self.output_tokens += row.output_tokens


@dataclass
class Callbacks:
    """Progress hooks, all called on the calling thread."""

    on_plan: Callable[[int, int], None] | None = None  # (inputs to do, done before), once
    on_row: Callable[[Row], None] | None = None  # every written row
    on_unit_done: Callable[[str], None] | None = None  # an input's last row is out


def run_task(
    task: Any,
    units: Sequence[Any],
    backend: AnyBackend,
    store: RecordStore,
    *,
    workers: int,
    prefetch: int,
    callbacks: Callbacks | None = None,
    live: Progress | None = None,
) -> RunSummary:
    """Run ``task`` over ``units`` through ``backend`` into the open ``store``.

    ``task`` follows ``vlmcap.tasks.base.Task`` (with a ``plan(units, state, should_skip)``).
    ``store`` stays open (the caller closes it, which flushes everything). ``live``: the
    progress the loop updates (others may watch it), a fresh one by default.
    """
    hooks = callbacks or Callbacks()
    summary = RunSummary(inputs=len(units))
    if live is not None:
        summary.loop.progress = live
    start = time.time()
    plan = task.plan(units, store.state, store.should_skip)
    summary.inputs_done_before = plan.done_before
    if hooks.on_plan is not None:
        hooks.on_plan(len(plan.jobs), plan.done_before)

    def write(row: Row) -> None:
        store.write(row)
        summary.add(row)
        if not row.ok:
            logger.warning("%s failed: %s", row.key, row.error)
        if hooks.on_row is not None:
            hooks.on_row(row)

    def unit_done(key: str) -> None:
        if hooks.on_unit_done is not None:
            hooks.on_unit_done(key)

    def load_error(loaded: Loaded[Any]) -> None:
        summary.inputs_failed += 1
        for row in task.failed_rows(loaded):
            write(row)
        unit_done(loaded.key)

    if isinstance(backend, RemoteBackend):
        from vlmcap.pipeline.remote import RemoteRun

        def failed_to_load() -> None:
            summary.inputs_failed += 1

        remote = RemoteRun(task, write, unit_done, failed_to_load)
        remote.run(backend, plan.jobs, summary.loop)
        summary.not_sent = remote.not_sent
        return _finish(summary, store, start)
    with Prefetcher(plan.jobs, task.load, workers=workers, depth=prefetch) as prefetcher:
        feed = ItemFeed(prefetcher, load_error, unit_done)
        for record in backend.run(feed, summary.loop):
            row = task.row(record)
            record.item = None  # release the media as soon as possible
            write(row)
            feed.row_written(record.key)
        summary.not_sent = feed.not_sent
    return _finish(summary, store, start)


def _finish(summary: RunSummary, store: RecordStore, start: float) -> RunSummary:
    summary.outputs = store.outputs
    summary.skipped_keys = store.summary.skipped
    summary.seconds = time.time() - start
    return summary
