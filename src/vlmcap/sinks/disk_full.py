"""A full disk while a job writes: one error type, one message, no traceback from the logs.

When the file system under an output runs out of space (``ENOSPC``) or the user's quota is used
up (``EDQUOT``), the writers of this package raise :class:`DiskFullError`, which names the file
that could not be written; its text is *the* message the user sees (``vlmcap.cli.job`` prints
it on one line and exits with ``DISK_FULL_STATUS``). What was written before stays intact:

* ``records.jsonl``: a line the disk had room for only in part is cut back off the file
  (``JsonlWriter``), so every line in it is a complete row; a rerun resumes after the last one;
* the caption map, the parquet file, the QA results and the lock file are written whole to a
  temporary file first (then renamed, or linked for the lock): on a full disk the temporary
  file is removed and the previous version stays;
* after a full disk the store writes nothing more on close (the map and parquet keep their
  last complete versions, rebuilt from ``records.jsonl`` by the rerun) and releases the lock.

Log files (the run log under ``OUTPUT_DIR/logs``, ``--log-file``) often share the output's
disk and may be the first to fill. ``logging`` reports a failed write by printing a traceback
for every record, and the unwritten text stays buffered, so closing the handler later raises.
:class:`LogGuard` changes that for the job's file handlers: a record that does not fit is
dropped silently with the text buffered before it, the file is reopened for the next record
(which is written once there is room again), and the first such failure is kept. A lost log
line alone does not stop the job, since the rows can still be saved, but the job reports it
once at its end, like a full output disk (the message names the log file). Any other logging
error still gets logging's usual report.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType

#: ``errno`` values that mean "no room for this write": disk full, quota exceeded.
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
#: Loggers whose file handlers :class:`LogGuard` covers ("" is the root logger).
GUARDED_LOGGERS = ("vlmcap", "vllm", "")

_REASONS = {
    errno.ENOSPC: "no space left on device (the disk is full)",
    errno.EDQUOT: "no space left on device (the disk quota is used up)",
}


def is_disk_full(exc: BaseException | None) -> bool:
    """True for an ``OSError`` that says the file system (or the quota) has no room left."""
    return isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS


class DiskFullError(OSError):
    """A write failed for lack of space; ``path`` is the file (``None``: not known)."""

    def __init__(self, path: Path | str | None, code: int = errno.ENOSPC) -> None:
        super().__init__(code, os.strerror(code), None if path is None else str(path))
        self.path = None if path is None else Path(path)

    def __str__(self) -> str:
        target = str(self.path) if self.path is not None else "an output file"
        reason = _REASONS.get(self.errno or errno.ENOSPC, _REASONS[errno.ENOSPC])
        return (
            f"cannot write {target}: {reason}. Free some space there, then rerun the same "
            f"command to resume: the rows written so far are kept"
        )

    def __reduce__(self) -> tuple[type[DiskFullError], tuple[Path | None, int]]:
        return type(self), (self.path, self.errno or errno.ENOSPC)


def as_disk_full(exc: BaseException) -> DiskFullError | None:
    """``exc`` as a :class:`DiskFullError` (named after its ``filename``), or ``None`` when it
    is not about a full disk."""
    if isinstance(exc, DiskFullError):
        return exc
    if not isinstance(exc, OSError) or not is_disk_full(exc):
        return None
    name = exc.filename if isinstance(exc.filename, str | Path) else None
    error = DiskFullError(name, exc.errno or errno.ENOSPC)
    error.__cause__ = exc
    return error


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    """Inside this block, an ``OSError`` for a full disk becomes :class:`DiskFullError` naming
    ``path`` (other errors pass unchanged)."""
    try:
        yield
    except DiskFullError:
        raise
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        raise DiskFullError(path, exc.errno or errno.ENOSPC) from exc


class LogGuard:
    """While active, the file handlers of ``loggers`` drop what a full disk cannot take,
    without a traceback; :attr:`failure` is the first such failure (see the module docstring).

    Covers the handlers attached when it starts (a handler added later to another of these
    loggers, e.g. ``--log-file`` shared with vLLM's logger, is the same object). Only the
    disk-full case changes: any other error goes to the handler's own ``handleError``.
    """

    def __init__(self, loggers: Iterable[str] = GUARDED_LOGGERS) -> None:
        self._loggers = tuple(loggers)
        self._guarded: list[logging.FileHandler] = []
        self.failure: DiskFullError | None = None

    def __enter__(self) -> LogGuard:
        for name in self._loggers:
            for handler in logging.getLogger(name).handlers:
                if isinstance(handler, logging.FileHandler) and handler not in self._guarded:
                    # An instance attribute in front of the class's method; removed on exit.
                    vars(handler)["handleError"] = self._trap(handler)
                    self._guarded.append(handler)
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        for handler in self._guarded:
            vars(handler).pop("handleError", None)  # the class's method again
        self._guarded.clear()

    def _trap(self, handler: logging.FileHandler) -> Callable[[logging.LogRecord], None]:
        original = handler.handleError

        def handle_error(record: logging.LogRecord) -> None:
            error = sys.exc_info()[1]
            if not isinstance(error, OSError) or not is_disk_full(error):
                original(record)
                return
            if self.failure is None:
                self.failure = DiskFullError(handler.baseFilename, error.errno or errno.ENOSPC)
            # Logging from here would come back to this handler: the failure is only kept.
            stream, handler.stream = handler.stream, None  # reopened for the next record
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()  # drops the unwritten text: its final flush fails too

        return handle_error
