"""Loop-ordering tests of the loop driver with a scripted stand-in for vLLM's engine.

The real-engine tests (test_offline.py) cannot choose when a request finishes; this stand-in
can: each request finishes after a chosen number of steps, so top-up and stage-2 re-queueing
can be checked step by step. The stand-in sits under the real ``EngineTransport`` and driver.
It complements the real-engine tests and replaces none of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from vlmcap.config import VLMConfig
from vlmcap.core import Lifecycle, LoopStats, ModelRequest, drive
from vlmcap.core.recovery import EngineLost
from vlmcap.engine.transport import EngineTransport
from vlmcap.plugins.base import VLMPlugin
from vlmcap.records import Item, Status


class EchoPlugin(VLMPlugin):
    """A plugin whose requests are plain dicts; the scripted engine echoes the prompt."""

    variant = "echo-test"
    model_id = "test/echo"

    def processor(self) -> Any:
        return None

    def make_request(self, prompt, media, *, fps=None):
        if media == "reject-in-plugin":
            raise ValueError("plugin cannot use this media")
        return ModelRequest([{"role": "user", "content": prompt}], media, fps)

    def engine_inputs(self, request, processor):
        return {"prompt": request.prompt, "media": request.media}


@dataclass
class ScriptedEngine:
    """Requests finish after ``steps_for(request)`` calls to ``step()``."""

    steps: dict[str, int]
    running: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    inflight_history: list[int] = field(default_factory=list)
    finished_before: list[int] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    finished_total: int = 0

    def add_request(self, request_id, inputs, params):
        if inputs["media"] == "reject-in-engine":
            raise ValueError("prompt too long")
        key = inputs["media"]
        n = self.steps.get(key, 1) * (2 if ":s2" in request_id else 1)
        self.running[request_id] = (n, inputs)
        self.added.append(request_id)

    def step(self):
        self.inflight_history.append(len(self.running))
        self.finished_before.append(self.finished_total)
        finished = []
        for rid, (left, inputs) in list(self.running.items()):
            if left <= 1:
                del self.running[rid]
                self.finished_total += 1
                completion = SimpleNamespace(
                    text=f"caption of {inputs['prompt']}",
                    token_ids=[1, 2, 3],
                    finish_reason="stop",
                    index=0,
                )
                finished.append(
                    SimpleNamespace(
                        request_id=rid,
                        finished=True,
                        outputs=[completion],
                        prompt_token_ids=[0] * 5,
                        metrics=None,
                    )
                )
            else:
                self.running[rid] = (left - 1, inputs)
        return finished


def drive_scripted(source, engine, config, stats=None):
    plugin = EchoPlugin()
    transport = EngineTransport(SimpleNamespace(llm_engine=engine), plugin, config.max_inflight)
    return list(drive(source, transport, Lifecycle(plugin, config), stats))


def run(items, steps, **cfg):
    engine = ScriptedEngine(steps)
    return drive_scripted(items, engine, VLMConfig(model="echo-test", **cfg)), engine


def items(*media):
    return [Item(key=str(m), media=m) for m in media]


def test_engine_is_topped_up_to_max_inflight_on_every_step():
    media = [f"m{i}" for i in range(10)]
    # m0 is slow; the others finish after 1-3 steps, out of order
    steps = {m: 1 + (i % 3) for i, m in enumerate(media)} | {"m0": 6}
    records, engine = run(items(*media), steps, max_inflight=4)
    assert {r.key for r in records} == set(media)
    # every step starts full while work is left; a one-per-step loop would start 1, 2, 3, ...
    for inflight, done in zip(engine.inflight_history, engine.finished_before, strict=True):
        assert inflight == min(4, len(media) - done)
    assert len(engine.inflight_history) < len(media)


def test_stage2_requests_reenter_the_same_loop_before_new_items():
    records, engine = run(
        items("a", "b", "c"),
        {"a": 1, "b": 3, "c": 3},
        max_inflight=2,
        stage2=True,
        stage2_prompt="Refine: ",
    )
    # a finishes stage 1 first; its stage-2 request is added before item c
    assert engine.added.index(records[0].request_id + ":s2") < engine.added.index(
        next(r.request_id for r in records if r.key == "c")
    )
    for r in records:
        assert r.status == Status.OK
        # the items' media are not clips: the run's picture prompt
        assert r.stage1_text == "caption of Describe this image in detail."
        assert r.text == f"caption of Refine: {r.stage1_text}"


def test_rejections_fail_one_record_and_the_rest_complete():
    media = ["ok1", "reject-in-plugin", "ok2", "reject-in-engine", "ok3"]
    records, _ = run(items(*media), {}, max_inflight=2)
    by_key = {r.key: r for r in records}
    assert len(records) == 5
    assert by_key["reject-in-plugin"].status == Status.FAILED
    assert "cannot build request" in by_key["reject-in-plugin"].error
    assert "engine rejected" in by_key["reject-in-engine"].error
    assert by_key["reject-in-engine"].text is None
    assert all(by_key[k].status == Status.OK for k in ("ok1", "ok2", "ok3"))


def test_each_record_is_yielded_exactly_once():
    media = [f"x{i}" for i in range(25)]
    records, _ = run(
        items(*media), {m: 1 + i % 4 for i, m in enumerate(media)}, max_inflight=5, stage2=True
    )
    assert sorted(r.key for r in records) == sorted(media)
    assert len({id(r) for r in records}) == 25


class TrickleSource:
    """A polling source whose items become ready one poll at a time (decode lagging)."""

    def __init__(self, media, ready_every, engine):
        self.pending = list(items(*media))
        self.ready_every = ready_every
        self.engine = engine
        self.polls: list[tuple[bool, int]] = []  # (block, requests inside the engine)

    def poll(self, block):
        self.polls.append((block, len(self.engine.running)))
        if not self.pending:
            return None
        if block or len(self.polls) % self.ready_every == 0:
            return self.pending.pop(0)
        return None

    @property
    def exhausted(self):
        return not self.pending


def test_polling_source_never_blocks_while_the_engine_has_work():
    media = [f"p{i}" for i in range(12)]
    engine = ScriptedEngine(dict.fromkeys(media, 2))
    source = TrickleSource(media, ready_every=3, engine=engine)
    stats = LoopStats()
    config = VLMConfig(model="echo-test", max_inflight=8)
    records = drive_scripted(source, engine, config, stats)
    assert sorted(r.key for r in records) == sorted(media)
    assert all(r.status == Status.OK for r in records)
    # a blocking poll only ever happens with the engine empty
    assert all(inside == 0 for block, inside in source.polls if block)
    assert any(not block and inside > 0 for block, inside in source.polls)
    assert stats.engine_steps == len(engine.inflight_history)
    assert stats.requests == stats.replies == len(media)
    assert 0 < stats.mean_inflight <= stats.peak_inflight <= 8
    assert 0 < stats.busy_fraction <= 1


def test_engine_death_without_recovery_stops_the_run_and_writes_nothing_inside():
    class DyingEngine(ScriptedEngine):
        def step(self):
            if len(self.inflight_history) == 2:
                raise RuntimeError("EngineCore died")
            return super().step()

    media = [f"d{i}" for i in range(6)]
    engine = DyingEngine({"d0": 1} | dict.fromkeys(media[1:], 5))
    plugin = EchoPlugin()
    config = VLMConfig(model="echo-test", max_inflight=3)
    transport = EngineTransport(SimpleNamespace(llm_engine=engine), plugin, 3)
    seen = []
    try:
        for record in drive(items(*media), transport, Lifecycle(plugin, config)):
            seen.append(record)
    except EngineLost as exc:
        assert "EngineCore died" in str(exc)
        assert exc.unfinished == 3  # d1, d2, d3 were inside: left for resume, not failed
        assert isinstance(exc.__cause__, RuntimeError)
    else:
        raise AssertionError("the engine's death must stop the run")
    assert [(r.key, r.status) for r in seen] == [("d0", Status.OK)]  # finished before
