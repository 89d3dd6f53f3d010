"""psutil readings: this process, its vLLM engine processes, asyncio tasks."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading

import psutil
import pytest

from vlmcap.monitor.process import engine_processes, pending_tasks, process_readings


def test_asyncio_tasks_of_a_loop_on_another_thread():
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    release: asyncio.Event | None = None

    async def main() -> None:
        nonlocal release
        release = asyncio.Event()
        waiters = [asyncio.create_task(release.wait()) for _ in range(5)]
        ready.set()
        await asyncio.gather(*waiters)

    thread = threading.Thread(target=lambda: loop.run_until_complete(main()))
    thread.start()
    try:
        assert ready.wait(5)
        assert pending_tasks(loop) == 6  # five waiters and main
        readings = process_readings(loop)
        assert readings.values["asyncio_tasks"] == 6
    finally:
        assert release is not None
        loop.call_soon_threadsafe(release.set)
        thread.join(5)
        loop.close()
    closed = process_readings(loop)
    assert closed.values["asyncio_tasks"] is None and "closed" in closed.notes["asyncio_tasks"]


def test_other_children_are_not_vllm_processes():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        psutil.Process(child.pid).cmdline()  # started
        assert child.pid not in {p.pid for p in engine_processes()}
    finally:
        child.terminate()
        child.wait(10)


@pytest.mark.engine
def test_the_offline_engine_processes_are_found(engine):
    found = engine_processes()
    names = " ".join(p.name for p in found)
    assert "VLLM::EngineCore" in names, found
    assert all(p.rss_bytes > 0 for p in found)
    readings = process_readings()
    listed = {p.pid for p in readings.values["engine_processes"]}
    assert {p.pid for p in found if p.name == "VLLM::EngineCore"} <= listed
