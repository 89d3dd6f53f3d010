"""Item sources the in-flight loop can poll without blocking the engine.

A plain iterable of items works everywhere (``next()`` may block while media decodes). A
source that also has ``poll`` lets the in-flight loop take only what is ready while requests
are inside the engine, and block only when the engine would otherwise sit empty; the
pipeline's decode prefetcher is one.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from vlmcap.records import Item


class Iterates:
    """Plain iteration over a polling source (``for item in source``): ``poll(block=True)``
    until it gives None."""

    def poll(self, block: bool) -> Item | None:
        raise NotImplementedError

    def __iter__(self) -> Iterates:
        return self

    def __next__(self) -> Item:
        item = self.poll(block=True)
        if item is None:
            raise StopIteration
        return item


@runtime_checkable
class PollingSource(Protocol):
    def poll(self, block: bool) -> Item | None:
        """The next ready item; ``None`` when none is ready (only with ``block=False``) or
        when the source is exhausted."""

    @property
    def exhausted(self) -> bool:
        """True once every item has been handed out."""
