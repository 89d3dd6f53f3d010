"""What turns items into records for the pipeline: the offline engine, a server, or Ray.

The pipeline (decode, resume, outputs, progress) is written once against ``Backend``; both
backends run the same lifecycle and, in-flight, the same loop driver (``vlmcap.core.loop``):
only the transport differs. ``RemoteBackend`` is the shape of one that also loads the inputs
itself, elsewhere: ``vlmcap.distributed.RayBackend`` decodes on Ray tasks and runs the same
driver over an engine in each of its actors; the pipeline still writes every row.

``debugger`` (optional, ``RequestDebugger.from_config``) goes to the lifecycle of every run:
request dumps, logprobs, on either backend.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from vlmcap.core.lifecycle import Lifecycle
from vlmcap.core.loop import drive
from vlmcap.core.stats import LoopStats
from vlmcap.engine.offline import iter_records
from vlmcap.records import Item, Record

if TYPE_CHECKING:
    from vllm import LLM

    from vlmcap.client.openai_client import ClientConfig
    from vlmcap.config import VLMConfig
    from vlmcap.debug.request_dump import RequestDebugger
    from vlmcap.distributed.entries import Entry
    from vlmcap.plugins.base import VLMPlugin


class Backend(Protocol):
    def run(self, items: Iterable[Item], stats: LoopStats) -> Iterator[Record]:
        """Yield one finished record per item (any order), filling ``stats`` as it goes.

        ``items`` may be a ``vlmcap.core.PollingSource`` (non-blocking ``poll``)."""
        ...


@runtime_checkable
class RemoteBackend(Protocol):
    def run_jobs(self, task: Any, jobs: Sequence[Any], stats: LoopStats) -> Iterator[Entry]:
        """Load and run ``jobs`` (``task.plan``'s) elsewhere; their entries in any order: each
        item's finished record, the rows of an input that failed to load, an input with
        nothing left to send (``vlmcap.distributed.entries``)."""
        ...


#: What the pipeline runs on: a backend fed with decoded items, or one that loads them itself.
AnyBackend = Backend | RemoteBackend


@dataclass
class OfflineBackend:
    """vLLM's engine in this process (the shared driver, or fixed batches).

    ``rebuild`` (optional) starts a new engine after this one died (``config.engine_restarts``
    times at most); ``llm`` is then the new one, and each of ``on_restart`` is told.
    """

    llm: LLM
    plugin: VLMPlugin
    config: VLMConfig
    debugger: RequestDebugger | None = field(default=None, kw_only=True)
    rebuild: Callable[[], LLM] | None = field(default=None, kw_only=True)
    on_restart: list[Callable[[LLM], None]] = field(default_factory=list, kw_only=True)

    def run(self, items: Iterable[Item], stats: LoopStats) -> Iterator[Record]:
        restart = self._restart if self.rebuild is not None else None
        return iter_records(
            items,
            self.llm,
            self.plugin,
            self.config,
            stats,
            debugger=self.debugger,
            restart=restart,
        )

    def _restart(self) -> LLM:
        from vlmcap.runtime import shutdown_llm

        assert self.rebuild is not None
        shutdown_llm(self.llm)  # what is left of the dead one: its processes are reaped
        self.llm = self.rebuild()
        for listener in self.on_restart:
            listener(self.llm)
        return self.llm


@dataclass
class ServerBackend:
    """An OpenAI-compatible vLLM server; ``settings.model`` resolved (``client.connect``)."""

    settings: ClientConfig
    plugin: VLMPlugin
    config: VLMConfig
    debugger: RequestDebugger | None = field(default=None, kw_only=True)

    def run(self, items: Iterable[Item], stats: LoopStats) -> Iterator[Record]:
        from vlmcap.client.transport import ServerTransport

        debugger = self.debugger
        transport = ServerTransport(
            self.settings, self.plugin, self.config, detail=debugger is not None
        )
        if debugger is not None:
            debugger.via_server(self.settings.encoding, transport.video, transport.max_images)
        lifecycle = Lifecycle(self.plugin, self.config, debugger)
        try:
            yield from drive(items, transport, lifecycle, stats)
        finally:
            transport.close()
