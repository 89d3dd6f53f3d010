"""Resume state from a records JSONL: what is done, what failed, what is left.

The JSONL is the source of truth. Reading it tolerates what a crash can leave behind:

* a torn last line (the process died mid-write): the file is cut back to its last complete line
  (with ``repair=True``) and the cut is logged; a last line that is complete JSON and lacks only
  its newline is kept and given one;
* an unparseable line in the middle (e.g. an unrepaired torn line that a later writer appended
  after, or bytes lost in a power cut): skipped and logged.

Rows are reduced to the last row per key: a row appended later supersedes earlier ones (this is
how a retried failure replaces its failed row), and read back as the task's typed row
(``vlmcap.rows``).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlmcap.rows import CaptionRow, Row
from vlmcap.sinks.disk_full import writing

logger = logging.getLogger(__name__)

#: One JSONL line as read: an object with a string ``key``.
JsonObject = dict[str, Any]

#: At most this many bad line numbers are named in the log (the count is always logged).
_MAX_LOGGED_BAD_LINES = 10


def parse_line(raw: bytes) -> JsonObject | None:
    """The row on one JSONL line, or ``None`` if it is not a JSON object with a string key."""
    try:
        row = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(row, dict) or not isinstance(row.get("key"), str):
        return None
    return row


def repair_tail(path: Path) -> int:
    """Make ``path`` end at a line boundary; returns the number of bytes cut (0: nothing to do).

    A last line that parses as a complete row but lacks its newline gets the newline instead
    (on a full disk: ``DiskFullError``).
    """
    try:
        fh = path.open("rb+")
    except FileNotFoundError:
        return 0
    with writing(path), fh:
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return 0
        # Find the start of the last line by scanning back in blocks.
        end = size
        start = 0
        block = 1 << 16
        pos = size
        while pos > 0:
            step = min(block, pos)
            pos -= step
            fh.seek(pos)
            chunk = fh.read(step)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                start = pos + newline + 1
                break
        fh.seek(start)
        tail = fh.read(end - start)
        if parse_line(tail) is not None:
            fh.seek(end)
            fh.write(b"\n")
            fh.flush()
            os.fsync(fh.fileno())
            logger.warning("%s: last line lacked its newline; added it", path)
            return 0
        fh.truncate(start)
        fh.flush()
        os.fsync(fh.fileno())
    logger.warning(
        "%s: cut a torn last line (%d bytes, from a crash mid-write); its item will be redone",
        path,
        end - start,
    )
    return end - start


@dataclass
class ReadStats:
    """What reading a records file found."""

    rows: int = 0
    bad_lines: list[int] = field(default_factory=list)  # 1-based line numbers
    cut_bytes: int = 0


def iter_rows(path: Path, stats: ReadStats | None = None) -> Iterator[JsonObject]:
    """Yield the parseable rows of ``path`` in file order (nothing if it does not exist).

    Unparseable lines (including an unrepaired torn last line) are counted in ``stats`` and
    skipped. The file is not modified.
    """
    stats = stats if stats is not None else ReadStats()
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        return
    with fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            row = parse_line(raw)
            if row is None:
                stats.bad_lines.append(number)
                continue
            stats.rows += 1
            yield row


def final_rows(path: Path, stats: ReadStats | None = None) -> dict[str, JsonObject]:
    """Last row per key of ``path``, in order of each key's first appearance."""
    rows: dict[str, JsonObject] = {}
    for row in iter_rows(path, stats):
        rows[row["key"]] = row
    return rows


def _log_bad_lines(path: Path, bad: list[int]) -> None:
    if not bad:
        return
    shown = ", ".join(str(n) for n in bad[:_MAX_LOGGED_BAD_LINES])
    extra = len(bad) - _MAX_LOGGED_BAD_LINES
    more = f" and {extra} more" if extra > 0 else ""
    logger.warning("%s: skipped %d unparseable line(s): %s%s", path, len(bad), shown, more)


@dataclass
class ResumeState:
    """Final state of every key in a records file, as typed rows of ``row_type``.

    ``ok`` holds keys whose last row has status ``ok``; ``failed`` those whose last row has any
    other status (with their ``error``).
    """

    ok: dict[str, Row] = field(default_factory=dict)
    failed: dict[str, Row] = field(default_factory=dict)
    stats: ReadStats = field(default_factory=ReadStats)
    row_type: type[Row] = CaptionRow

    @classmethod
    def load(
        cls,
        path: Path,
        *,
        repair: bool = True,
        model: str | None = None,
        style: str | None = None,
        row_type: type[Row] = CaptionRow,
    ) -> ResumeState:
        """Read ``path`` (missing: empty state). ``repair`` cuts a torn last line off the file.

        With ``model``/``style``, rows recording another ``model``/``prompt_style`` are ignored
        (several runs may share one records file); rows without those fields count.
        """
        stats = ReadStats()
        if repair:
            stats.cut_bytes = repair_tail(path)
        state = cls(stats=stats, row_type=row_type)
        for row in iter_rows(path, stats):
            if model is not None and row.get("model", model) != model:
                continue
            if style is not None and row.get("prompt_style", style) != style:
                continue
            state.apply(row)
        _log_bad_lines(path, stats.bad_lines)
        if state.ok or state.failed:
            logger.info(
                "%s: resuming with %d ok and %d failed item(s)",
                path,
                len(state.ok),
                len(state.failed),
            )
        return state

    def apply(self, obj: JsonObject | Row) -> None:
        """Record a row (a JSONL object or a typed row) as the latest state of its key."""
        row = obj if isinstance(obj, Row) else self.row_type.from_json(obj)
        if row.ok:
            self.failed.pop(row.key, None)
            self.ok[row.key] = row
        else:
            self.ok.pop(row.key, None)
            self.failed[row.key] = row

    def should_skip(self, key: str, retry_failed: bool = False) -> bool:
        """True for a key that is done: ok, or failed when failures are not retried."""
        if key in self.ok:
            return True
        return key in self.failed and not retry_failed

    def texts(self) -> dict[str, str]:
        """key -> output text of the ok rows (rows without text are left out)."""
        return {k: r.text for k, r in self.ok.items() if r.text is not None}

    def __contains__(self, key: object) -> bool:
        return key in self.ok or key in self.failed

    def __len__(self) -> int:
        return len(self.ok) + len(self.failed)
