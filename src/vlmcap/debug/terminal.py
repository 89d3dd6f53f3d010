"""The terminal, kept for vlmcap's own output while everything else goes to the run's log file.

vLLM's engine processes, PyTorch's C++ warnings and the libraries' prints write to file
descriptors 1 and 2, in this process and in every child. ``redirect_output(path)`` points
those descriptors at the log file (children inherit that) and keeps duplicates of the
originals; vlmcap's progress bars, summaries and log lines reach the terminal through
``stdout()`` / ``stderr()`` / ``console()``, which write to the originals while the redirect
lasts and to ``sys.stdout`` / ``sys.stderr`` otherwise::

    with redirect_output(run_dir / "logs" / "caption.log"):
        console(stderr=True).print("only this reaches the terminal")
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO, cast

from rich.console import Console

STDOUT_FD = 1
STDERR_FD = 2
#: Permissions of a new log file (the owner writes, others may read).
LOG_FILE_MODE = 0o644

# fd -> a text stream on a duplicate of the terminal's descriptor, while output is redirected.
_saved: dict[int, TextIO] = {}


def can_redirect() -> bool:
    """True when ``sys.stdout``/``sys.stderr`` are this process's own streams (an embedding
    that replaced them, such as a test runner, gets its output where it asked for it)."""
    return sys.stdout is sys.__stdout__ and sys.stderr is sys.__stderr__


def redirected() -> bool:
    """True while ``redirect_output`` holds descriptors 1 and 2."""
    return bool(_saved)


class TerminalStream(io.TextIOBase):
    """A text stream to the terminal's stdout or stderr, wherever descriptors 1/2 point now."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def target(self) -> TextIO:
        saved = _saved.get(self.fd)
        if saved is not None:
            return saved
        return sys.stdout if self.fd == STDOUT_FD else sys.stderr

    def write(self, text: str) -> int:
        return self.target().write(text)

    def flush(self) -> None:
        self.target().flush()

    def isatty(self) -> bool:
        return self.target().isatty()

    def fileno(self) -> int:
        return self.target().fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]  # TextIOBase declares it read-only
        return getattr(self.target(), "encoding", None) or "utf-8"

    def writable(self) -> bool:
        return True


def stdout() -> TerminalStream:
    return TerminalStream(STDOUT_FD)


def stderr() -> TerminalStream:
    return TerminalStream(STDERR_FD)


def console(*, stderr: bool = False, **kwargs: Any) -> Console:
    """A rich console on the terminal's stderr or stdout (see the module docstring)."""
    stream = TerminalStream(STDERR_FD if stderr else STDOUT_FD)
    return Console(file=cast("TextIO", stream), **kwargs)


def say(message: str, *, err: bool = True) -> None:
    """One plain line on the terminal (stderr by default)."""
    stream = stderr() if err else stdout()
    stream.write(message + "\n")
    stream.flush()


@contextlib.contextmanager
def redirect_output(path: Path) -> Iterator[Path]:
    """Descriptors 1 and 2 append to ``path`` inside the block (the terminal stays reachable
    through this module); restored on the way out, also when the block raises, so a traceback
    printed afterwards reaches the terminal."""
    if _saved:
        raise RuntimeError("output is already redirected")
    path.parent.mkdir(parents=True, exist_ok=True)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, LOG_FILE_MODE)
    originals = {fd: os.dup(fd) for fd in (STDOUT_FD, STDERR_FD)}
    try:
        for fd, copy in originals.items():
            _saved[fd] = os.fdopen(
                copy, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False
            )
            os.dup2(target, fd)
    finally:
        os.close(target)
    try:
        yield path
    finally:
        for stream in (sys.stdout, sys.stderr, *_saved.values()):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        for fd, copy in originals.items():
            os.dup2(copy, fd)
            _saved.pop(fd).close()
            os.close(copy)
