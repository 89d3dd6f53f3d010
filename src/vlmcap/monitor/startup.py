"""A slow start-up says what it waits for: ``with StartupWatch("loading the engine"): ...``.

Loading a model can take minutes (a download, a slow disk, an engine process that never comes
up), and vLLM may print nothing meanwhile. While the block runs, a thread logs one WARNING
every ``every_s`` seconds with the time spent and where the main thread is waiting, e.g.::

    still loading the engine after 120 s; waiting in vllm/v1/engine/utils.py:1431
    wait_for_engine_startup <- vllm/v1/engine/core_client.py:682 __init__ <- ...
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
from pathlib import Path
from types import TracebackType

logger = logging.getLogger(__name__)

#: Seconds between two reports of a start-up still under way.
STARTUP_REPORT_S = 60.0
#: Innermost frames of the main thread named in a report.
FRAMES_SHOWN = 3


def where_main_waits(frames: int = FRAMES_SHOWN) -> str:
    """The main thread's innermost ``frames`` frames, innermost first, on one line."""
    main = threading.main_thread().ident
    frame = sys._current_frames().get(main) if main is not None else None
    if frame is None:
        return "(main thread not found)"
    stack = traceback.extract_stack(frame)[-frames:]
    return " <- ".join(
        f"{_short(entry.filename)}:{entry.lineno} {entry.name}" for entry in reversed(stack)
    )


def _short(path: str) -> str:
    """``vllm/v1/engine/utils.py`` rather than the whole site-packages path."""
    parts = Path(path).parts
    for anchor in ("site-packages", "src"):
        if anchor in parts:
            return "/".join(parts[parts.index(anchor) + 1 :])
    return path


class StartupWatch:
    """Reports every ``every_s`` seconds while the ``with`` block (a start-up) runs."""

    def __init__(self, what: str, every_s: float = STARTUP_REPORT_S) -> None:
        if every_s <= 0:
            raise ValueError(f"report interval must be > 0 seconds, got {every_s}")
        self.what = what
        self.every_s = every_s
        self.reports = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0

    def __enter__(self) -> StartupWatch:
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="vlmcap-startup", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.reports:
            logger.info("%s took %.0f s", self.what, time.monotonic() - self._started)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.reports += 1
            logger.warning(
                "still %s after %.0f s; waiting in %s",
                self.what,
                time.monotonic() - self._started,
                where_main_waits(),
            )
