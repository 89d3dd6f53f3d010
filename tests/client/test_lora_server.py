"""``vlmcap serve`` of a plugin whose requests run with a LoRA adapter (real server).

The server registers the adapter under the plugin's variant (``--lora-modules``) and the base
weights as ``<variant>-base``; a client with ``--served-model auto`` picks the adapter, so
captions through the server run with it as they do offline.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.client.conftest import API_KEY, LiveServer, running_server
from tests.client.test_server_mode import through_server
from tests.conftest import engine_config
from vlmcap.client.connect import connect
from vlmcap.client.openai_client import ClientConfig
from vlmcap.media.inputs import discover
from vlmcap.plugins.registry import get_plugin
from vlmcap.tiny.synthetic import make_dataset

pytestmark = pytest.mark.engine

VARIANT = "tiny-lora-qwen2.5-vl"


@pytest.fixture(scope="module")
def lora_server(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("serve-lora")
    path = Path(get_plugin(VARIANT).model_path)
    yield from running_server(path, cache_dir, root, model=VARIANT)


def test_the_adapter_is_served_under_the_variant_and_the_base_beside_it(lora_server):
    reply = httpx.get(
        f"{lora_server.url}/v1/models", headers={"Authorization": f"Bearer {API_KEY}"}
    )
    cards = {m["id"]: m for m in reply.json()["data"]}
    assert set(cards) == {VARIANT, f"{VARIANT}-base"}
    assert cards[VARIANT]["parent"] == f"{VARIANT}-base"


def test_the_adapter_changes_what_the_server_writes(lora_server):
    client = openai.OpenAI(base_url=lora_server.url + "/v1", api_key=API_KEY)
    texts = {}
    for model in (VARIANT, f"{VARIANT}-base"):
        reply = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "Describe the picture."}],
            max_tokens=12,
            temperature=0,
            extra_body={"ignore_eos": True},
        )
        texts[model] = reply.choices[0].message.content
    client.close()
    assert texts[VARIANT] != texts[f"{VARIANT}-base"]


def test_a_caption_run_picks_the_adapter(lora_server, tmp_path):
    src = tmp_path / "src"
    make_dataset(src, n_images=3, n_videos=1, seed=17, seconds=1.0, fps=8)
    (src / "ground_truth.jsonl").unlink()
    path = get_plugin(VARIANT).model_path
    config = engine_config(Path(path), model=VARIANT, model_path=path, max_output_tokens=8)
    settings = connect(ClientConfig(url=lora_server.url, api_key=API_KEY), config)
    assert settings.model == VARIANT  # auto: the adapter, not the base weights
    out = tmp_path / "out"
    summary = through_server(lora_server, config, discover([src]).files, out)
    rows = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert summary.failed == 0 and len(rows) == 4 and all(r["caption"] for r in rows)
