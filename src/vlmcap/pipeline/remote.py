"""The pipeline's side of a backend that loads the inputs itself (``RemoteBackend``, e.g. Ray).

Entries come back in any order; each record becomes its row here (``task.row``: a QA answer is
read and scored, a judge asked, in this process), so rows are written by one writer whatever
the cluster's size. The run's ``Progress`` counts every input of the plan as inside from the
first entry on (the engines are up), each row as progress, and an input as finished with its
last row: the hang watchdog then reports a cluster that stopped sending rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from vlmcap.core.request import Completion
from vlmcap.core.stats import LoopStats
from vlmcap.distributed.entries import DONE, RECORD, ROW, Entry
from vlmcap.pipeline.backend import RemoteBackend
from vlmcap.rows import Row

#: Stage name the progress shows for an input on a remote backend.
REMOTE_STAGE = "remote"


class RemoteRun:
    """Turns a remote backend's entries into written rows and finished inputs."""

    def __init__(
        self,
        task: Any,
        write: Callable[[Row], None],
        on_unit_done: Callable[[str], None],
        on_load_error: Callable[[], None],
    ) -> None:
        self.task = task
        self.write = write
        self.on_unit_done = on_unit_done
        self.on_load_error = on_load_error
        self.not_sent = 0
        self._left: dict[str, int] = {}  # input key -> rows still to come
        self._tokens: dict[str, int] = {}  # input key -> output tokens of its rows so far
        self._rows = 0

    def run(self, backend: RemoteBackend, jobs: Sequence[Any], stats: LoopStats) -> None:
        progress = stats.progress
        started = False
        for entry in backend.run_jobs(self.task, jobs, stats):
            if not started:  # the cluster is up: every input of the plan is now inside
                for job in jobs:
                    key = self.task.job_key(job)
                    progress.submitted(_request_id(key), key, REMOTE_STAGE)
                started = True
            self._take(entry, stats)

    def _take(self, entry: Entry, stats: LoopStats) -> None:
        self.not_sent += entry.not_sent
        if entry.kind == DONE:
            self._finished(entry.unit, stats)
            return
        if entry.unit not in self._left:
            self._left[entry.unit] = entry.size
            if entry.kind == ROW:  # only an input that failed to load sends rows
                self.on_load_error()
        if entry.kind == RECORD:
            record = entry.value()
            row = self.task.row(record)
        elif entry.kind == ROW:
            row = entry.value()
        else:
            raise ValueError(f"unexpected entry kind {entry.kind!r} for {entry.unit}")
        self.write(row)
        self._rows += 1
        stats.progress.outputs_seen(self._rows)
        stats.progress.item_done(row.ok)
        self._tokens[entry.unit] = self._tokens.get(entry.unit, 0) + row.output_tokens
        self._left[entry.unit] -= 1
        if self._left[entry.unit] <= 0:
            self._finished(entry.unit, stats)

    def _finished(self, unit: str, stats: LoopStats) -> None:
        self._left.pop(unit, None)
        tokens = self._tokens.pop(unit, 0)
        stats.progress.finished(_request_id(unit), Completion(output_tokens=tokens))
        self.on_unit_done(unit)


def _request_id(unit: str) -> str:
    return f"input:{unit}"
