"""Health snapshots of the session's real ``vlmcap serve`` (``/metrics``, ``/health``), and the
``vlmcap health`` / ``vlmcap top`` commands against it."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from typing import Any

import httpx
import openai
import psutil
import pytest

from tests.client.conftest import API_KEY, MODEL, client_env, free_port
from vlmcap.monitor import HealthSnapshot, ServerSource, ServerUnreachable
from vlmcap.monitor.process import engine_processes
from vlmcap.monitor.prometheus import parse_text
from vlmcap.monitor.vllm_metrics import KV_CACHE_USAGE, engine_readings, not_exposed
from vlmcap.runtime.processes import is_vllm

CONCURRENT = 32
#: Tokens per long request: the batch would run for many seconds on the tiny model (it is
#: cancelled as soon as a snapshot saw it).
LONG_TOKENS = 1900
SHORT_TOKENS = 8
#: Seconds to wait for a busy snapshot, or for the server to be idle again.
WATCH_S = 60.0
CLI_TIMEOUT_S = 60.0
#: Rows x columns of the pseudo-terminal ``vlmcap top`` draws in.
PTY_SIZE = (60, 160)


def test_snapshot_of_an_idle_server_has_the_v1_fields(server):
    with ServerSource(server.url + "/v1") as source:  # a /v1 base URL works too
        snap = source.snapshot(strict=True)
    assert snap.source == server.url
    assert snap.healthy is True
    assert snap.requests_running is not None and snap.requests_waiting is not None
    assert snap.kv_cache_usage_pct is not None and 0 <= snap.kv_cache_usage_pct <= 100
    assert snap.preemptions is not None and snap.items_done is not None
    assert snap.requests_swapped is None and "V1" in snap.notes["requests_swapped"]
    assert snap.engine_processes is None and snap.notes["engine_processes"]
    assert snap.gpus == [] and snap.notes["gpus"]  # loopback: this machine's (none)
    for name in snap.missing():
        assert snap.notes.get(name), name
    json.dumps(snap.to_dict())


def _busy(snap: HealthSnapshot) -> bool:
    return (snap.requests_running or 0) + (snap.requests_waiting or 0) > 0


def _chat(client: openai.AsyncOpenAI, i: int, max_tokens: int) -> Any:
    return client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": f"describe picture {i}"}],
        max_tokens=max_tokens,
        extra_body={"ignore_eos": True},
    )


async def _stream(client: openai.AsyncOpenAI, i: int, max_tokens: int) -> int:
    """A streamed chat, read to its end; its chunk count. (Streamed: vLLM's API server then
    writes to the socket as tokens come, which lets it answer /metrics meanwhile; with
    non-streamed long requests a warm server answered no HTTP request until they were done.)"""
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": f"describe picture {i}"}],
        max_tokens=max_tokens,
        extra_body={"ignore_eos": True},
        stream=True,
    )
    chunks = 0
    async for _ in stream:
        chunks += 1
    return chunks


async def _watch_long_requests(source: ServerSource) -> list[HealthSnapshot]:
    """Snapshots while long requests run, until one is busy and a rate showed tokens; the
    requests are then cancelled (the server aborts them)."""
    client = openai.AsyncOpenAI(
        base_url=source.name + "/v1", api_key=API_KEY, max_retries=0, timeout=300
    )
    tasks = [asyncio.create_task(_stream(client, i, LONG_TOKENS)) for i in range(CONCURRENT)]
    seen: list[HealthSnapshot] = []
    deadline = time.monotonic() + WATCH_S
    try:
        while time.monotonic() < deadline and not all(t.done() for t in tasks):
            seen.append(await asyncio.to_thread(source.snapshot))
            if any(map(_busy, seen)) and any((s.output_tokens_per_s or 0) > 0 for s in seen):
                break
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.close()
    return seen


def _drained(source: ServerSource) -> HealthSnapshot:
    deadline = time.monotonic() + WATCH_S
    snap = source.snapshot(strict=True)
    while _busy(snap) and time.monotonic() < deadline:
        time.sleep(0.2)
        snap = source.snapshot(strict=True)
    return snap


def test_snapshot_while_requests_are_in_flight(server):
    with ServerSource(server.url) as source:
        source.snapshot(strict=True)  # the rates' starting point
        seen = asyncio.run(_watch_long_requests(source))
        idle = _drained(source)
    busy = [s for s in seen if _busy(s)]
    assert busy, [s.summary() for s in seen[:5]]
    assert max(s.kv_cache_usage_pct or 0.0 for s in busy) > 0
    assert any((s.output_tokens_per_s or 0) > 0 for s in seen)  # rates between snapshots
    assert not _busy(idle), idle.summary()  # the cancelled requests were aborted


def test_finished_requests_are_counted(server):
    async def short_requests() -> None:
        client = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key=API_KEY, max_retries=0)
        try:
            await asyncio.gather(*(_chat(client, i, SHORT_TOKENS) for i in range(CONCURRENT)))
        finally:
            await client.close()

    with ServerSource(server.url) as source:
        before = source.snapshot(strict=True)
        asyncio.run(short_requests())
        after = source.snapshot(strict=True)
    assert before.items_done is not None and after.items_done is not None
    assert after.items_done - before.items_done >= CONCURRENT  # vllm:request_success
    assert after.items_per_s is not None and after.items_per_s > 0
    assert after.mean_time_to_first_token_s is not None
    assert after.mean_time_to_first_token_s > 0


def test_the_server_processes_are_not_counted_as_this_process_engine(server):
    """vlmcap serve is this test process's child, yet its vLLM belongs to another job."""
    assert server.proc is not None
    theirs = {p.pid for p in psutil.Process(server.proc.pid).children(recursive=True)}
    assert any(is_vllm(psutil.Process(pid)) for pid in theirs)
    assert not theirs & {p.pid for p in engine_processes()}


