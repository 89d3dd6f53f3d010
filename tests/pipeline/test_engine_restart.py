"""The real engine dies mid-run: it is restarted, nothing is lost or written twice, and an item
that kills it every time fails alone.

The deaths are real: vLLM's EngineCore process gets SIGKILL (from the test, or from a test
plugin when the poison item's request goes in), and vLLM's own client notices the dead process
and raises from ``step()``, as it does when the engine crashes on a CUDA error or the host's
out-of-memory killer takes it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
from PIL import Image

from tests.runtime.procs import kill_all, snapshot, survivors, wait_for
from vlmcap.config import VLMConfig
from vlmcap.core.recovery import poison_reason
from vlmcap.core.stats import LoopStats
from vlmcap.media.inputs import discover
from vlmcap.pipeline.backend import OfflineBackend
from vlmcap.plugins.tiny import TinyRandomQwen25VLPlugin
from vlmcap.records import Item, Status
from vlmcap.runtime import shutdown_llm
from vlmcap.runtime.processes import engine_cores
from vlmcap.tiny.synthetic import make_dataset

#: Seconds a whole run (three engine starts on a 2-core machine) may take.
RUN_TIMEOUT_S = 420
#: Output tokens of the poison item's request: long enough to be inside when it is killed.
POISON_TOKENS = 1500
#: Seconds after the poison request goes in before its engine is killed.
POISON_DELAY_S = 0.1
#: The mark of the poison item's prompt.
POISON = "POISON"


def rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_killed_engine_is_restarted_and_the_job_finishes_every_item_once(tmp_path, cache_dir):
    src = tmp_path / "src"
    make_dataset(src, n_images=40, n_videos=0, seed=11)
    (src / "ground_truth.jsonl").unlink()
    keys = sorted(f.key for f in discover([src]))
    out = tmp_path / "out"
    env = {**os.environ, "VLMCAP_CACHE_DIR": str(cache_dir), "VLLM_LOGGING_LEVEL": "WARNING"}
    cmd = [sys.executable, "-m", "vlmcap.cli", "caption", str(src), "-o", str(out),
           "--model", "tiny-random-qwen2.5-vl", "--max-output-tokens", "8", "--enforce-eager",
           "--save-every", "1", "--max-inflight", "8", "--engine-restarts", "2"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    job = psutil.Process(proc.pid)
    seen: dict[int, psutil.Process] = {}
    try:
        wait_for(lambda: len(rows(out / "records.jsonl")) >= 3, RUN_TIMEOUT_S, "first rows")
        snapshot(job, seen)
        cores = engine_cores(job)
        assert len(cores) == 1, f"one engine process expected, found {cores}"
        cores[0].send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=RUN_TIMEOUT_S)
        snapshot_after = {p.pid for p in survivors(seen, 10)}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        kill_all(seen)
    log = err.decode(errors="replace")
    assert proc.returncode == 0, log[-3000:]
    written = rows(out / "records.jsonl")
    assert sorted(r["key"] for r in written) == keys  # every item exactly once
    assert all(r["status"] == "ok" for r in written)
    run_logs = "".join(p.read_text(errors="replace") for p in (out / "logs").glob("*.log"))
    assert "restarting the engine (restart 1 of 2)" in log + run_logs
    assert not snapshot_after, f"processes of the first engine left: {snapshot_after}"


class PoisonPlugin(TinyRandomQwen25VLPlugin):
    """The random tiny model, but a request whose prompt holds ``POISON`` kills the engine
    process of the run (``engine()``, set by the test; never the session's shared engine)
    shortly after it goes in, every time it is sent."""

    variant = "tiny-random-poison"
    kills = 0
    engine: Any = None  # () -> the run's current vllm.LLM

    def engine_inputs(self, request: Any, processor: Any) -> Any:
        inputs = super().engine_inputs(request, processor)
        if POISON in request.prompt:
            pids = engine_pids(PoisonPlugin.engine())
            threading.Timer(POISON_DELAY_S, _kill, args=(pids,)).start()
            PoisonPlugin.kills += 1
        return inputs


def engine_pids(llm: Any) -> list[int]:
    """The engine-core process ids of ``llm`` (vLLM's multiprocess client)."""
    manager = llm.llm_engine.engine_core.resources.engine_manager
    return [proc.pid for proc in manager.processes]


def _kill(pids: list[int]) -> None:
    for pid in pids:
        os.kill(pid, signal.SIGKILL)


def test_a_poison_item_fails_alone_and_the_others_finish(tiny_model_path):
    config = VLMConfig(
        model="tiny-random-poison",
        model_path=str(tiny_model_path),
        max_output_tokens=8,
        enforce_eager=True,
        max_inflight=4,
        engine_restarts=3,
        mm_cache=False,
    )
    plugin = PoisonPlugin(str(tiny_model_path))
    items = [Item(f"img{i}", Image.new("RGB", (56, 56), (i * 20, 90, 160))) for i in range(6)]
    poison = Item("poison", Image.new("RGB", (56, 56)), f"{POISON} Describe.", None, POISON_TOKENS)
    items.insert(2, poison)
    backend = OfflineBackend(
        plugin.build_llm(config), plugin, config, rebuild=lambda: plugin.build_llm(config)
    )
    engines = [backend.llm]
    backend.on_restart.append(engines.append)
    PoisonPlugin.engine = lambda: backend.llm
    started = time.monotonic()
    try:
        records = {r.key: r for r in backend.run(items, LoopStats())}
    finally:
        for llm in engines:
            shutdown_llm(llm)
    assert time.monotonic() - started < RUN_TIMEOUT_S
    assert sorted(records) == sorted(item.key for item in items)
    failed = records.pop("poison")
    assert failed.status == Status.FAILED
    assert failed.error is not None and failed.error.startswith(poison_reason(""))
    assert "engine failed" in failed.error
    assert all(r.status == Status.OK and r.text for r in records.values())
    assert PoisonPlugin.kills == 2  # in the batch, then alone: then it is not sent again
    assert len(engines) == 3  # the first and two restarts
