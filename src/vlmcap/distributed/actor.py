"""The engine actor of a Ray job: one vLLM engine, its plugin and the one loop driver.

Flow trace::

    EngineActor(plugin, config)             # on its Ray worker: the plugin's engine starts
      loop thread: OfflineBackend.run(inbox)  # the same driver, lifecycle and engine restarts
                                            # (poison items fail alone) as a job on one machine
    await actor(batch)                      # Ray Data calls it with a few entries at a time;
      items -> inbox                        # several calls are inside at once, so the engine
      wait for their records                # stays full across call boundaries
    -> the batch's entries: RECORD for each item (media dropped), ROW / DONE passed on

The records go back to the driver, which turns them into rows and writes them (one writer, the
same store as on one machine). An engine that died more often than ``--engine-restarts``
allows fails every call from then on: the job stops, and a rerun resumes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from collections import deque
from typing import TYPE_CHECKING

from vlmcap.core.source import Iterates
from vlmcap.core.stats import LoopStats
from vlmcap.distributed.entries import ITEM, RECORD, Batch, Entry, from_batch, to_batch
from vlmcap.records import Item, Record

if TYPE_CHECKING:
    from vlmcap.config import VLMConfig
    from vlmcap.plugins.base import VLMPlugin

logger = logging.getLogger(__name__)

#: Seconds the loop thread waits for a new item when it has nothing else to do.
INBOX_WAIT_S = 0.05


class Inbox(Iterates):
    """Items handed to the loop thread by the actor's calls (a ``PollingSource``)."""

    def __init__(self) -> None:
        self._items: deque[Item] = deque()
        self._ready = threading.Condition()
        self._closed = False

    @property
    def exhausted(self) -> bool:
        with self._ready:
            return self._closed and not self._items

    def put(self, items: list[Item]) -> None:
        with self._ready:
            self._items.extend(items)
            self._ready.notify()

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify_all()

    def poll(self, block: bool) -> Item | None:
        with self._ready:
            while block and not self._items and not self._closed:
                self._ready.wait(INBOX_WAIT_S)
            return self._items.popleft() if self._items else None


class EngineActor:
    """A Ray Data callable class (see the module docstring)."""

    def __init__(self, plugin: VLMPlugin, config: VLMConfig) -> None:
        from vlmcap.pipeline.backend import OfflineBackend

        self._inbox = Inbox()
        self._waiting: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Future[Record]]] = {}
        self._lock = threading.Lock()
        self._failure: BaseException | None = None
        logger.info("engine actor: loading %s", plugin.variant)
        self._backend = OfflineBackend(
            plugin.build_llm(config), plugin, config, rebuild=lambda: plugin.build_llm(config)
        )
        self._thread = threading.Thread(target=self._run, name="vlmcap-engine-loop", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for record in self._backend.run(self._inbox, LoopStats()):
                self._settle(record)
        except BaseException as exc:  # every waiting call fails with it; later calls too
            logger.exception("engine actor: the loop stopped")
            with self._lock:
                self._failure = exc
                waiting = list(self._waiting.values())
                self._waiting.clear()
            for loop, future in waiting:
                loop.call_soon_threadsafe(_fail, future, exc)

    def _settle(self, record: Record) -> None:
        if record.item is not None:  # the media stays here; the row needs only its meta
            record.item = dataclasses.replace(record.item, media=None)
        with self._lock:
            waiter = self._waiting.pop(record.key, None)
        if waiter is None:
            logger.warning("engine actor: record %s has no caller waiting for it", record.key)
            return
        loop, future = waiter
        loop.call_soon_threadsafe(_resolve, future, record)

    async def __call__(self, batch: Batch) -> Batch:
        entries = list(from_batch(batch))
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Record] | None] = []
        items: list[Item] = []
        with self._lock:
            if self._failure is not None:
                raise RuntimeError(f"this engine actor's loop stopped: {self._failure}")
            for entry in entries:
                if entry.kind != ITEM:
                    futures.append(None)
                    continue
                item: Item = entry.value()
                future: asyncio.Future[Record] = loop.create_future()
                self._waiting[item.key] = (loop, future)
                futures.append(future)
                items.append(item)
        self._inbox.put(items)
        out = []
        for entry, waiting in zip(entries, futures, strict=True):
            if waiting is None:
                out.append(entry)
            else:
                record = await waiting
                out.append(Entry.of(entry.unit, entry.size, RECORD, record, entry.not_sent))
        return to_batch(out)

    def __del__(self) -> None:
        self.close()

    def close(self) -> None:
        """Stop the loop thread and the engine (Ray calls ``__del__`` when the job ends)."""
        from vlmcap.runtime import shutdown_llm

        inbox = getattr(self, "_inbox", None)
        if inbox is None:
            return
        inbox.close()
        self._thread.join()
        shutdown_llm(self._backend.llm)  # the engine of the last restart
        del self._inbox


def _resolve(future: asyncio.Future[Record], record: Record) -> None:
    if not future.done():
        future.set_result(record)


def _fail(future: asyncio.Future[Record], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(RuntimeError(f"this engine actor's loop stopped: {exc}"))
