"""The server dies mid-run and a new one starts on the same port: the client waits, retries and
finishes with every item written exactly once. Then Ctrl-C stops the server cleanly.

This test owns the session server for a while: it kills it (SIGKILL to ``vlmcap serve``; vLLM
follows through its parent-death signal) and starts the replacement itself, which the later
tests then use. Only one server runs at any time.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time

import httpx
import openai
import psutil

from tests.client.conftest import API_KEY, client_env
from tests.client.test_server_mode import rows_of
from vlmcap.media.inputs import discover
from vlmcap.tiny.synthetic import make_dataset

#: Seconds the server's processes get to be gone after ``vlmcap serve`` exits.
LEFTOVER_WAIT_S = 10.0
#: Streams running when Ctrl-C comes.
REQUESTS_IN_FLIGHT = 32


def test_client_survives_a_server_restart(server, tmp_path, cache_dir):
    src = tmp_path / "src"
    make_dataset(src, n_images=40, n_videos=4, seed=21, seconds=1.0, fps=8)
    (src / "ground_truth.jsonl").unlink()
    keys = sorted(f.key for f in discover([src]))
    out = tmp_path / "out"
    cmd = [
        sys.executable, "-m", "vlmcap.cli", "caption", str(src), "-o", str(out),
        "--server-url", server.url, "--api-key", API_KEY, "--max-output-tokens", "24",
        "--concurrency", "4", "--retries", "14", "--save-every", "1",
    ]  # fmt: skip
    log_path = tmp_path / "client.log"
    with log_path.open("w") as log:
        client = subprocess.Popen(cmd, env=client_env(cache_dir), stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 300
        while len(rows_of(out)) < 5 and client.poll() is None:
            assert time.monotonic() < deadline, "no progress before the kill"
            time.sleep(0.02)
        assert client.poll() is None, "the client finished before the server could be killed"
        server.kill()
        rows_at_kill = len(rows_of(out))
        killed_at = time.monotonic()
        server.start()  # same port; the client has been retrying meanwhile
        client.wait(timeout=600)
        took = time.monotonic() - killed_at
    finally:
        if client.poll() is None:
            client.kill()
    stderr = log_path.read_text()
    rows = rows_of(out)
    failed = any(r["status"] == "failed" for r in rows)
    assert client.returncode == (1 if failed else 0), stderr[-3000:]
    assert sorted(r["key"] for r in rows) == keys  # none lost, none twice
    assert rows_at_kill < len(keys)
    assert not [r for r in rows if r["status"] == "failed" and "reach" in (r["error"] or "")]
    log = " ".join(stderr.split())  # logs and progress, as the user sees them
    assert "cannot reach the server" in log and "answers again" in log
    # requests lost with the old server are given up at once, not after --request-timeout
    assert took < server.starts[-1] + 60, (took, server.starts)


def test_sigint_stops_the_server_cleanly_even_with_a_request_in_flight(server):
    """Ctrl-C with 32 streams running: every stream ends, vLLM stops, the URL file goes away."""
    assert server.proc is not None and server.url_file.exists()
    family = psutil.Process(server.proc.pid).children(recursive=True)
    assert family, "vlmcap serve has no vLLM child"

    max_tokens = 1900

    async def long_request(running: asyncio.Semaphore) -> str:
        """A streamed request: it counts as running once its first token has come back."""
        client = openai.AsyncOpenAI(
            base_url=server.url + "/v1", api_key=API_KEY, max_retries=0, timeout=120
        )
        tokens, reason, counted = 0, None, False
        try:
            stream = await client.chat.completions.create(
                model="tiny-qwen2.5-vl",
                messages=[{"role": "user", "content": "hi"}],
                max_tokens=max_tokens,
                stream=True,
                extra_body={"ignore_eos": True},
            )
            async for chunk in stream:
                if not counted:
                    running.release()
                    counted = True
                if chunk.choices:
                    tokens += 1
                    reason = chunk.choices[0].finish_reason or reason
            return f"finished: {reason}" if reason else f"cut after {tokens} chunks"
        except (openai.APIConnectionError, httpx.HTTPError):
            return f"connection closed after {tokens} chunks"
        except openai.APIError:
            # a request still being prepared when the server stops is answered 500 ("cannot
            # schedule new futures after shutdown"), a stream may end on an error event: it
            # ended at once, which is what counts
            return "server error"
        finally:
            if not counted:
                running.release()
            await client.close()

    async def scenario() -> tuple[list[str], float]:
        running = asyncio.Semaphore(0)
        tasks = [asyncio.create_task(long_request(running)) for _ in range(REQUESTS_IN_FLIGHT)]
        for _ in tasks:  # every stream has its first token: all are inside the engine
            await asyncio.wait_for(running.acquire(), timeout=60)
        t0 = time.monotonic()
        server.proc.send_signal(signal.SIGINT)
        outcomes = await asyncio.gather(*tasks)
        return outcomes, time.monotonic() - t0

    outcomes, took = asyncio.run(scenario())
    assert server.proc.wait(timeout=60) == 0
    # none hangs: every stream ends, whether vLLM aborts it, its connection is cut, or the
    # server drains it to its token limit before it exits (which of these happens depends on how
    # fast the machine generates: on a fast one all 32 finish before the engine stops)
    assert took < 30, (took, outcomes)
    assert not server.url_file.exists()
    # the vLLM processes and the child guard (which leaves once its job is done) are gone
    # within a few seconds
    _, alive = psutil.wait_procs(family, timeout=LEFTOVER_WAIT_S)
    assert not [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert "vLLM server stopped" in server.log_tail()
