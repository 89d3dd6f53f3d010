"""What turns caption items into records: the offline engine, or a server (``vlmcap.client``).

The pipeline (decode, resume, outputs, progress) is written once against this protocol; a
backend only has to yield exactly one finished record per item, ``ok`` or ``failed``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from vlmcap.engine.offline import iter_captions
from vlmcap.engine.stats import LoopStats
from vlmcap.records import CaptionItem, CaptionRecord

if TYPE_CHECKING:
    from vllm import LLM

    from vlmcap.config import VLMConfig
    from vlmcap.plugins.base import VLMPlugin


class CaptionBackend(Protocol):
    def run(self, items: Iterable[CaptionItem], stats: LoopStats) -> Iterator[CaptionRecord]:
        """Yield one finished record per item (any order), filling ``stats`` as it goes.

        ``items`` may be a ``vlmcap.engine.PollingSource`` (non-blocking ``poll``)."""
        ...


@dataclass
class OfflineBackend:
    """vLLM's engine in this process, driven by ``vlmcap.engine``'s loops."""

    llm: LLM
    plugin: VLMPlugin
    config: VLMConfig

    def run(self, items: Iterable[CaptionItem], stats: LoopStats) -> Iterator[CaptionRecord]:
        return iter_captions(items, self.llm, self.plugin, self.config, stats)
