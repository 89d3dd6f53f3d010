"""Request dumps (``--debug-request``, ``--debug-first``) written by a real offline run."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from tests.conftest import engine_config
from tests.engine.test_offline import mixed_items
from vlmcap.core import Lifecycle, Sampling
from vlmcap.debug.request_dump import DEBUG_DIR, MEDIA_SUFFIX, RequestDebugger, dump_name
from vlmcap.engine import caption_items
from vlmcap.media.frames import video_to_uint8_thwc
from vlmcap.pipeline.backend import OfflineBackend
from vlmcap.records import Item, Status


def dumps(out: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(key, stage) -> dump of every JSON file in ``out``'s debug folder."""
    found = {}
    for path in sorted((out / DEBUG_DIR).glob("*.json")):
        data = json.loads(path.read_text())
        data["_path"] = path
        found[(data["key"], data["stage"])] = data
    return found


def run(engine: Any, config: Any, items: list[Item], out: Path) -> list[Any]:
    plugin, llm = engine
    debugger = RequestDebugger.from_config(config, plugin, out)
    assert debugger is not None
    backend = OfflineBackend(llm, plugin, config, debugger=debugger)
    from vlmcap.core.stats import LoopStats

    return list(backend.run(items, LoopStats()))


def test_dump_of_a_chosen_key_holds_prompt_media_sampling_and_output(
    engine, tiny_model_path, tmp_path
):
    plugin, _ = engine
    items = mixed_items(2, 1)
    video = items[2]
    config = engine_config(tiny_model_path, debug_request=[video.key])
    run(engine, config, items, tmp_path)
    found = dumps(tmp_path)
    assert list(found) == [(video.key, "stage1")]  # only the chosen key
    dump = found[(video.key, "stage1")]
    assert dump["transport"] == "engine" and dump["model"] == plugin.variant
    # the exact prompt: the chat template's output, with the video placeholder and prompt
    request = plugin.make_request(plugin.prompts["default"], video.media, fps=video.fps)
    assert dump["prompt"] == plugin.engine_inputs(request, plugin.processor())["prompt"]
    assert "<|vision_start|><|video_pad|><|vision_end|>" in dump["prompt"]
    assert plugin.prompts["default"] in dump["prompt"]
    [media] = dump["media"]["items"]
    frames = video.media.shape[0]
    assert media["source"]["shape"] == [frames, 3, 84, 112]
    assert media["source"]["dtype"] == "torch.float32"
    assert 0.0 <= media["source"]["min"] <= media["source"]["max"] <= 1.0
    assert media["engine"]["shape"] == [frames, 84, 112, 3]
    assert media["engine"]["dtype"] == "uint8"
    assert dump["media"]["fps"] == 2.0
    assert dump["media"]["video_metadata"]["total_num_frames"] == frames
    assert dump["sampling"] == dataclasses.asdict(Sampling.from_config(config))
    output = dump["output"]
    assert output["finish_reason"] in ("stop", "length")
    assert len(output["token_ids"]) == output["output_tokens"] > 0
    assert output["prompt_tokens"] == len(output["prompt_token_ids"]) > frames
    assert output["metrics"]["arrival_time"] > 0
    # the media side file holds the exact frames the engine got
    side = dump["_path"].with_name(dump["media"]["file"])
    assert side.name.endswith(MEDIA_SUFFIX)
    with np.load(side) as npz:
        assert np.array_equal(npz["video"], video_to_uint8_thwc(video.media))


def test_every_stage_of_a_chosen_key_is_dumped(engine, tiny_model_path, tmp_path):
    items = mixed_items(2, 0)
    config = engine_config(tiny_model_path, stage2=True, debug_request=[items[1].key])
    records = {r.key: r for r in run(engine, config, items, tmp_path)}
    assert records[items[1].key].status == Status.OK, records[items[1].key].error
    found = dumps(tmp_path)
    assert sorted(found) == [(items[1].key, "stage1"), (items[1].key, "stage2")]
    stage2 = found[(items[1].key, "stage2")]
    assert config.stage2_prompt in stage2["prompt"]
    assert stage2["request_id"].endswith(":s2")
    assert stage2["media"]["items"][0]["engine"]["dtype"] == "uint8"
    assert len(stage2["media"]["items"][0]["engine"]["shape"]) == 3  # (H, W, 3)


def test_debug_first_dumps_the_first_requests_of_fixed_batches(engine, tiny_model_path, tmp_path):
    items = mixed_items(4, 0)
    config = engine_config(tiny_model_path, debug_first=3, inflight_batching=False, batch_size=2)
    run(engine, config, items, tmp_path)
    found = dumps(tmp_path)
    assert sorted(found) == [(item.key, "stage1") for item in items[:3]]
    for item, (_, dump) in zip(items[:3], sorted(found.items()), strict=True):
        [image] = dump["media"]["items"]
        w, h = item.media.size
        assert image["source"] == {"type": "PIL.Image", "mode": "RGB", "size": [w, h]}
        assert image["engine"]["shape"] == [h, w, 3]
        assert "<|image_pad|>" in dump["prompt"]


def test_hostile_keys_stay_inside_the_debug_folder(engine, tiny_model_path, tmp_path):
    out = tmp_path / "run"
    pixels = np.full((56, 56, 3), 90, dtype=np.uint8)
    keys = ["../../etc/x", "/tmp/abs", "..", "a/b", "a_b"]
    items = [Item(key, Image.fromarray(pixels)) for key in keys]
    config = engine_config(tiny_model_path, debug_request=keys)
    run(engine, config, items, out)
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) == 2 * len(keys)  # a JSON and a media file per key, none lost
    assert {p.parent for p in written} == {out / DEBUG_DIR}
    assert {d["key"] for d in dumps(out).values()} == set(keys)
    for key in keys:
        name = dump_name(key, "stage1")
        assert "/" not in name and not name.startswith(".")


def test_no_switch_no_debugger(engine, tiny_model_path, tmp_path, monkeypatch):
    plugin, _ = engine
    monkeypatch.delenv("VLMCAP_DEBUG_REQUESTS", raising=False)
    config = engine_config(tiny_model_path)
    assert RequestDebugger.from_config(config, plugin, tmp_path) is None
    assert Lifecycle(plugin, config).debugger is None
    monkeypatch.setenv("VLMCAP_DEBUG_REQUESTS", "1")
    debugger = Lifecycle(plugin, config).debugger
    assert debugger is not None and debugger.log_requests and debugger.debug_dir is None


def test_env_switch_logs_each_request(engine, tiny_model_path, monkeypatch, caplog):
    plugin, llm = engine
    monkeypatch.setenv("VLMCAP_DEBUG_REQUESTS", "1")
    item = Item("logged", torch.rand(4, 3, 56, 56), fps=2.0)
    with caplog.at_level(logging.INFO, logger="vlmcap"):
        caption_items([item], llm, plugin, engine_config(tiny_model_path))
    assert "key=logged" in caplog.text and "media: video(4, 3, 56, 56)" in caplog.text


def test_a_dump_that_cannot_be_written_only_warns(engine, tiny_model_path, tmp_path, caplog):
    blocker = tmp_path / "out"
    blocker.mkdir()
    (blocker / DEBUG_DIR).write_text("a file where the debug folder should be")
    items = mixed_items(2, 0)
    config = engine_config(tiny_model_path, debug_first=2)
    with caplog.at_level(logging.WARNING, logger="vlmcap"):
        records = run(engine, config, items, blocker)
    assert len(records) == 2
    assert all(r.error is None or "empty text" in r.error for r in records)
    assert caplog.text.count("debug output of request") == 2
