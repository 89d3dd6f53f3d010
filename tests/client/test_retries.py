"""The client's policy against a scripted HTTP server: what is retried, what fails an item,
what stops the run, and that ``concurrency`` requests really are in flight at once.

The scripted server answers like vLLM's OpenAI server (same JSON shapes) so the policy can be
checked status by status; the real server is exercised in ``test_server_mode.py``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from PIL import Image

from tests.client.conftest import free_port
from vlmcap.client import ServedModelError, ServerAuthError, ServerUnavailableError
from vlmcap.client.openai_client import ChatReply, ClientConfig, RequestFailed, ServerClient
from vlmcap.config import VLMConfig
from vlmcap.core import Completion, Lifecycle, LoopStats
from vlmcap.pipeline.backend import ServerBackend
from vlmcap.plugins.registry import get_plugin
from vlmcap.records import Item, Record, Status

Reply = tuple[int, dict[str, Any], dict[str, str]]  # status, JSON body, headers


def completion(text: str = "a red circle", finish: str = "stop") -> Reply:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish,
            }
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
    }
    return 200, body, {}


def error(status: int, message: str = "nope", headers: dict[str, str] | None = None) -> Reply:
    body = {"error": {"message": message, "type": "Error", "code": status}}
    return status, body, headers or {}


@dataclass
class Scripted:
    """A tiny HTTP server: ``chat`` decides each chat answer from the request count."""

    chat: Callable[[int, dict[str, Any]], Reply]
    models: list[str] = field(default_factory=lambda: ["m"])
    delay_s: float = 0.0
    calls: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)
    inflight: int = 0
    peak: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    httpd: ThreadingHTTPServer | None = None


def serve(script: Scripted) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def reply(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            data = [
                {"id": m, "object": "model", "created": 0, "owned_by": "t"} for m in script.models
            ]
            self.reply(200, {"object": "list", "data": data}, {})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with script.lock:
                script.calls += 1
                n = script.calls
                script.bodies.append(body)
                script.inflight += 1
                script.peak = max(script.peak, script.inflight)
            time.sleep(script.delay_s)
            with script.lock:
                script.inflight -= 1
            self.reply(*script.chat(n, body))

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.block_on_close = False  # a handler still sleeping must not hold up the test
    script.httpd = httpd
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def scripted() -> Iterator[Callable[..., tuple[Scripted, str]]]:
    servers: list[Iterator[str]] = []

    def make(chat: Callable[[int, dict[str, Any]], Reply], **kw: Any) -> tuple[Scripted, str]:
        script = Scripted(chat, **kw)
        gen = serve(script)
        servers.append(gen)
        return script, next(gen)

    yield make
    for gen in servers:
        next(gen, None)


def settings(url: str, **kw: Any) -> ClientConfig:
    values: dict[str, Any] = {"retries": 3, "backoff_s": 0.01, "backoff_max_s": 0.05}
    values.update(kw)
    return ClientConfig(url=url, model="m", **values)


def chat(cfg: ClientConfig, **kw: Any) -> ChatReply:
    async def go() -> ChatReply:
        client = ServerClient(cfg)
        try:
            sampling = {"max_tokens": 8, "extra_body": {"repetition_penalty": 1.05}}
            return await client.chat([{"role": "user", "content": "hi"}], sampling, model="m", **kw)
        finally:
            await client.close()

    return asyncio.run(go())


def test_5xx_and_429_are_retried_then_succeed(scripted):
    answers = [error(503), error(429, headers={"Retry-After": "0"}), completion()]
    script, url = scripted(lambda n, body: answers[n - 1])
    reply = chat(settings(url))
    assert script.calls == 3 and reply.attempts == 3
    assert (reply.text, reply.finish_reason) == ("a red circle", "stop")
    assert (reply.prompt_tokens, reply.completion_tokens) == (11, 3)
    assert script.bodies[0]["repetition_penalty"] == 1.05  # extra_body reaches the server


def test_an_aborted_reply_is_retried_not_written_as_a_failure(scripted):
    answers = [completion("", "abort"), completion("a blue star")]
    script, url = scripted(lambda n, body: answers[min(n, 2) - 1])
    reply = chat(settings(url))
    assert (reply.text, reply.finish_reason, script.calls) == ("a blue star", "stop", 2)
    script, url = scripted(lambda n, body: completion("", "abort"))
    with pytest.raises(RequestFailed, match=r"aborted the request .*\(2 attempts\)"):
        chat(settings(url, retries=1))


def test_5xx_fails_the_item_once_retries_run_out(scripted):
    script, url = scripted(lambda n, body: error(500, "engine hiccup"))
    with pytest.raises(RequestFailed, match=r"server error 500 after 3 attempts: engine hiccup"):
        chat(settings(url, retries=2))
    assert script.calls == 3


@pytest.mark.parametrize("status", [400, 413, 422])
def test_other_4xx_fail_the_item_without_retry(scripted, status):
    script, url = scripted(lambda n, body: error(status, "prompt too long"))
    with pytest.raises(RequestFailed, match=rf"refused the request \({status}\): prompt too long"):
        chat(settings(url))
    assert script.calls == 1


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_stops_at_once(scripted, status):
    script, url = scripted(lambda n, body: error(status, "Unauthorized"))
    with pytest.raises(ServerAuthError, match="--api-key"):
        chat(settings(url))
    assert script.calls == 1


def test_unreachable_server_stops_the_run_after_the_retries():
    cfg = settings(f"http://127.0.0.1:{free_port()}", retries=2)
    t0 = time.monotonic()
    with pytest.raises(ServerUnavailableError, match=r"cannot reach .* 3 attempts"):
        chat(cfg)
    assert time.monotonic() - t0 < 10


def test_a_slow_answer_fails_the_item_as_timed_out(scripted):
    script, url = scripted(lambda n, body: completion(), delay_s=1.0)
    with pytest.raises(RequestFailed, match=r"no answer within 0.2 s \(2 attempts\)"):
        chat(settings(url, retries=1, request_timeout=0.2))
    assert script.calls == 2


def test_requests_to_a_server_that_stopped_listening_are_given_up(scripted):
    script, url = scripted(lambda n, body: completion(), delay_s=30)
    cfg = settings(url, retries=1, watch_interval_s=0.1)

    async def go() -> ChatReply:
        client = ServerClient(cfg)
        try:
            sampling = {"max_tokens": 8}
            task = asyncio.create_task(
                client.chat([{"role": "user", "content": "hi"}], sampling, model="m")
            )
            await asyncio.sleep(0.3)
            assert script.httpd is not None
            script.httpd.shutdown()  # stop listening; the accepted request hangs on
            script.httpd.socket.close()
            return await task
        finally:
            await client.close()

    t0 = time.monotonic()
    with pytest.raises(ServerUnavailableError, match="cannot reach"):
        asyncio.run(go())
    assert time.monotonic() - t0 < 10  # not the 30 s the lost request would hang


def test_refused_media_options_are_dropped_once_and_the_request_retried(scripted):
    def answer(n: int, body: dict[str, Any]) -> Reply:
        if "media_io_kwargs" in body:
            return error(400, "Per-request media_io_kwargs are disabled by default")
        return completion()

    script, url = scripted(answer)
    reply = chat(settings(url), media_io_kwargs={"video": {"fps": 2.0}})
    assert reply.text == "a red circle"
    assert script.calls == 2 and "media_io_kwargs" not in script.bodies[1]


def resolve(url: str, model: str) -> str:
    async def go() -> str:
        client = ServerClient(ClientConfig(url=url + "/v1/", model=model))
        try:
            return await client.resolve_model()
        finally:
            await client.close()

    return asyncio.run(go())


def test_served_model_auto_picks_the_only_one_and_checks_names(scripted):
    _, url = scripted(lambda n, body: completion(), models=["tiny"])
    assert resolve(url, "auto") == "tiny"
    assert resolve(url, "tiny") == "tiny"
    with pytest.raises(ServedModelError, match=r"does not serve 'other' \(it serves 'tiny'\)"):
        resolve(url, "other")
    _, url2 = scripted(lambda n, body: completion(), models=["a", "b"])
    with pytest.raises(ServedModelError, match="--served-model NAME"):
        resolve(url2, "auto")


def record_for(stage: Status = Status.STAGE1) -> Record:
    record = Record(key="k", request_id="r")
    record.status = stage
    return record


@pytest.mark.parametrize(
    ("finish", "text", "status", "error_part"),
    [
        ("stop", " a red circle ", Status.OK, None),
        ("length", "a red", Status.OK, None),
        ("content_filter", "", Status.FAILED, "blocked by content filter"),
        ("abort", "", Status.FAILED, "without text (finish_reason=abort)"),
        ("stop", "   ", Status.FAILED, "empty text"),
    ],
)
def test_replies_map_to_records_as_offline_outputs_do(finish, text, status, error_part):
    lifecycle = Lifecycle(get_plugin("qwen2.5-vl"), VLMConfig(stage2=False))
    record = record_for()
    more = lifecycle.settle(record, Completion(text, finish, 7, 2))
    assert not more and record.status == status
    assert (record.prompt_tokens, record.output_tokens) == (7, 2)
    if status == Status.OK:
        assert record.text == text.strip()
        assert record.truncated == (finish == "length")
    else:
        assert record.text is None and error_part in (record.error or "")


def test_stage_two_reply_follows_a_stage_one_caption():
    lifecycle = Lifecycle(get_plugin("qwen2.5-vl"), VLMConfig(stage2=True))
    record = record_for()
    assert lifecycle.settle(record, Completion("draft", "length", 5, 4))
    assert record.stage1_text == "draft" and record.status == Status.STAGE1
    record.status = Status.STAGE2
    assert not lifecycle.settle(record, Completion("final", "stop", 9, 3))
    assert (record.text, record.finish_reason, record.stage1_finish_reason) == (
        "final",
        "stop",
        "length",
    )
    assert record.truncated and (record.prompt_tokens, record.output_tokens) == (14, 7)


def items(n: int) -> list[Item]:
    return [Item(key=f"img{i}.png", media=Image.new("RGB", (16, 16), "red")) for i in range(n)]


def test_backend_keeps_concurrency_requests_in_flight_and_yields_each_item_once(scripted):
    script, url = scripted(lambda n, body: completion(f"caption {n}"), delay_s=0.2)
    config = VLMConfig(model="qwen2.5-vl", max_output_tokens=8)
    backend = ServerBackend(settings(url, concurrency=4), get_plugin("qwen2.5-vl"), config)
    stats = LoopStats()
    records = list(backend.run(items(12), stats))
    assert sorted(r.key for r in records) == sorted(f"img{i}.png" for i in range(12))
    assert all(r.status == Status.OK for r in records)
    assert script.peak == 4 and stats.peak_inflight == 4 and stats.requests == 12 == script.calls
    # the same statistics as offline: requests inside on average, replies; no engine steps
    assert stats.replies == 12 and stats.engine_steps is None
    assert 2 < stats.mean_inflight <= 4 and stats.busy_fraction > 0.5
    body = script.bodies[0]
    assert body["model"] == "m" and body["max_tokens"] == 8 and body["seed"] == 0
    assert body["messages"][-1]["content"][0]["type"] == "image_url"


def test_backend_stops_the_run_when_the_key_is_refused(scripted):
    _, url = scripted(lambda n, body: error(401, "bad key"))
    backend = ServerBackend(settings(url), get_plugin("qwen2.5-vl"), VLMConfig())
    with pytest.raises(ServerAuthError):
        list(backend.run(items(3), LoopStats()))


def test_backend_fails_bad_items_and_goes_on(scripted):
    _, url = scripted(lambda n, body: completion())
    backend = ServerBackend(settings(url), get_plugin("qwen2.5-vl"), VLMConfig())
    bad = Item(key="bad", media="not an image")
    records = {r.key: r for r in backend.run([*items(2), bad], LoopStats())}
    assert records["bad"].status == Status.FAILED
    assert "cannot build request" in (records["bad"].error or "")
    assert records["img0.png"].status == records["img1.png"].status == Status.OK
