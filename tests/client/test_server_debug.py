"""Request dumps, logprobs and replays through the session's real ``vlmcap serve``."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from rich.console import Console

from tests.client.conftest import API_KEY, LiveServer
from tests.conftest import engine_config
from tests.debug.test_request_dump import dumps
from vlmcap.cli.replay import DIFFERS, REPRODUCED, run_replay
from vlmcap.client.connect import connect
from vlmcap.client.openai_client import ClientConfig
from vlmcap.core.stats import LoopStats
from vlmcap.debug.logprobs import LOGPROBS_FILE
from vlmcap.debug.request_dump import DEBUG_DIR, RequestDebugger
from vlmcap.options import ClientOptions
from vlmcap.pipeline.backend import ServerBackend
from vlmcap.plugins.registry import get_plugin
from vlmcap.records import Item

K = 2


def items() -> list[Item]:
    rng = np.random.default_rng(11)
    return [
        Item(f"srv{i}.png", Image.fromarray(rng.integers(0, 255, (56, 84, 3), dtype=np.uint8)))
        for i in range(3)
    ]


def server_run(server: LiveServer, config: Any, out: Path) -> tuple[ServerBackend, list[Any]]:
    plugin = get_plugin(config.model, config.model_path)
    settings = connect(ClientConfig(url=server.url, api_key=API_KEY, concurrency=2), config)
    debugger = RequestDebugger.from_config(config, plugin, out)
    backend = ServerBackend(settings, plugin, config, debugger=debugger)
    return backend, list(backend.run(items(), LoopStats()))


def greedy(tiny_model_path: Path, **overrides: Any) -> Any:
    return engine_config(tiny_model_path, temperature=0.0, top_p=1.0, **overrides)


def console() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, width=200, color_system=None), buf


def test_server_dump_holds_messages_prompt_and_reply(server, tiny_model_path, tmp_path):
    config = greedy(tiny_model_path, debug_first=1, logprobs=K, logprobs_first=2)
    _, records = server_run(server, config, tmp_path)
    assert len(records) == 3
    [(key, stage)] = list(dumps(tmp_path))
    dump = dumps(tmp_path)[(key, stage)]
    assert dump["transport"] == "server" and stage == "stage1"
    [user] = dump["chat_messages"]
    url = next(p["image_url"]["url"] for p in user["content"] if p["type"] == "image_url")
    assert url.startswith("<data:image/png;base64, 1 part, ")  # described, not the bytes
    assert dump["_path"].stat().st_size < 64_000
    assert "<|image_pad|>" in dump["prompt"]  # rendered here with the processor
    assert dump["output"]["server_prompt"] == dump["prompt"]  # what the server rendered
    reply = dump["output"]["reply"]
    assert reply["object"] == "chat.completion" and reply["choices"][0]["message"]
    assert dump["output"]["token_ids"] == reply["choices"][0]["token_ids"] != []
    assert dump["media"]["server_encoding"]["image_format"] == "png"
    engine_side = dump["media"]["items"][0]["engine"]
    assert (engine_side["shape"], engine_side["dtype"]) == ([56, 84, 3], "uint8")
    rows = [json.loads(line) for line in (tmp_path / DEBUG_DIR / LOGPROBS_FILE).open()]
    assert len(rows) == 2  # the first two requests only
    for row in rows:
        assert row["tokens"] and all(len(t["top"]) == K for t in row["tokens"])
        assert all(t["token_id"] is not None for t in row["tokens"])  # from return_token_ids


def test_replay_through_the_server_reproduces_and_spots_an_edit(server, tiny_model_path, tmp_path):
    config = greedy(tiny_model_path, debug_first=1)
    server_run(server, config, tmp_path)
    [dump] = dumps(tmp_path).values()
    path = dump["_path"]
    client = ClientOptions(server_url=server.url, api_key=API_KEY)
    out, buf = console()
    assert run_replay(path, greedy(tiny_model_path), client, console=out) == REPRODUCED
    assert "reproduced" in buf.getvalue()
    # (No offline replay of this dump here, so that the client tests start no offline engine;
    # tests/debug replays offline dumps.)
    data = json.loads(path.read_text())
    data["output"]["text"] += " edited"
    path.write_text(json.dumps(data))
    out, buf = console()
    assert run_replay(path, greedy(tiny_model_path), client, console=out) == DIFFERS
    assert "differs" in buf.getvalue()
