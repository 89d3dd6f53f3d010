"""The offline engine: items in, one record per item out, vLLM in this process.

    from vlmcap.config import VLMConfig
    from vlmcap.engine import caption_items, load_engine

    config = VLMConfig(model="qwen2.5-vl", stage2=True)
    plugin, llm = load_engine(config)
    records = caption_items(items, llm, plugin, config)

``config.inflight_batching`` picks the loop: the shared driver (``vlmcap.core.loop``) over
``EngineTransport`` (the default), or fixed batches (``batching.py``). Both give the same
records for the same items and seed. ``debugger`` (a ``vlmcap.debug.request_dump.RequestDebugger``)
sees every request of either loop: dumps, logprobs. ``restart`` (in-flight loop): how to get a
fresh engine when this one dies, up to ``config.engine_restarts`` times (``vlmcap.core.recovery``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from vlmcap.core.lifecycle import Lifecycle
from vlmcap.core.loop import drive
from vlmcap.core.recovery import Recovery
from vlmcap.core.stats import LoopStats
from vlmcap.engine.batching import iter_fixed_batches
from vlmcap.engine.prepare import engine_mm_cache, prepare_threads
from vlmcap.engine.transport import EngineTransport
from vlmcap.plugins.registry import get_plugin
from vlmcap.records import Item, Record

if TYPE_CHECKING:
    from vllm import LLM

    from vlmcap.config import VLMConfig
    from vlmcap.debug.request_dump import RequestDebugger
    from vlmcap.plugins.base import VLMPlugin

logger = logging.getLogger(__name__)


def load_engine(config: VLMConfig) -> tuple[VLMPlugin, LLM]:
    """Resolve the plugin named by ``config.model`` and start its vLLM engine."""
    plugin = get_plugin(config.model, config.model_path)
    logger.info("loading %s from %s", plugin.variant, plugin.model_path)
    return plugin, plugin.build_llm(config)


def iter_records(
    items: Iterable[Item],
    llm: LLM,
    plugin: VLMPlugin,
    config: VLMConfig,
    stats: LoopStats | None = None,
    *,
    debugger: RequestDebugger | None = None,
    restart: Callable[[], LLM] | None = None,
) -> Iterator[Record]:
    """Yield one finished record (``ok`` or ``failed``) per item as soon as it is done.

    Items are pulled lazily, so a generator of decoded media keeps memory bounded. ``stats``
    (optional) is filled with the run's engine-busy and input-wait times; ``debugger``
    (optional) dumps requests and keeps logprobs as the run's debug switches say. ``restart``
    (optional) shuts the dead engine down and returns a new one: the in-flight loop then
    survives ``config.engine_restarts`` engine deaths; without it a death raises
    ``vlmcap.core.recovery.EngineLost``.
    """
    from vlmcap.debug.steps import close_hooks, step_hooks

    lifecycle = Lifecycle(plugin, config, debugger)
    if not config.inflight_batching:
        if config.log_steps or config.profile is not None:
            logger.warning("--log-steps and --profile need the in-flight loop: ignored")
        yield from iter_fixed_batches(items, llm, lifecycle, stats)
        return
    hooks = step_hooks(config, llm)
    threads = prepare_threads(config, cache_on=engine_mm_cache(llm.llm_engine))
    logger.info(
        "requests built %s", f"on {threads} thread(s)" if threads else "on the loop's thread"
    )

    def transport_of(engine: LLM) -> EngineTransport:
        return EngineTransport(
            engine, plugin, config.max_inflight, hooks=hooks, prepare_threads=threads
        )

    transport = transport_of(llm)
    recovery = None
    if restart is not None and config.engine_restarts > 0:
        new_engine = restart

        def fresh() -> EngineTransport:
            return transport_of(new_engine())

        recovery = Recovery(fresh, config.engine_restarts)
    try:
        yield from drive(items, transport, lifecycle, stats, recovery=recovery)
    finally:
        transport.close()
        close_hooks(hooks)  # a profile still on stops here, and its top operators are logged


def caption_items(
    items: Iterable[Item],
    llm: LLM,
    plugin: VLMPlugin,
    config: VLMConfig,
    on_record: Callable[[Record], None] | None = None,
) -> list[Record]:
    """All records, in the order of ``items``; ``on_record`` sees each one as it finishes."""
    order: dict[str, int] = {}

    def numbered() -> Iterator[Item]:
        for i, item in enumerate(items):
            order.setdefault(item.key, i)
            yield item

    records = []
    for record in iter_records(numbered(), llm, plugin, config):
        if on_record is not None:
            on_record(record)
        records.append(record)
    records.sort(key=lambda r: order.get(r.key, len(order)))
    return records
