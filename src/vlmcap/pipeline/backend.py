"""What turns items into records for the pipeline: the offline engine, or a server.

The pipeline (decode, resume, outputs, progress) is written once against ``Backend``; both
backends run the same lifecycle and, in-flight, the same loop driver (``vlmcap.core.loop``):
only the transport differs. A Ray actor holding an engine is the next transport.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from vlmcap.core.lifecycle import Lifecycle
from vlmcap.core.loop import drive
from vlmcap.core.stats import LoopStats
from vlmcap.engine.offline import iter_records
from vlmcap.records import Item, Record

if TYPE_CHECKING:
    from vllm import LLM

    from vlmcap.client.openai_client import ClientConfig
    from vlmcap.config import VLMConfig
    from vlmcap.plugins.base import VLMPlugin


class Backend(Protocol):
    def run(self, items: Iterable[Item], stats: LoopStats) -> Iterator[Record]:
        """Yield one finished record per item (any order), filling ``stats`` as it goes.

        ``items`` may be a ``vlmcap.core.PollingSource`` (non-blocking ``poll``)."""
        ...


@dataclass
class OfflineBackend:
    """vLLM's engine in this process (the shared driver, or fixed batches)."""

    llm: LLM
    plugin: VLMPlugin
    config: VLMConfig

    def run(self, items: Iterable[Item], stats: LoopStats) -> Iterator[Record]:
        return iter_records(items, self.llm, self.plugin, self.config, stats)


@dataclass
class ServerBackend:
    """An OpenAI-compatible vLLM server; ``settings.model`` resolved (``client.connect``)."""

    settings: ClientConfig
    plugin: VLMPlugin
    config: VLMConfig

    def run(self, items: Iterable[Item], stats: LoopStats) -> Iterator[Record]:
        from vlmcap.client.transport import ServerTransport

        transport = ServerTransport(self.settings, self.plugin, self.config)
        try:
            yield from drive(items, transport, Lifecycle(self.plugin, self.config), stats)
        finally:
            transport.close()
