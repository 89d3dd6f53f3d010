"""Every shipped family through a real ``vlmcap serve`` on its tiny model.

One server per family (module-scoped, one at a time, on a free loopback port): the client
captions pictures and clips, runs stage 2 and answers QA questions (two pictures in the pair
questions) through the same ``ModelRequest`` the offline tests use. A family that takes a clip
as pictures gets its frames sent as images; ``tiny-cosmos-reason2`` is a second plugin on the
Qwen3-VL server (its prompts, its decoding).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.client.conftest import API_KEY, LiveServer, running_server
from tests.client.test_server_mode import through_server
from tests.conftest import engine_config
from vlmcap.client.connect import connect
from vlmcap.client.openai_client import ClientConfig
from vlmcap.media.inputs import discover
from vlmcap.pipeline.backend import ServerBackend
from vlmcap.pipeline.qa import answer_questions
from vlmcap.plugins.registry import get_plugin
from vlmcap.qa.dataset import load_questions
from vlmcap.qa.results import metrics_path
from vlmcap.tiny.qa_set import write_question_set
from vlmcap.tiny.synthetic import make_dataset

pytestmark = pytest.mark.engine

SERVED = ("tiny-qwen3-vl", "tiny-gemma3", "tiny-smolvlm")
#: Plugins run against each served family: its own, plus others on the same architecture.
CLIENT_PLUGINS = {"tiny-qwen3-vl": ("tiny-qwen3-vl", "tiny-cosmos-reason2")}


def config_for(variant: str, **overrides: Any) -> Any:
    path = get_plugin(variant).model_path
    return engine_config(Path(path), model=variant, model_path=path, **overrides)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("family-media")
    make_dataset(root, n_images=3, n_videos=2, seed=13, seconds=1.0, fps=8)
    (root / "ground_truth.jsonl").unlink()
    return root


@pytest.fixture(scope="module", params=SERVED)
def family_server(
    request: pytest.FixtureRequest, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    variant: str = request.param
    root = tmp_path_factory.mktemp(f"serve-{variant}")
    yield from running_server(Path(get_plugin(variant).model_path), cache_dir, root, model=variant)


def test_pictures_and_clips_are_captioned_through_the_server(family_server, media, tmp_path):
    prompt_tokens: dict[str, dict[str, int]] = {}
    for variant in CLIENT_PLUGINS.get(family_server.model, (family_server.model,)):
        out = tmp_path / variant
        files = discover([media]).files
        summary = through_server(family_server, config_for(variant), files, out)
        rows = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
        assert summary.failed == 0 and summary.ok == len(rows) == len(files), rows
        kinds = {r["kind"] for r in rows}
        assert kinds == {"image", "video"}
        assert all(r["caption"] and r["prompt_tokens"] > 0 for r in rows)
        prompt_tokens[variant] = {r["key"]: r["prompt_tokens"] for r in rows}
    if "tiny-cosmos-reason2" in prompt_tokens:  # its system turn and reasoning instruction
        plain, reasoning = prompt_tokens["tiny-qwen3-vl"], prompt_tokens["tiny-cosmos-reason2"]
        assert all(reasoning[key] > plain[key] for key in plain)


def test_stage_two_runs_through_the_server(family_server, media, tmp_path):
    variant = family_server.model
    files = discover([media]).files[:2]
    summary = through_server(family_server, config_for(variant, stage2=True), files, tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "records.jsonl").read_text().splitlines()]
    assert summary.failed == 0, rows
    assert all(r["stage1_caption"] and r["caption"] for r in rows)


def test_qa_questions_with_two_pictures_through_the_server(family_server, tmp_path):
    variant = family_server.model
    root = tmp_path / "qa"
    questions = load_questions(write_question_set(root, n_images=4, n_pairs=2, seed=7), root)
    config = config_for(variant, max_output_tokens=12)
    plugin = get_plugin(variant, config.model_path)
    settings = connect(ClientConfig(url=family_server.url, api_key=API_KEY, concurrency=4), config)
    backend = ServerBackend(settings, plugin, config)
    summary = answer_questions(questions.questions, backend, plugin, config, tmp_path)
    metrics = json.loads(metrics_path(tmp_path, variant).read_text())
    assert metrics["total_questions"] == len(questions.questions) == summary.ok + summary.failed
    assert summary.ok > len(questions.questions) // 2
