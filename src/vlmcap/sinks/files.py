"""Atomic file writes and an append-only JSONL writer.

Two ways to never leave a half-written file behind, whatever instant the process dies at:

* whole-file outputs (caption maps, parquet, lock files) are written to a temporary file in the
  same folder, fsynced, and renamed over the target; the folder is fsynced after the rename so
  the new name survives a power cut too;
* the records JSONL is append-only: each row is one ``write`` of one complete line to a file
  opened with ``O_APPEND``, so a crash can tear at most the line being written, which
  :mod:`vlmcap.sinks.resume` repairs. A write that fails part-way without a crash (a full
  disk) is cut back off the file at once.

A full disk (or quota) raises :class:`~vlmcap.sinks.disk_full.DiskFullError` naming the file.
"""

from __future__ import annotations

import functools
import glob
import json
import logging
import os
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from vlmcap.sinks.disk_full import writing

logger = logging.getLogger(__name__)


@functools.cache
def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def new_file_mode(path: Path | None = None) -> int:
    """Permissions for a file replacing ``path``: its current mode if it exists, else the usual
    ``0o666 & ~umask`` (``mkstemp`` creates 0600 files, unreadable by the rest of a team)."""
    if path is not None:
        try:
            return stat.S_IMODE(path.stat().st_mode)
        except OSError:
            pass
    return 0o666 & ~_umask()


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new name in ``folder`` durable (no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on a folder; the rename itself is still atomic
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed to ``path``.

    For writers that want a file name (e.g. ``pyarrow.parquet.write_table``). On an exception the
    temporary file is removed and ``path`` is left untouched; a full disk met inside the block
    raises :class:`~vlmcap.sinks.disk_full.DiskFullError` naming ``path``.
    """
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, new_file_mode(path))
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            yield tmp
            with tmp.open("rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half
    (a full disk: ``DiskFullError``, and the old file stays)."""
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            os.fchmod(fd, new_file_mode(path))
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` so that readers see the old file or the new one."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented UTF-8 JSON, atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def remove_temp_files(path: Path, *, older_than_s: float = 0.0) -> int:
    """Delete temporary files that atomic writes of ``path`` left behind when a process died
    mid-write (``.<name>.*.tmp`` beside it, older than ``older_than_s``); returns the count.

    Only call this while no other process can be writing ``path`` (e.g. under the output lock).
    """
    limit = time.time() - older_than_s
    removed = 0
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            if tmp.stat().st_mtime <= limit:
                tmp.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    if removed:
        logger.info("removed %d leftover temporary file(s) of %s", removed, path)
    return removed


def json_line(row: dict[str, Any]) -> bytes:
    """One JSONL line (UTF-8, newline-terminated) for ``row``."""
    return (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")


def _ends_mid_line(path: Path) -> bool:
    """True when ``path`` is non-empty and its last byte is not a newline."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell() == 0:
                return False
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) != b"\n"
    except FileNotFoundError:
        return False


class JsonlWriter:
    """Appends one JSON object per line; each line reaches the file in one ``write`` call.

    A crash (even ``kill -9``) loses at most the line being written. The data is handed to the
    kernel on every line; ``fsync`` (which protects against power loss, and is slow) runs at most
    every ``fsync_every_s`` seconds (``None``: only on :meth:`sync` and :meth:`close`).

    A write that fails after part of its line reached the file (a full disk, a signal between
    two ``write`` calls) is cut back to the end of the previous line, so the file holds only
    complete lines; a full disk raises ``DiskFullError`` naming the file.

    If the file ends in a torn line (a crash of an earlier writer that nobody repaired), a
    newline is written first so that the new rows never merge with the fragment; readers then
    skip the fragment as one unparseable line.
    """

    def __init__(
        self,
        path: Path,
        *,
        fsync_every_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.fsync_every_s = fsync_every_s
        self._clock = clock
        torn = _ends_mid_line(path)
        self._new_file = not path.exists()
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        self._last_sync = clock()
        self._unsynced = False
        self._torn = False
        self.lines_written = 0
        if torn:
            logger.warning("%s ends in an incomplete line; starting a new line after it", path)
            try:
                self._write_all(b"\n")
            except BaseException:
                os.close(self._fd)
                self._fd = None
                raise

    @property
    def closed(self) -> bool:
        return self._fd is None

    def _write_all(self, data: bytes) -> None:
        fd = self._fd
        if fd is None:
            raise ValueError(f"write to closed JsonlWriter ({self.path})")
        view = memoryview(data)
        with writing(self.path):
            start = os.lseek(fd, 0, os.SEEK_END)  # O_APPEND: the line goes here
            try:
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                    self._unsynced = True
            except BaseException:
                if len(view) < len(data):
                    self._cut_back(fd, start)
                raise
        self._torn = False

    def _cut_back(self, fd: int, size: int) -> None:
        """Remove the part of a line that a failed write left after byte ``size``."""
        try:
            os.ftruncate(fd, size)
        except OSError as exc:
            self._torn = True  # part of the line stays: start the next one afresh
            logger.warning("%s: cannot cut back a partly written line: %s", self.path, exc)
        else:
            logger.debug("%s: a write failed part-way; its partial line was cut off", self.path)

    def write(self, row: dict[str, Any]) -> None:
        """Append ``row`` as one line; fsync when the last fsync is older than the interval."""
        line = json_line(row)
        self._write_all(b"\n" + line if self._torn else line)
        self.lines_written += 1
        if self.fsync_every_s is not None and self._clock() - self._last_sync >= self.fsync_every_s:
            self.sync()

    def sync(self) -> None:
        """Force the lines written so far to stable storage."""
        if self._fd is not None and self._unsynced:
            with writing(self.path):  # some file systems only report a full disk here
                os.fsync(self._fd)
            self._unsynced = False
            if self._new_file:
                fsync_dir(self.path.parent)
                self._new_file = False
        self._last_sync = self._clock()

    def close(self) -> None:
        if self._fd is None:
            return
        try:
            self.sync()
        finally:
            fd, self._fd = self._fd, None
            with writing(self.path):
                os.close(fd)

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
