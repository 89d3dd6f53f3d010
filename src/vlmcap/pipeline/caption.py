"""Caption a dataset: files -> decode threads -> engine loop -> resumable output store.

Flow trace::

    caption_files(files, backend, plugin, config, output_dir, run=...)
      RecordStore(output_dir, model, style)      # lock; repair + read records.jsonl (resume)
      plan(files)                                # skip what is done; window keys to leave out
      Prefetcher(load_file)                      # decode threads, bounded look-ahead
      ItemFeed.poll(block)                       # items as they are decoded; a file that
                                                 # fails to load becomes a failed row at once
      backend.run(feed, stats)                   # offline engine loop, or a server client
      store.write(row)                           # one row per item or window, appended
    -> CaptionSummary

Every input ends in exactly one row per unit (the file, or each window of a windowed clip):
``ok`` with its caption, or ``failed`` with the reason. A killed run resumes from the rows
on disk.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlmcap.engine.stats import LoopStats
from vlmcap.media.inputs import MediaFile
from vlmcap.pipeline.backend import CaptionBackend
from vlmcap.pipeline.load import LoadResult, MediaOptions, load_file
from vlmcap.pipeline.prefetch import Prefetcher
from vlmcap.records import CaptionItem, CaptionRecord, Status
from vlmcap.sinks.resume import ResumeState
from vlmcap.sinks.store import RecordStore

if TYPE_CHECKING:
    from vlmcap.config import VLMConfig
    from vlmcap.plugins.base import VLMPlugin

logger = logging.getLogger(__name__)

Row = dict[str, Any]


@dataclass(frozen=True)
class RunOptions:
    """Everything about a caption run besides the model config: media, outputs, decoding."""

    media: MediaOptions = field(default_factory=MediaOptions)
    overwrite: bool = False
    retry_failed: bool = False
    parquet: bool = False
    save_every_items: int = 100
    save_every_s: float = 30.0
    workers: int = 4  # decode threads
    prefetch: int = 16  # decoded files waiting for the engine, at most


@dataclass
class CaptionSummary:
    files: int = 0  # files this run looked at
    files_done_before: int = 0  # skipped: finished by an earlier run
    files_failed: int = 0  # could not be decoded
    windows_not_sent: int = 0  # too few frames
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


def style_name(config: VLMConfig) -> str:
    """The prompt style named in output file names: the variant, or ``custom``."""
    return "custom" if config.prompt_text is not None else config.prompt_style


def plan(
    files: Sequence[MediaFile], state: ResumeState, retry_failed: bool, windowed: bool
) -> tuple[list[tuple[MediaFile, frozenset[str]]], int]:
    """(files still to do with the window keys to leave out, number of files already done)."""
    by_path: dict[str, list[Row]] = {}
    if windowed:
        for row in (*state.ok.values(), *state.failed.values()):
            if "window_count" in row and isinstance(row.get("path"), str):
                by_path.setdefault(row["path"], []).append(row)
    todo: list[tuple[MediaFile, frozenset[str]]] = []
    done = 0
    for media in files:
        if state.should_skip(media.key, retry_failed):
            done += 1
            continue
        rows = by_path.get(media.key, [])
        skip = frozenset(r["key"] for r in rows if state.should_skip(r["key"], retry_failed))
        if rows and len(skip) >= int(rows[0]["window_count"]):
            done += 1
            continue
        todo.append((media, skip))
    return todo, done


class ItemFeed:
    """The engine loop's item source over the decode threads (a ``PollingSource``).

    Hands out decoded items; a file that failed to decode is passed to ``on_load_error`` as
    soon as its result arrives, and ``on_file_done`` fires once all of a file's rows are out.
    """

    def __init__(
        self,
        prefetcher: Prefetcher[Any, LoadResult],
        on_load_error: Callable[[LoadResult], None],
        on_file_done: Callable[[str], None],
    ) -> None:
        self._prefetcher = prefetcher
        self._on_load_error = on_load_error
        self._on_file_done = on_file_done
        self._ready: deque[CaptionItem] = deque()
        self.remaining: dict[str, int] = {}  # file key -> rows not yet written
        self.windows_not_sent = 0

    @property
    def exhausted(self) -> bool:
        return not self._ready and self._prefetcher.exhausted

    def poll(self, block: bool) -> CaptionItem | None:
        while not self._ready:
            result = self._prefetcher.poll(block)
            if result is None:
                return None
            self._take(result)
        return self._ready.popleft()

    def __iter__(self) -> ItemFeed:
        return self

    def __next__(self) -> CaptionItem:
        item = self.poll(block=True)
        if item is None:
            raise StopIteration
        return item

    def _take(self, result: LoadResult) -> None:
        for reason in result.skipped_windows:
            logger.warning("%s", reason)
        self.windows_not_sent += len(result.skipped_windows)
        if result.error is not None:
            self._on_load_error(result)
        elif not result.items:  # every window was done by an earlier run
            self._on_file_done(result.file.key)
        else:
            self.remaining[result.file.key] = len(result.items)
            self._ready.extend(result.items)

    def record_written(self, path: str) -> None:
        """Count one row of file ``path`` as written; fire ``on_file_done`` after its last."""
        left = self.remaining.get(path, 1) - 1
        if left > 0:
            self.remaining[path] = left
        else:
            self.remaining.pop(path, None)
            self._on_file_done(path)


def record_row(record: CaptionRecord, meta: dict[str, Any]) -> Row:
    """The JSONL row of one finished record: the record's fields plus the item's metadata."""
    row: Row = record.to_dict()
    row.update({k: v for k, v in meta.items() if k not in row})
    return row


def caption_files(
    files: Sequence[MediaFile],
    backend: CaptionBackend,
    plugin: VLMPlugin,
    config: VLMConfig,
    output_dir: Path,
    *,
    run: RunOptions | None = None,
    store: RecordStore | None = None,
    on_row: Callable[[Row], None] | None = None,
    on_file_done: Callable[[str], None] | None = None,
    on_plan: Callable[[int, int], None] | None = None,
) -> CaptionSummary:
    """Caption ``files`` into ``output_dir``, resuming what an earlier run left.

    Callbacks (all on the calling thread): ``on_plan(files_to_do, files_done_before)`` once,
    ``on_row(row)`` per written row, ``on_file_done(key)`` per finished file. ``store``: an
    open store from ``open_store`` (the caller closes it); by default one is opened here.
    """
    run = run or RunOptions()
    summary = CaptionSummary(files=len(files))
    prompts = {
        kind: plugin.prompt_for(kind, config.prompt_style, config.prompt_text)
        for kind in ("image", "video")
    }
    start = time.time()
    own_store = store is None
    active = store if store is not None else open_store(output_dir, plugin, config, run)
    try:
        todo, summary.files_done_before = plan(
            files, active.state, run.retry_failed, run.media.window_s is not None
        )
        if on_plan is not None:
            on_plan(len(todo), summary.files_done_before)

        def write(row: Row) -> None:
            active.write(row)
            ok = row["status"] == Status.OK
            summary.ok += ok
            summary.failed += not ok
            summary.truncated += bool(ok and row.get("truncated"))
            summary.prompt_tokens += int(row.get("prompt_tokens") or 0)
            summary.output_tokens += int(row.get("output_tokens") or 0)
            if not ok:
                logger.warning("%s failed: %s", row["key"], row.get("error"))
            if on_row is not None:
                on_row(row)

        def file_finished(key: str) -> None:
            if on_file_done is not None:
                on_file_done(key)

        def load_error(result: LoadResult) -> None:
            summary.files_failed += 1
            record = CaptionRecord(key=result.file.key, request_id="-")
            record.fail(result.error or "cannot load", time.time())
            write(record_row(record, {"path": result.file.key, "kind": result.file.kind}))
            file_finished(result.file.key)

        load = functools.partial(_load, run.media, prompts)
        with Prefetcher(todo, load, workers=run.workers, depth=run.prefetch) as prefetcher:
            feed = ItemFeed(prefetcher, load_error, file_finished)
            for record in backend.run(feed, summary.loop):
                meta = record.item.meta if record.item is not None else {}
                record.item = None  # release the media as soon as possible
                write(record_row(record, meta))
                feed.record_written(meta.get("path", record.key))
            summary.windows_not_sent = feed.windows_not_sent
        summary.outputs = active.outputs
    finally:
        if own_store:
            active.close()
    summary.seconds = time.time() - start
    return summary


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
    ).open()


def _load(
    opts: MediaOptions, prompts: dict[str, str], job: tuple[MediaFile, frozenset[str]]
) -> LoadResult:
    media, skip = job
    return load_file(media, opts, prompts, skip)
