"""The warnings and errors of vLLM, PyTorch and Python in a run's log, each distinct one once.

The digest reads the raw lines every process wrote to the log file: vLLM's own format (this
process's ``vllm`` logger writes to descriptor 1 like the engine processes do), PyTorch's C++
``[W...] Warning:`` lines and Python's ``file.py:12: SomeWarning: ...``. The same message
from three engine processes counts as one notice seen three times, so the terminal summary
names each problem once.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

#: Longest notice text shown on the terminal (the log file has the whole line).
MAX_NOTICE_CHARS = 200
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_VLLM_LINE = re.compile(
    r"^(?:\([^)]*\)\s+)?(?P<level>WARNING|ERROR|CRITICAL) \d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? "
    r"\[[^\]]*\] (?P<text>.+)$"
)
_TORCH_LINE = re.compile(r"^\[(?P<level>[WE])\d{4} [\d:.]+ [^\]]*\] (?:Warning: )?(?P<text>.+)$")
_PY_WARNING = re.compile(r"^\S+?:\d+: (?P<category>\w*Warning): (?P<text>.+)$")
_TORCH_LEVELS = {"W": "WARNING", "E": "ERROR"}


@dataclass
class Notice:
    """One distinct warning or error: who said it, how bad, what, how many times."""

    source: str  # vLLM, PyTorch, Python
    level: str
    text: str
    count: int = 1


def parse_line(line: str) -> Notice | None:
    """The notice in one raw log line, or None when it is not a warning/error we know."""
    line = _ANSI.sub("", line).strip()
    if match := _VLLM_LINE.match(line):
        return Notice("vLLM", match["level"], _short(match["text"]))
    if match := _TORCH_LINE.match(line):
        return Notice("PyTorch", _TORCH_LEVELS[match["level"]], _short(match["text"]))
    if match := _PY_WARNING.match(line):
        return Notice("Python", "WARNING", _short(f"{match['category']}: {match['text']}"))
    return None


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_NOTICE_CHARS else text[: MAX_NOTICE_CHARS - 3] + "..."


class LogDigest:
    """Distinct notices of a run; ``take_new()`` gives those not reported yet."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""
        self._notices: dict[tuple[str, str], Notice] = {}
        self._reported: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def add(self, notice: Notice) -> None:
        key = (notice.source, notice.text)
        with self._lock:
            seen = self._notices.get(key)
            if seen is None:
                self._notices[key] = notice
            else:
                seen.count += notice.count

    def scan(self) -> None:
        """Read what the log file gained since the last scan."""
        if self.path is None or not self.path.exists():
            return
        with self.path.open("rb") as fh:
            fh.seek(self._offset)
            data = fh.read()
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for raw in lines:
            notice = parse_line(raw.decode("utf-8", errors="replace"))
            if notice is not None:
                self.add(notice)

    def notices(self) -> list[Notice]:
        self.scan()
        with self._lock:
            return list(self._notices.values())

    def take_new(self) -> list[Notice]:
        """Notices not returned by an earlier call (with their counts so far)."""
        fresh = []
        for notice in self.notices():
            key = (notice.source, notice.text)
            if key not in self._reported:
                self._reported.add(key)
                fresh.append(notice)
        return fresh
