"""The loop's item source over the decode threads (a ``vlmcap.core.PollingSource``)."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from vlmcap.core.source import Iterates
from vlmcap.pipeline.prefetch import Prefetcher
from vlmcap.records import Item
from vlmcap.tasks.base import Loaded

logger = logging.getLogger(__name__)


class ItemFeed(Iterates):
    """Hands out decoded items; an input that failed to load is passed to ``on_load_error``
    as soon as its result arrives, and ``on_unit_done`` fires once all of an input's rows are
    out (``row_written``)."""

    def __init__(
        self,
        prefetcher: Prefetcher[Any, Loaded[Any]],
        on_load_error: Callable[[Loaded[Any]], None],
        on_unit_done: Callable[[str], None],
    ) -> None:
        self._prefetcher = prefetcher
        self._on_load_error = on_load_error
        self._on_unit_done = on_unit_done
        self._ready: deque[Item] = deque()
        self._unit_of: dict[str, str] = {}  # item key -> input key
        self.remaining: dict[str, int] = {}  # input key -> rows not yet written
        self.not_sent = 0

    @property
    def exhausted(self) -> bool:
        return not self._ready and self._prefetcher.exhausted

    def poll(self, block: bool) -> Item | None:
        while not self._ready:
            result = self._prefetcher.poll(block)
            if result is None:
                return None
            self._take(result)
        return self._ready.popleft()

    def _take(self, result: Loaded[Any]) -> None:
        for reason in result.not_sent:
            logger.warning("%s", reason)
        self.not_sent += len(result.not_sent)
        if result.error is not None:
            self._on_load_error(result)
        elif not result.items:  # everything of it was done by an earlier run
            self._on_unit_done(result.key)
        else:
            self.remaining[result.key] = len(result.items)
            for item in result.items:
                self._unit_of[item.key] = result.key
            self._ready.extend(result.items)

    def row_written(self, item_key: str) -> None:
        """Count one row of item ``item_key`` as written; fire ``on_unit_done`` after the
        last row of its input."""
        unit = self._unit_of.pop(item_key, item_key)
        left = self.remaining.get(unit, 1) - 1
        if left > 0:
            self.remaining[unit] = left
        else:
            self.remaining.pop(unit, None)
            self._on_unit_done(unit)
