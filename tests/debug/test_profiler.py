"""``--profile``: vLLM's torch profiler on the session's real CPU engine and real server.

The session engine (``tests/conftest.py``) and the session ``vlmcap serve`` (``tests/client``)
are started with the profiler configured; each test here starts it for a few steps under its
own trace-name prefix, so the tests share the folder without reading each other's traces.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.conftest import engine_config
from vlmcap.config import VLMConfig
from vlmcap.core import Lifecycle
from vlmcap.core.loop import drive
from vlmcap.core.progress import Progress
from vlmcap.debug.profile_summary import summarise
from vlmcap.debug.profiler import EngineProfiler, bounds_its_profile
from vlmcap.debug.server_profiler import ServerProfiler
from vlmcap.debug.steps import close_hooks, step_hooks
from vlmcap.debug.traces import (
    OpStat,
    TraceError,
    find_traces,
    format_operators,
    load_trace,
    profiled_steps,
    top_operators,
)
from vlmcap.engine.transport import EngineTransport, StepInfo
from vlmcap.records import Item, Record, Status

#: Engine steps profiled (and warmed up) by the main offline test.
STEPS = 4


def images(n: int, seed: int = 11) -> list[Item]:
    rng = np.random.default_rng(seed)
    return [
        Item(key=f"img{i}.png", media=Image.fromarray(rng.integers(0, 255, (56, 84, 3), np.uint8)))
        for i in range(n)
    ]


class StepLog:
    """A step hook that keeps every ``StepInfo``."""

    def __init__(self) -> None:
        self.steps: list[StepInfo] = []

    def __call__(self, info: StepInfo) -> None:
        self.steps.append(info)


def run_with_hooks(
    items: Iterable[Item], llm: Any, plugin: Any, config: VLMConfig, hooks: list[Any]
) -> list[Record]:
    """What ``engine.offline.iter_records`` does in flight, ending the hooks at the end."""
    transport = EngineTransport(llm, plugin, config.max_inflight, hooks=hooks)
    try:
        return list(drive(items, transport, Lifecycle(plugin, config)))
    finally:
        transport.close()
        close_hooks(hooks)


def profiler_of(hooks: list[Any]) -> EngineProfiler:
    found = [h for h in hooks if isinstance(h, EngineProfiler)]
    assert len(found) == 1, hooks
    return found[0]


def all_traces(directory: Path) -> set[Path]:
    return set(find_traces(directory))


def test_offline_profile_records_exactly_the_asked_steps(
    engine, tiny_model_path, profile_root, caplog
):
    plugin, llm = engine
    config = engine_config(
        tiny_model_path, profile=profile_root, profile_steps=STEPS, max_inflight=2
    )
    steps = StepLog()
    hooks = [steps, *step_hooks(config, llm)]
    profiler = profiler_of(hooks)
    with caplog.at_level(logging.INFO, logger="vlmcap.debug"):
        records = run_with_hooks(images(6), llm, plugin, config, hooks)
    assert all(r.status == Status.OK for r in records)
    assert len(steps.steps) > 3 * STEPS  # long enough for warm-up, window and the wait
    assert profiler.started_after == STEPS  # warm-up: the first STEPS steps
    assert profiler.stopped_after is not None  # stopped by the hook, not at the end of the run

    traces = find_traces(profile_root, profiler.prefix)
    assert traces and profiler.summary is not None
    assert list(profiler.summary.traces) == traces == profiler.close()
    for path in traces:
        events = load_trace(path)["traceEvents"]
        assert events and path.name.endswith(".pt.trace.json.gz")
    assert profiled_steps(traces) == STEPS == profiler.summary.steps  # vLLM's step annotations
    assert profiler.summary.device == ()  # a CPU engine's traces hold no device work

    ops = profiler.summary.ops
    assert 0 < len(ops) <= 15
    assert any(op.name.startswith("aten::") for op in ops)
    assert all(op.calls > 0 and op.total_us >= op.self_us > 0 for op in ops)
    assert [op.self_us for op in ops] == sorted((op.self_us for op in ops), reverse=True)
    assert not any(op.name.startswith("execute_") for op in ops)  # step annotations left out
    table = "\n".join(r.getMessage() for r in caplog.records)
    assert f"over {STEPS} profiled engine steps" in table and ops[0].name in table


def test_the_idle_profiler_writes_nothing(engine, tiny_model_path, profile_root):
    plugin, llm = engine
    before = all_traces(profile_root)
    config = engine_config(tiny_model_path, max_inflight=2)  # no --profile: no hook
    hooks = step_hooks(config, llm)
    assert not any(isinstance(h, EngineProfiler) for h in hooks)
    records = run_with_hooks(images(3), llm, plugin, config, hooks)
    assert all(r.status == Status.OK for r in records)
    assert all_traces(profile_root) == before


def test_a_run_that_ends_inside_the_window_stops_the_profiler(
    engine, tiny_model_path, profile_root
):
    plugin, llm = engine
    config = engine_config(tiny_model_path, max_inflight=1)
    steps = StepLog()
    profiler = EngineProfiler(llm, profile_root, steps=1000, warmup=2)
    # one request at a time: vLLM's engine core cannot run ahead past the next request
    records = run_with_hooks(images(3), llm, plugin, config, [steps, profiler])
    assert all(r.status == Status.OK for r in records)
    assert profiler.started_after == 2 and profiler.stopped_after is None  # stopped by close()
    traces = profiler.close()  # a second close changes nothing
    assert traces and traces == find_traces(profile_root, profiler.prefix)
    assert 0 < profiled_steps(traces) < len(steps.steps)
    # the session ended cleanly: vLLM takes a new one, and the engine still answers
    again = EngineProfiler(llm, profile_root, steps=1, warmup=1)
    records = run_with_hooks(images(3, seed=3), llm, plugin, config, [again])
    assert all(r.status == Status.OK for r in records)
    assert profiled_steps(again.close()) == 1


def test_a_run_shorter_than_the_warm_up_profiles_nothing(
    engine, tiny_model_path, profile_root, caplog
):
    plugin, llm = engine
    config = engine_config(tiny_model_path, profile=profile_root, profile_steps=500)
    hooks = step_hooks(config, llm)
    profiler = profiler_of(hooks)
    with caplog.at_level(logging.WARNING, logger="vlmcap.debug"):
        records = run_with_hooks(images(1), llm, plugin, config, hooks)
    assert records[0].status == Status.OK
    assert profiler.started_after is None and profiler.close() == []
    assert find_traces(profile_root, profiler.prefix) == []
    assert "within the 500 warm-up steps" in caplog.text


class PrefixOnlyLLM:
    """The session's real ``vllm.LLM`` behind vLLM 0.25's ``start_profile(profile_prefix)``,
    which takes no ``max_iterations`` (that vLLM runs only on the GPU machine here)."""

    def __init__(self, llm: Any) -> None:
        self.llm = llm
        self.llm_engine = llm.llm_engine

    def start_profile(self, profile_prefix: str | None = None) -> None:
        self.llm.start_profile(profile_prefix)

    def stop_profile(self) -> None:
        self.llm.stop_profile()


def test_without_max_iterations_the_hook_stops_the_profile_itself(
    engine, tiny_model_path, profile_root
):
    plugin, llm = engine
    older = PrefixOnlyLLM(llm)
    assert bounds_its_profile(llm) and not bounds_its_profile(older)
    config = engine_config(tiny_model_path, max_inflight=2)
    steps = StepLog()
    profiler = EngineProfiler(older, profile_root, steps=STEPS, warmup=2)
    records = run_with_hooks(images(6, seed=5), llm, plugin, config, [steps, profiler])
    assert all(r.status == Status.OK for r in records)
    assert len(steps.steps) > 2 + STEPS  # the run went on past the window
    assert not profiler.bounded
    assert profiler.started_after == 2
    assert profiler.stopped_after == 2 + STEPS  # stopped by the hook's own count
    traces = profiler.close()
    assert traces and traces == find_traces(profile_root, profiler.prefix)
    assert 0 < profiled_steps(traces) < len(steps.steps)


def write_trace(path: Path, events: list[dict[str, Any]]) -> Path:
    with gzip.open(path, "wt") as stream:
        json.dump({"traceEvents": events, "displayTimeUnit": "ms"}, stream)
    return path


def op(name: str, ts: float, dur: float, cat: str = "cpu_op", tid: int = 1) -> dict[str, Any]:
    return {"ph": "X", "cat": cat, "name": name, "pid": 7, "tid": tid, "ts": ts, "dur": dur}


def test_self_time_is_the_time_outside_nested_ops(tmp_path):
    trace = write_trace(
        tmp_path / "w.pt.trace.json.gz",
        [
            op("execute_context_1(4)_generation_0(0)", 0, 100, cat="user_annotation"),
            op("aten::linear", 10, 50),
            op("aten::matmul", 15, 30),  # inside linear
            op("aten::add", 70, 10),
            op("aten::linear", 200, 20),
            op("gemm_kernel", 20, 25, cat="kernel", tid=99),  # device stream: no nesting
            {"ph": "M", "name": "process_name", "pid": 7, "args": {"name": "w"}},
        ],
    )
    stats = {s.name: s for s in top_operators([trace], n=None)}
    assert set(stats) == {"aten::linear", "aten::matmul", "aten::add", "gemm_kernel"}
    linear = stats["aten::linear"]
    assert (linear.calls, linear.total_us, linear.self_us) == (2, 70, 40)
    assert stats["aten::matmul"].self_us == stats["aten::matmul"].total_us == 30
    assert stats["gemm_kernel"].on_device and not linear.on_device
    assert [s.name for s in top_operators([trace], n=2)] == ["aten::linear", "aten::matmul"]
    assert top_operators([trace], n=1, by="total")[0].total_us == 70
    assert profiled_steps([trace]) == 1
    table = format_operators(top_operators([trace]))
    assert "aten::linear" in table and " 38.1%" in table  # 40 of the 105 us of self time


def test_files_that_are_not_traces_are_refused_and_reported(tmp_path):
    (tmp_path / "a.pt.trace.json").write_text('{"events": []}')
    (tmp_path / "b.pt.trace.json.gz").write_bytes(b"not gzip")
    (tmp_path / "notes.txt").write_text("not a trace")
    for name in ("a.pt.trace.json", "b.pt.trace.json.gz"):
        with pytest.raises(TraceError):
            load_trace(tmp_path / name)
    summary = summarise(tmp_path)
    assert summary.traces == () and len(summary.errors) == 2 and summary.ops == ()
    assert find_traces(tmp_path / "missing") == []


def test_opstat_times_in_milliseconds():
    stat = OpStat("aten::mm", "cpu_op", 3, 4500.0, 1500.0)
    assert (stat.total_ms, stat.self_ms) == (4.5, 1.5)


def test_profile_sets_vllms_profiler_config_and_server_flag(tmp_path, monkeypatch, tiny_model_path):
    from vlmcap.engine.args import engine_kwargs
    from vlmcap.plugins.registry import get_plugin
    from vlmcap.server.command import ServeOptions, server_command, vllm_parser

    monkeypatch.chdir(tmp_path)
    config = engine_config(tiny_model_path, profile=Path("traces"))
    plugin = get_plugin(config.model, config.model_path)
    kwargs = engine_kwargs(plugin, config)
    assert kwargs["profiler_config"]["profiler"] == "torch"
    assert kwargs["profiler_config"]["torch_profiler_dir"] == str(tmp_path / "traces")
    assert "profiler_config" not in engine_kwargs(plugin, engine_config(tiny_model_path))

    mine = {"profiler_config": {"torch_profiler_with_stack": True}}
    merged = engine_kwargs(plugin, engine_config(tiny_model_path, profile="t", engine_args=mine))
    assert merged["profiler_config"]["torch_profiler_with_stack"] is True  # the user's wins
    assert merged["profiler_config"]["torch_profiler_dir"] == str(tmp_path / "t")

    parser = vllm_parser()
    assert parser is not None
    cmd = server_command(plugin, config, ServeOptions(), parser=parser)
    parsed = parser.parse_args(cmd[3:]).profiler_config
    assert parsed.profiler == "torch" and parsed.torch_profiler_dir == str(tmp_path / "traces")
    assert parsed.torch_profiler_with_stack is False


def test_a_server_that_cannot_profile_leaves_the_run_alone(caplog):
    from tests.client.conftest import free_port

    profiler = ServerProfiler(f"http://127.0.0.1:{free_port()}/v1", steps=2, timeout_s=2)
    with caplog.at_level(logging.WARNING, logger="vlmcap.debug"):
        assert profiler.follow(Progress()) is False
    assert "not profiling" in caplog.text and not profiler.running
    assert profiler.finish() == []
