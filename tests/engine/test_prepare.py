"""Requests built on a pool of threads (``vlmcap.engine.prepare``) under the real transport and
driver, with the scripted stand-in for vLLM's engine of ``tests/core/test_loop_order.py``
(it can tell in which order requests were added and whether a step ran with nothing inside).
The real engine runs this path in every other engine test: the default is one thread."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from tests.core.test_loop_order import EchoPlugin, ScriptedEngine, items
from vlmcap.config import VLMConfig
from vlmcap.core import Lifecycle, drive
from vlmcap.engine.prepare import AUTO_MAX_THREADS, engine_mm_cache, prepare_threads
from vlmcap.engine.transport import EngineTransport
from vlmcap.records import Status

#: Seconds a "slow" item takes to build: long enough for the others to finish first.
SLOW_S = 0.3


class SlowPlugin(EchoPlugin):
    """Builds ``slow*`` media slowly and records on which threads building ran."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: set[str] = set()

    def engine_inputs(self, request, processor):
        self.threads.add(threading.current_thread().name)
        if str(request.media).startswith("slow"):
            time.sleep(SLOW_S)
        return super().engine_inputs(request, processor)


class CountingEngine(ScriptedEngine):
    """The scripted engine, failing the test if ``step()`` runs with nothing inside (vLLM's
    would wait for outputs that never come)."""

    def __init__(self, steps):
        super().__init__(steps)
        self.media_order: list[str] = []

    def add_request(self, request_id, inputs, params):
        super().add_request(request_id, inputs, params)
        self.media_order.append(inputs["media"])

    def step(self):
        assert self.running, "step() with no request inside"
        return super().step()


def run(media, threads, **cfg):
    engine = CountingEngine({m: 1 + i % 3 for i, m in enumerate(media)})
    plugin = SlowPlugin()
    config = VLMConfig(model="echo-test", **cfg)
    transport = EngineTransport(
        SimpleNamespace(llm_engine=engine), plugin, config.max_inflight, prepare_threads=threads
    )
    try:
        records = list(drive(items(*media), transport, Lifecycle(plugin, config)))
    finally:
        transport.close()
    return records, engine, plugin


def test_threads_give_the_records_of_the_loop_s_own_thread():
    media = ["ok1", "slow1", "reject-in-plugin", "ok2", "reject-in-engine", "ok3", "slow2"]
    inline, _, inline_plugin = run(media, 0, max_inflight=3, stage2=True)
    pooled, _, pooled_plugin = run(media, 3, max_inflight=3, stage2=True)

    def view(records):
        return {r.key: (r.status, r.text, r.error) for r in records}

    assert view(pooled) == view(inline)
    assert len(pooled) == len(media)
    by_key = {r.key: r for r in pooled}
    assert "cannot build request" in by_key["reject-in-plugin"].error
    assert "engine rejected" in by_key["reject-in-engine"].error
    assert all(by_key[k].status == Status.OK for k in ("ok1", "ok2", "ok3", "slow1", "slow2"))
    assert inline_plugin.threads == {threading.current_thread().name}
    assert pooled_plugin.threads and all(
        name.startswith("vlmcap-prepare") for name in pooled_plugin.threads
    )


def test_requests_reach_the_engine_in_the_order_they_were_submitted():
    # slow0 takes longest to build; the ones after it are built first but must wait for it
    media = ["slow0", "a", "b", "c", "d"]
    _, engine, _ = run(media, 4, max_inflight=8)
    assert engine.media_order == media


def test_the_loop_waits_for_building_instead_of_stepping_an_empty_engine():
    records, engine, _ = run(["slow0", "slow1"], 2, max_inflight=2)
    assert {r.key for r in records} == {"slow0", "slow1"}
    assert all(n > 0 for n in engine.inflight_history)  # CountingEngine also asserts it


@pytest.mark.parametrize(
    ("asked", "cores", "config_cache", "engine_cache", "expected"),
    [
        (None, 2, False, None, 1),  # auto: a quarter of the cores, at least one
        (None, 16, False, None, 4),
        (None, 256, False, None, AUTO_MAX_THREADS),
        (None, 16, True, None, 1),  # the multimodal cache wants requests in order
        (6, 2, False, None, 6),
        (6, 2, True, None, 1),
        (6, 2, True, False, 6),  # the engine's own setting wins over the config's
        (6, 2, False, True, 1),
        (0, 16, False, None, 0),  # on the loop's own thread
    ],
)
def test_thread_count(asked, cores, config_cache, engine_cache, expected):
    config = VLMConfig(model="echo-test", prepare_threads=asked, mm_cache=config_cache)
    assert prepare_threads(config, cpu_count=cores, cache_on=engine_cache) == expected


def test_the_engine_s_cache_setting_is_read_where_it_says_one():
    def engine(size):
        multimodal = SimpleNamespace(mm_processor_cache_gb=size)
        return SimpleNamespace(
            vllm_config=SimpleNamespace(model_config=SimpleNamespace(multimodal_config=multimodal))
        )

    assert engine_mm_cache(engine(4)) is True
    assert engine_mm_cache(engine(0)) is False
    assert engine_mm_cache(SimpleNamespace()) is None
