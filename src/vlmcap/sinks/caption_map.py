"""The caption map ``OUT/captions/<model>/<model>_<style>.json``: ``{key: caption}``, sorted.

This is the simple file that caption scripts in this field write and downstream tools read. It
holds ok captions only. It is a *view* of the records JSONL, rewritten atomically (whole file,
temp + rename) every ``save_every_items`` new captions or ``save_every_s`` seconds, whichever
comes first, and always on :meth:`CaptionMapWriter.flush` / :meth:`~CaptionMapWriter.close`. A
crash between a JSONL append and the next map save loses nothing: on resume the map is rebuilt
from the JSONL's ok rows.

Rewriting a large map is not free (100,000 captions is tens of MB of JSON), so saves are also
spaced by at least ``max_save_fraction``: a save that took 0.3 s is not repeated within 3 s (at
the default 10 %), whatever the item count says.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType

from vlmcap.sinks.files import atomic_write_json

logger = logging.getLogger(__name__)


#: Folder of the text maps of a caption run (a task may name its own, e.g. ``answers``).
CAPTIONS_DIR = "captions"


def caption_map_path(output_dir: Path, model: str, style: str, folder: str = CAPTIONS_DIR) -> Path:
    """``output_dir/<folder>/<model>/<model>_<style>.json`` (folder ``captions`` by default)."""
    return output_dir / folder / model / f"{model}_{style}.json"


class CaptionMapWriter:
    """Holds ``{key: caption}`` in memory and saves it incrementally and atomically.

    ``before_save`` runs before every save (the store fsyncs its records there). ``clock``
    (monotonic seconds) is injectable for tests. Not thread-safe: one owner calls it.
    """

    def __init__(
        self,
        path: Path,
        initial: Mapping[str, str] | None = None,
        *,
        save_every_items: int = 100,
        save_every_s: float = 30.0,
        max_save_fraction: float = 0.1,
        before_save: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if save_every_items < 1:
            raise ValueError(f"save_every_items must be >= 1, got {save_every_items}")
        if save_every_s < 0:
            raise ValueError(f"save_every_s must be >= 0, got {save_every_s}")
        self.path = path
        self.save_every_items = save_every_items
        self.save_every_s = save_every_s
        self.max_save_fraction = max_save_fraction
        self._before_save = before_save
        self._clock = clock
        self._captions: dict[str, str] = dict(initial or {})
        self._pending = 0  # changes since the last save
        self._last_save = clock()
        self._last_save_duration = 0.0
        self.saves = 0
        self.closed = False

    @property
    def captions(self) -> Mapping[str, str]:
        return self._captions

    @property
    def pending(self) -> int:
        """Changes not saved yet."""
        return self._pending

    def __len__(self) -> int:
        return len(self._captions)

    def add(self, key: str, caption: str) -> None:
        """Set ``key``'s caption; saves when a threshold is reached."""
        self._change()
        self._captions[key] = caption
        self.maybe_save()

    def discard(self, key: str) -> None:
        """Drop ``key`` (its latest record is not ok any more); saves when a threshold is
        reached, like :meth:`add`, even if ``key`` had no caption."""
        if key in self._captions:
            self._change()
            del self._captions[key]
        self.maybe_save()

    def _change(self) -> None:
        if self.closed:
            raise ValueError(f"caption map {self.path} is closed")
        self._pending += 1

    def due(self) -> bool:
        """True when unsaved changes have reached the item count or the age threshold."""
        if self._pending == 0:
            return False
        elapsed = self._clock() - self._last_save
        if self.max_save_fraction > 0 and elapsed * self.max_save_fraction < (
            self._last_save_duration
        ):
            return False
        return self._pending >= self.save_every_items or elapsed >= self.save_every_s

    def maybe_save(self) -> bool:
        """Save if :meth:`due`; returns whether it saved. Call it now and then on idle loops."""
        if self.due():
            self.save()
            return True
        return False

    def save(self) -> None:
        """Write the whole map now (sorted by key), atomically."""
        if self._before_save is not None:
            self._before_save()
        start = self._clock()
        atomic_write_json(self.path, dict(sorted(self._captions.items())))
        end = self._clock()
        self._last_save_duration = max(0.0, end - start)
        self._last_save = end
        self._pending = 0
        self.saves += 1
        logger.debug("saved %d caption(s) to %s", len(self._captions), self.path)

    def flush(self) -> None:
        """Save now, whatever the thresholds say."""
        self.save()

    def close(self) -> None:
        if not self.closed:
            self.save()
            self.closed = True

    def __enter__(self) -> CaptionMapWriter:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