def test_a_renamed_metric_in_a_real_scrape_is_none_with_a_note(server):
    text = httpx.get(server.url + "/metrics", timeout=10).text
    assert KV_CACHE_USAGE in text
    renamed = text.replace(KV_CACHE_USAGE, "vllm:kv_cache_usage_ratio")
    readings = engine_readings(parse_text(renamed))
    assert readings.values["kv_cache_usage_pct"] is None
    assert readings.notes["kv_cache_usage_pct"] == not_exposed(KV_CACHE_USAGE)
    assert readings.values["requests_running"] is not None


def test_an_unreachable_server():
    url = f"http://127.0.0.1:{free_port()}"
    with ServerSource(url, timeout_s=1.0) as source:
        snap = source.snapshot()
        with pytest.raises(ServerUnreachable, match="cannot read"):
            source.snapshot(strict=True)
    assert snap.requests_running is None and "cannot read" in snap.notes["requests_running"]
    assert snap.healthy is None and "cannot reach" in snap.notes["healthy"]
    assert snap.ram_used_bytes is not None  # this machine is still measured


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vlmcap.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


def test_health_command_json_and_table(server, cache_dir):
    env = client_env(cache_dir)
    done = _cli("health", "--server-url", server.url, "--json", env=env)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["healthy"] is True and data["source"] == server.url
    assert isinstance(data["requests_running"], int)
    assert isinstance(data["kv_cache_usage_pct"], float)
    assert data["requests_swapped"] is None and data["notes"]["requests_swapped"]
    table = _cli("health", "--metrics-url", server.url + "/metrics", env=env)
    assert table.returncode == 0, table.stderr
    assert "requests running" in table.stdout and "KV cache used" in table.stdout


def test_health_command_errors(cache_dir):
    env = client_env(cache_dir)
    down = _cli("health", "--server-url", f"http://127.0.0.1:{free_port()}", env=env)
    assert down.returncode == 1
    assert "cannot read" in down.stderr and "Traceback" not in down.stderr
    usage = _cli("health", env=env)
    assert usage.returncode == 2 and "--server-url" in usage.stderr


def _run_in_pty(
    args: list[str], env: dict[str, str], interrupt_after: str | None = None
) -> tuple[int, str]:
    """Run ``vlmcap ARGS`` in a pseudo-terminal; type Ctrl-C once ``interrupt_after`` shows."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: a terminal of a known size, then vlmcap
        try:
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", *PTY_SIZE, 0, 0))
            os.execve(sys.executable, [sys.executable, "-m", "vlmcap.cli", *args], env)
        finally:
            os._exit(127)
    output = b""
    deadline = time.monotonic() + CLI_TIMEOUT_S
    interrupted = False
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
            if interrupt_after and not interrupted and interrupt_after.encode() in output:
                os.write(fd, b"\x03")  # Ctrl-C, through the terminal's line discipline
                interrupted = True
        else:
            os.kill(pid, signal.SIGKILL)
            pytest.fail(f"vlmcap {' '.join(args)} did not end:\n{output.decode(errors='replace')}")
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


def test_top_refreshes_in_a_terminal_and_stops_after_iterations(server, cache_dir):
    env = {**client_env(cache_dir), "TERM": "xterm-256color"}
    env.pop("COLUMNS", None)
    code, output = _run_in_pty(
        ["top", "--server-url", server.url, "--interval", "0.3", "--iterations", "2"], env
    )
    assert code == 0, output
    assert output.count("requests running") >= 2, output
    assert server.url in output and "Traceback" not in output


def test_top_stops_cleanly_on_ctrl_c(server, cache_dir):
    env = {**client_env(cache_dir), "TERM": "xterm-256color"}
    code, output = _run_in_pty(
        ["top", "--server-url", server.url, "--interval", "0.3"], env, "requests running"
    )
    assert code == 0, output
    assert "stopped" in output and "Traceback" not in output and "KeyboardInterrupt" not in output


def test_top_keeps_going_while_the_server_is_away(cache_dir):
    env = {**client_env(cache_dir), "TERM": "xterm-256color"}
    url = f"http://127.0.0.1:{free_port()}"
    code, output = _run_in_pty(
        ["top", "--server-url", url, "--interval", "0.2", "--iterations", "2", "--timeout", "0.5"],
        env,
    )
    assert code == 0, output
    assert "cannot read" in output
