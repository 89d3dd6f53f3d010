"""Engine deaths under the loop driver, with the scripted engine of test_loop_order.py.

The scripted engine can die at a chosen step or whenever a chosen item is inside, which a real
engine cannot be made to do on cue; the real-engine side (a killed EngineCore process, a poison
item) is in tests/pipeline/test_engine_restart.py.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.core.test_loop_order import EchoPlugin, ScriptedEngine, items
from vlmcap.config import VLMConfig
from vlmcap.core import Lifecycle, drive
from vlmcap.core.recovery import EngineLost, Recovery, poison_reason
from vlmcap.engine.transport import EngineTransport
from vlmcap.records import Status


class MortalEngine(ScriptedEngine):
    """Dies at step ``die_at`` (once), or at every step while ``poison`` is inside."""

    die_at: int | None = None
    poison: str | None = None

    def step(self):
        medias = {inputs["media"] for _, inputs in self.running.values()}
        if self.poison in medias or len(self.inflight_history) == self.die_at:
            raise RuntimeError("EngineCore died")
        return super().step()


class Engines:
    """The engines one run goes through: the first given, then one per restart."""

    def __init__(self, steps: dict[str, int], *, die_at=None, poison=None, restarts_die=False):
        self.steps, self.poison, self.restarts_die = steps, poison, restarts_die
        self.all = [self.make(die_at)]
        self.plugin = EchoPlugin()

    def make(self, die_at: int | None) -> MortalEngine:
        engine = MortalEngine(dict(self.steps))
        engine.die_at, engine.poison = die_at, self.poison
        return engine

    def transport(self, engine: MortalEngine, capacity: int) -> EngineTransport:
        return EngineTransport(SimpleNamespace(llm_engine=engine), self.plugin, capacity)

    def run(self, media, restarts: int, **cfg):
        config = VLMConfig(model="echo-test", **cfg)

        def restart() -> EngineTransport:
            self.all.append(self.make(0 if self.restarts_die else None))
            return self.transport(self.all[-1], config.max_inflight)

        recovery = Recovery(restart, restarts)
        first = self.transport(self.all[0], config.max_inflight)
        lifecycle = Lifecycle(self.plugin, config)
        return list(drive(items(*media), first, lifecycle, recovery=recovery)), recovery


def test_a_death_no_item_caused_costs_one_restart_and_no_record():
    media = [f"m{i}" for i in range(8)]
    engines = Engines(dict.fromkeys(media, 3), die_at=2)
    records, recovery = engines.run(media, restarts=3, max_inflight=4)
    assert sorted(r.key for r in records) == media  # every item exactly once
    assert all(r.status == Status.OK for r in records)
    assert recovery.used == 1
    fresh = engines.all[1]
    # the four that were inside go back one at a time, then the engine is filled again
    assert fresh.inflight_history[:12] == [1] * 12  # 4 suspects x 3 steps each
    assert max(fresh.inflight_history) == 4


def test_a_poison_item_fails_alone_with_the_reason_and_the_rest_finish():
    media = ["a", "b", "poison", "c", "d", "e"]
    engines = Engines(dict.fromkeys(media, 2), poison="poison")
    records, recovery = engines.run(media, restarts=3, max_inflight=3)
    by_key = {r.key: r for r in records}
    assert sorted(by_key) == sorted(media)
    assert by_key["poison"].status == Status.FAILED
    assert by_key["poison"].error == poison_reason("engine failed: RuntimeError: EngineCore died")
    assert all(r.status == Status.OK for k, r in by_key.items() if k != "poison")
    assert recovery.used == 2  # once with the batch, once alone


def test_no_restart_left_stops_the_run_with_the_unfinished_count():
    media = [f"m{i}" for i in range(6)]
    engines = Engines(dict.fromkeys(media, 3), die_at=1, restarts_die=True)
    with pytest.raises(EngineLost) as lost:
        engines.run(media, restarts=2, max_inflight=3)
    assert len(engines.all) == 3  # the first and two restarts
    # the first engine died with 3 inside; each restart died at once with one suspect alone
    # inside: those two fail as poison (not yielded here: the run raised), one is left
    assert lost.value.unfinished == 1
    assert "left for resume" in str(lost.value)


def test_a_record_inside_at_stage_two_is_retried_at_stage_two():
    media = ["a", "b"]
    engines = Engines({"a": 1, "b": 1}, die_at=2)
    records, recovery = engines.run(media, restarts=1, max_inflight=2, stage2=True)
    assert recovery.used == 1
    assert all(r.status == Status.OK for r in records)
    assert all(r.stage1_text and r.text for r in records)
    retried = list(engines.all[1].added)
    assert retried and all(rid.endswith(":s2") for rid in retried)  # stage 1 not run again
