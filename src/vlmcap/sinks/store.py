"""The output store of a run: lock, resume, records JSONL, text map, parquet.

The store is the same for every task: ``row_type`` (``vlmcap.rows``) says what a row holds and
which field is the map's text (``caption`` for captioning); ``map_dir`` names the map's folder.

Files in ``output_dir`` (``<model>``/``<style>`` are the run's model and prompt style)::

    .vlmcap.lock                                 while a job writes here (see lock.py)
    records.jsonl                                every record, appended as it finishes
    captions/<model>/<model>_<style>.json        {key: caption}, ok records only, sorted
    captions/<model>/<model>_<style>.parquet     final record per key (with parquet=True)

``records.jsonl`` is the source of truth; the map and the parquet file are rebuilt from it.
On a full disk (``vlmcap.sinks.disk_full``) a write raises ``DiskFullError`` naming the file;
``records.jsonl`` keeps only complete lines, and closing the store afterwards writes nothing
more (map and parquet stay at their last complete versions) and releases the lock. Runs
of several models or prompt styles may share one output folder (one at a time: the lock): each
run resumes from, and ``overwrite`` removes, only the rows recording its own model and style.

Flow of one run::

    with RecordStore(out, model, style) as store:   # lock; repair + load records.jsonl
        for item in items:
            if store.should_skip(item.key):         # done earlier (or failed, unless retried)
                continue
            store.write(row)                        # append line; map saved every N / T s
    # close: fsync records, save map, write parquet, release the lock
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from vlmcap.rows import CaptionRow, Row
from vlmcap.sinks.caption_map import CAPTIONS_DIR, CaptionMapWriter, caption_map_path
from vlmcap.sinks.disk_full import DiskFullError
from vlmcap.sinks.files import JsonlWriter, atomic_path, fsync_dir, remove_temp_files
from vlmcap.sinks.lock import OutputLock
from vlmcap.sinks.resume import ResumeState, parse_line, repair_tail

logger = logging.getLogger(__name__)

RECORDS_NAME = "records.jsonl"
STATUSES = ("ok", "failed")
#: Temporary files of lock attempts older than this are leftovers of a killed process.
LOCK_TEMP_AGE_S = 60.0


class DuplicateRecordError(RuntimeError):
    """A key was written twice in one run (a bug in the caller)."""


@dataclass
class StoreSummary:
    """Counts of one run. ``ok``/``failed``: rows written by this run; ``skipped``: keys the run
    skipped because earlier runs had done them; ``resumed_*``: state found on disk at open."""

    ok: int = 0
    failed: int = 0
    skipped: int = 0
    resumed_ok: int = 0
    resumed_failed: int = 0
    bad_lines: int = 0  # unparseable lines skipped in records.jsonl
    repaired_bytes: int = 0  # bytes of a torn last line cut off at open

    @property
    def written(self) -> int:
        return self.ok + self.failed


def _check_name(kind: str, value: str) -> None:
    if not value or value in (".", "..") or "/" in value or "\\" in value or "\0" in value:
        raise ValueError(f"{kind} {value!r} cannot be used in a file name")


class RecordStore:
    """Writes the records of one (model, prompt style) run into ``output_dir``; resumable.

    Use as a context manager (or call :meth:`open` and :meth:`close`). ``write`` may be called
    from several threads.
    """

    def __init__(
        self,
        output_dir: Path,
        model: str,
        style: str,
        *,
        overwrite: bool = False,
        retry_failed: bool = False,
        parquet: bool = False,
        save_every_items: int = 100,
        save_every_s: float = 30.0,
        fsync_every_s: float = 10.0,
        command: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        row_type: type[Row] = CaptionRow,
        map_dir: str = CAPTIONS_DIR,
        records_name: str = RECORDS_NAME,
    ) -> None:
        _check_name("model", model)
        _check_name("prompt style", style)
        self.output_dir = Path(output_dir)
        self.model = model
        self.style = style
        self.overwrite = overwrite
        self.retry_failed = retry_failed
        self.parquet = parquet
        self.save_every_items = save_every_items
        self.save_every_s = save_every_s
        self.fsync_every_s = fsync_every_s
        self._clock = clock
        self.row_type = row_type
        self.map_dir = map_dir
        self.records_path = self.output_dir / records_name
        self.map_path = caption_map_path(self.output_dir, model, style, map_dir)
        self.parquet_path = self.map_path.with_suffix(".parquet")
        self.summary = StoreSummary()
        self.state = ResumeState(row_type=row_type)
        self._lock = OutputLock(self.output_dir, command=command)
        self._mutex = threading.Lock()
        self._writer: JsonlWriter | None = None
        self._map: CaptionMapWriter | None = None
        self._written: set[str] = set()
        self._skipped: set[str] = set()
        self._write_parquet = parquet
        self._closed = False
        self.disk_full: DiskFullError | None = None  # the first write that found no room

    @property
    def outputs(self) -> dict[str, Path]:
        """The files this run writes: ``records``, ``captions`` and (if enabled) ``parquet``."""
        paths = {"records": self.records_path, self.map_dir: self.map_path}
        if self._write_parquet:
            paths["parquet"] = self.parquet_path
        return paths

    @property
    def is_open(self) -> bool:
        return self._writer is not None

    # -- open / close ---------------------------------------------------------------------

    def open(self) -> RecordStore:
        if self._writer is not None or self._closed:
            raise RuntimeError("a RecordStore is opened once")
        if self.parquet and importlib.util.find_spec("pyarrow") is None:
            raise RuntimeError("parquet output needs pyarrow: pip install pyarrow")
        with self._noting_disk_full():
            self._lock.acquire()
        try:
            for path in (self.records_path, self.map_path, self.parquet_path):
                remove_temp_files(path)  # left by a crash mid-save; nobody else writes here
            remove_temp_files(self._lock.path, older_than_s=LOCK_TEMP_AGE_S)
            if self.overwrite:
                self._remove_previous()
            self.state = ResumeState.load(
                self.records_path, model=self.model, style=self.style, row_type=self.row_type
            )
            self.summary.resumed_ok = len(self.state.ok)
            self.summary.resumed_failed = len(self.state.failed)
            self.summary.bad_lines = len(self.state.stats.bad_lines)
            self.summary.repaired_bytes = self.state.stats.cut_bytes
            self._write_parquet = self.parquet or self.parquet_path.exists()
            self._map = CaptionMapWriter(
                self.map_path,
                self.state.texts(),
                save_every_items=self.save_every_items,
                save_every_s=self.save_every_s,
                before_save=self._sync_records,
                clock=self._clock,
            )
            with self._noting_disk_full():
                self._map.save()  # the map on disk matches records.jsonl from the start
                self._writer = JsonlWriter(
                    self.records_path, fsync_every_s=self.fsync_every_s, clock=self._clock
                )
        except BaseException:
            self._lock.release()
            raise
        return self

    @contextlib.contextmanager
    def _noting_disk_full(self) -> Iterator[None]:
        """Keep the first ``DiskFullError`` raised inside (then raised on) in ``disk_full``."""
        try:
            yield
        except DiskFullError as exc:
            if self.disk_full is None:
                self.disk_full = exc
            raise

    def _sync_records(self) -> None:
        """fsync records.jsonl before a map save: the map on disk never runs ahead of it."""
        if self._writer is not None:
            self._writer.sync()

    def _remove_previous(self) -> None:
        """Delete this run's earlier outputs; rows of other models/styles stay in the JSONL."""
        self.map_path.unlink(missing_ok=True)
        self.parquet_path.unlink(missing_ok=True)
        if not self.records_path.exists():
            return
        repair_tail(self.records_path)
        kept = dropped = 0
        with (
            atomic_path(self.records_path) as tmp,
            self.records_path.open("rb") as src,
            tmp.open("wb") as dst,
        ):
            for raw in src:
                row = parse_line(raw)
                if row is not None and self._owns(row):
                    dropped += 1
                    continue
                dst.write(raw)
                kept += 1
        if kept == 0:
            self.records_path.unlink()
            fsync_dir(self.records_path.parent)
        logger.info(
            "overwrite: removed %d earlier record(s) of %s/%s from %s (%d other line(s) kept)",
            dropped,
            self.model,
            self.style,
            self.records_path,
            kept,
        )

    def _owns(self, row: Mapping[str, Any]) -> bool:
        return (
            row.get("model", self.model) == self.model
            and row.get("prompt_style", self.style) == self.style
        )

    def flush(self) -> None:
        """Make everything written so far durable: fsync records, save the map, write parquet."""
        with self._mutex, self._noting_disk_full():
            _, cmap = self._require_open()
            cmap.flush()  # fsyncs the records first
            self._save_parquet()

    def close(self) -> None:
        """Flush everything and release the lock (idempotent). After a full disk only the
        records file is closed: nothing more is written, the lock is released."""
        if self._closed:
            return
        self._closed = True
        try:
            with self._mutex, self._noting_disk_full():
                writer = self._writer
                if writer is not None:
                    writer.close()
                if self.disk_full is not None:
                    logger.debug("%s: not saved again after a full disk", self.map_path)
                else:
                    if self._map is not None:
                        self._map.close()
                    if writer is not None:
                        self._save_parquet()
        finally:
            self._writer = None
            self._lock.release()
        logger.info(
            "%s: %d ok, %d failed this run; %d skipped (done earlier)",
            self.records_path,
            self.summary.ok,
            self.summary.failed,
            self.summary.skipped,
        )

    def _save_parquet(self) -> None:
        if not self._write_parquet:
            return
        if not self.parquet and importlib.util.find_spec("pyarrow") is None:
            logger.warning("%s is out of date (pyarrow is not installed)", self.parquet_path)
            return
        from vlmcap.sinks.parquet import write_parquet_from_jsonl

        write_parquet_from_jsonl(
            self.records_path,
            self.parquet_path,
            model=self.model,
            style=self.style,
            row_type=self.row_type,
        )

    def __enter__(self) -> RecordStore:
        return self.open()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- per item -------------------------------------------------------------------------

    def _require_open(self) -> tuple[JsonlWriter, CaptionMapWriter]:
        if self._writer is None or self._map is None:
            state = "closed" if self._closed else "not opened (use it in a with block)"
            raise RuntimeError(f"RecordStore for {self.output_dir} is {state}")
        return self._writer, self._map

    def should_skip(self, key: str) -> bool:
        """True when ``key`` needs no work: written by this run, ok earlier, or failed earlier
        and failures are not retried (``retry_failed=False``)."""
        with self._mutex:
            if key in self._written:
                return True
            if self.state.should_skip(key, self.retry_failed):
                if key not in self._skipped:
                    self._skipped.add(key)
                    self.summary.skipped += 1
                return True
            return False

    def write(self, row: Row | Mapping[str, Any]) -> None:
        """Append one finished row (``status`` "ok" with its text, or "failed"): a typed row
        of the store's ``row_type`` or its JSONL object.

        ``model``/``prompt_style`` are filled in when missing. Raises ``ValueError`` for a
        malformed row and :class:`DuplicateRecordError` for a key already written in this run.
        """
        full = self._validate(row.to_json() if isinstance(row, Row) else row)
        key: str = full["key"]
        with self._mutex, self._noting_disk_full():
            writer, cmap = self._require_open()
            if key in self._written:
                raise DuplicateRecordError(
                    f"record {key!r} was already written in this run; each key must be "
                    f"written once (check should_skip and the input list for duplicates)"
                )
            writer.write(full)
            self._written.add(key)
            if full["status"] == "ok":
                self.summary.ok += 1
                cmap.add(key, full[self.row_type.text_field])  # saves when due, fsync first
            else:
                self.summary.failed += 1
                cmap.discard(key)  # an earlier ok row of this key is superseded

    def _validate(self, row: Mapping[str, Any]) -> dict[str, Any]:
        key = row.get("key")
        if not isinstance(key, str) or not key:
            raise ValueError(f"record has no key (a non-empty string): {dict(row)!r:.200}")
        status = row.get("status")
        if status not in STATUSES:
            raise ValueError(f"record {key!r}: status must be one of {STATUSES}, got {status!r}")
        text_field = self.row_type.text_field
        if status == "ok" and not isinstance(row.get(text_field), str):
            raise ValueError(f"record {key!r}: an ok record needs a {text_field} string")
        for field, expected in (("model", self.model), ("prompt_style", self.style)):
            value = row.get(field)
            if value is not None and value != expected:
                raise ValueError(
                    f"record {key!r}: {field} {value!r} differs from this store's {expected!r}"
                )
        full = {"key": key, "model": self.model, "prompt_style": self.style}
        full.update({k: v for k, v in row.items() if v is not None or k not in full})
        return full
