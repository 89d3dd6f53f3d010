"""What ``vlmcap caption`` shows: a live progress bar, the end-of-run summary, a dry run."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from vlmcap.core.stats import LoopStats
from vlmcap.debug import terminal

if TYPE_CHECKING:
    from vlmcap.config import VLMConfig
    from vlmcap.media.inputs import MediaFile
    from vlmcap.pipeline.caption import RunOptions
    from vlmcap.pipeline.run import RunSummary
    from vlmcap.rows import Row

err = terminal.console(stderr=True)
out = terminal.console()

#: Captions printed in the end-of-run table at most (the files hold all of them).
SHOWN_ROWS = 50


class CaptionProgress:
    """Inputs bar (files, or questions) with rows (items, windows or passes), rows/s, output
    tokens/s, failures and ETA."""

    def __init__(self, files: int, verb: str = "captioning", unit: str = "files") -> None:
        self._progress = Progress(
            TextColumn(verb),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(unit + "  {task.fields[rows]} rows  {task.fields[rate]}"),
            TextColumn("[red]{task.fields[failed]} failed"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err,
        )
        self._task = self._progress.add_task("caption", total=files, rows=0, rate="", failed=0)
        self._rows = self._failed = self._tokens = 0
        self._start = time.monotonic()
        self.shown: list[tuple[str, str, str]] = []

    def __enter__(self) -> CaptionProgress:
        self._progress.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()

    def plan(self, todo: int, done_before: int) -> None:
        if done_before:
            err.print(f"resuming: {done_before} file(s) done by an earlier run, {todo} to do")
        self._progress.update(self._task, total=todo + done_before, completed=done_before)

    def row(self, row: Row) -> None:
        self._rows += 1
        self._tokens += row.output_tokens
        failed = not row.ok
        self._failed += failed
        secs = max(time.monotonic() - self._start, 1e-6)
        rate = f"{self._rows / secs:.2f} rows/s  {self._tokens / secs:.0f} tok/s"
        self._progress.update(self._task, rows=self._rows, rate=rate, failed=self._failed)
        if len(self.shown) < SHOWN_ROWS:
            text = escape(row.text or "") if not failed else f"[red]{escape(str(row.error))}[/red]"
            self.shown.append((escape(row.key), row.status, text))

    def file_done(self, key: str) -> None:
        self._progress.advance(self._task)


def print_summary(summary: RunSummary, shown: Sequence[tuple[str, str, str]]) -> None:
    if shown:
        table = Table("item", "status", "caption / error", title="captions (first rows)")
        for row in shown:
            table.add_row(*row)
        out.print(table)
    facts = Table("", "", show_header=False, title="summary")
    loop = summary.loop
    for name, value in (
        ("files", f"{summary.inputs} ({summary.inputs_done_before} done earlier)"),
        ("rows written", f"{summary.ok} ok, {summary.failed} failed"),
        ("files unreadable", str(summary.inputs_failed)),
        ("windows not sent", str(summary.not_sent)),
        ("truncated", str(summary.truncated)),
        ("tokens", f"{summary.prompt_tokens} prompt, {summary.output_tokens} output"),
        ("speed", f"{summary.rows_per_s:.2f} rows/s, {summary.tokens_per_s:.1f} tok/s"),
        (
            "busy",
            f"requests inside {loop.busy_fraction:.0%} of {loop.wall_s:.1f} s, "
            f"{loop.mean_inflight:.1f} on average (peak {loop.peak_inflight})",
        ),
        ("requests", _requests_line(loop)),
        ("wall time", f"{summary.seconds:.1f} s"),
    ):
        facts.add_row(name, value)
    out.print(facts)
    out.print(f"{summary.ok} ok, {summary.failed} failed")
    for name, path in summary.outputs.items():
        out.print(f"{name}: {path}")


def _requests_line(loop: LoopStats) -> str:
    line = f"{loop.requests} sent, {loop.replies} replies"
    if loop.engine_steps is not None:
        line += f", {loop.engine_steps} engine steps"
    return line


def print_dry_run(
    files: Sequence[MediaFile], output_dir: Path, config: VLMConfig, run: RunOptions
) -> None:
    """List the files a run would caption, and which an earlier run already finished."""
    from vlmcap.sinks.resume import ResumeState
    from vlmcap.sinks.store import RECORDS_NAME
    from vlmcap.tasks.caption import plan_files, style_name

    state = ResumeState()
    records = output_dir / RECORDS_NAME
    if records.exists() and not run.overwrite:
        state = ResumeState.load(
            records, repair=False, model=config.model, style=style_name(config)
        )
    windowed = run.media.window_s is not None
    plan = plan_files(files, state, lambda k: state.should_skip(k, run.retry_failed), windowed)
    for media, _ in plan.jobs:  # plain tab-separated lines: easy to pipe into other tools
        print(f"{media.kind}\t{media.key}")
    print(
        f"{len(plan.jobs)} file(s) to caption, {plan.done_before} already done, into {output_dir}"
    )
