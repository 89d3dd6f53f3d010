"""Captioning through the session's real ``vlmcap serve`` (vLLM's OpenAI server, tiny model).

Same records as the offline engine, the CLI over a URL file, stage 2, truncation, each video
encoding, resume after a killed client, several clients at once, and the errors a user can
make (wrong model, wrong key, no server).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.client.conftest import API_KEY, MODEL, LiveServer, client_env, free_port
from tests.conftest import engine_config
from vlmcap.client.connect import connect
from vlmcap.client.messages import MediaEncoding
from vlmcap.client.openai_client import ClientConfig
from vlmcap.media.inputs import discover
from vlmcap.pipeline.backend import OfflineBackend, ServerBackend
from vlmcap.pipeline.caption import RunOptions, caption_files
from vlmcap.pipeline.run import RunSummary
from vlmcap.plugins.registry import get_plugin, register
from vlmcap.plugins.tiny import TinyQwen25VLPlugin
from vlmcap.tiny.synthetic import SceneSpec, make_dataset, write_video

CLIENT_TIMEOUT_S = 300


def rows_of(out: Path) -> list[dict[str, Any]]:
    path = out / "records.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().split("\n")[:-1]]


def caption_map(out: Path) -> dict[str, str]:
    return json.loads((out / f"captions/{MODEL}/{MODEL}_default.json").read_text())


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("media")
    make_dataset(root, n_images=6, n_videos=2, seed=3, seconds=1.0, fps=8)
    (root / "ground_truth.jsonl").unlink()
    return root


def through_server(
    server: LiveServer, config: Any, files: list[Any], out: Path, **client: Any
) -> RunSummary:
    plugin = get_plugin(config.model, config.model_path)
    values: dict[str, Any] = {"url": server.url, "api_key": API_KEY, "concurrency": 4}
    values.update(client)
    settings = connect(ClientConfig(**values), config)
    backend = ServerBackend(settings, plugin, config)
    return caption_files(files, backend, plugin, config, out, run=RunOptions(workers=2))


def client_cmd(src: Path, out: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "vlmcap.cli", "caption", str(src), "-o", str(out), *args]


def run_client(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=CLIENT_TIMEOUT_S, check=False
    )


def test_server_rows_have_the_offline_shape(server, engine, tiny_model_path, dataset, tmp_path):
    files = discover([dataset]).files
    config = engine_config(tiny_model_path, max_output_tokens=8)
    plugin, llm = engine
    offline = caption_files(
        files, OfflineBackend(llm, plugin, config), plugin, config, tmp_path / "offline"
    )
    online = through_server(server, config, files, tmp_path / "server")
    off = {r["key"]: r for r in rows_of(tmp_path / "offline")}
    on = {r["key"]: r for r in rows_of(tmp_path / "server")}
    assert sorted(on) == sorted(off) == sorted(f.key for f in files)
    assert online.rows == offline.rows == len(files)
    for key, row in on.items():
        assert set(row) == set(off[key]), key  # same fields, window/frame metadata included
        for field in ("status", "prompt", "kind", "path", "model", "prompt_style"):
            assert row[field] == off[key][field], (key, field)
        if row["status"] == "ok":
            assert row["caption"] and row["output_tokens"] > 0
            assert row["finish_reason"] in ("stop", "length")
            assert row["truncated"] == (row["finish_reason"] == "length")
            # same chat template, same pixels (frames: same count and size) -> same prompt
            assert row["prompt_tokens"] == off[key]["prompt_tokens"], key
            assert row["queued_at"] <= row["finished_at"] and row["latency_s"] > 0
    assert online.ok > 0
    # the loop statistics mean the same on both: requests inside on average, replies
    for loop in (online.loop, offline.loop):
        assert loop.requests == loop.replies == len(files)
        assert 0 < loop.mean_inflight <= loop.peak_inflight
    assert online.loop.peak_inflight == 4  # the client's --concurrency
    assert online.loop.engine_steps is None and (offline.loop.engine_steps or 0) > 0
    assert set(caption_map(tmp_path / "server")) == {
        k for k, r in on.items() if r["status"] == "ok"
    }


def test_cli_through_a_url_file_follows_the_served_model(server, dataset, tmp_path, cache_dir):
    config = tmp_path / "run.yaml"
    config.write_text("max_output_tokens: 8\n")  # no model: the served one is used
    out = tmp_path / "out"
    env = {**client_env(cache_dir), "OPENAI_API_KEY": API_KEY}
    cmd = client_cmd(dataset, out, "-c", str(config), "--server-url-file", str(server.url_file))
    proc = run_client([*cmd, "--concurrency", "3"], env)
    rows = rows_of(out)
    failed = any(r["status"] == "failed" for r in rows)
    assert proc.returncode == (1 if failed else 0), proc.stderr[-3000:]
    assert sorted(r["key"] for r in rows) == sorted(f.key for f in discover([dataset]))
    assert {r["model"] for r in rows} == {MODEL}
    assert caption_map(out) == {r["key"]: r["caption"] for r in rows if r["status"] == "ok"}
    summary = " ".join(proc.stdout.split())
    assert f"{sum(r['status'] == 'ok' for r in rows)} ok" in summary
    assert str(out / "records.jsonl") in summary
    assert "0.0 on average" not in summary  # requests inside are counted through a server


def test_stage_two_runs_through_the_server(server, tiny_model_path, dataset, tmp_path):
    files = [f for f in discover([dataset]).files if f.kind == "image"][:3]
    values: dict[str, Any] = {"max_output_tokens": 6, "temperature": 1.0, "top_p": 1.0}
    one = engine_config(tiny_model_path, **values)
    two = engine_config(tiny_model_path, stage2=True, **values)
    through_server(server, one, files, tmp_path / "one")
    summary = through_server(server, two, files, tmp_path / "two")
    single = {r["key"]: r for r in rows_of(tmp_path / "one")}
    rows = rows_of(tmp_path / "two")
    assert len(rows) == 3 and summary.ok > 0
    for row in rows:
        if row["status"] != "ok":
            continue
        assert row["stage1_caption"] and row["caption"]
        assert row["stage2_prompt"] == two.stage2_prompt
        assert row["stage1_finish_reason"] in ("stop", "length")
        # both stages counted: the stage-2 request repeats the image and adds its prompt
        assert row["prompt_tokens"] > 2 * single[row["key"]]["prompt_tokens"]


def test_token_limit_gives_ok_truncated_rows(server, tiny_model_path, dataset, tmp_path):
    files = [f for f in discover([dataset]).files if f.kind == "image"]
    config = engine_config(tiny_model_path, max_output_tokens=2, temperature=1.0, top_p=1.0)
    summary = through_server(server, config, files, tmp_path)
    ok = [r for r in rows_of(tmp_path) if r["status"] == "ok"]
    assert ok and summary.truncated == len(ok)
    assert all(r["finish_reason"] == "length" and r["output_tokens"] == 2 for r in ok)


@pytest.mark.parametrize("mode", ["frames", "mp4", "images"])
def test_each_video_encoding_is_accepted(server, tiny_model_path, tmp_path, mode):
    src = tmp_path / "src"
    write_video(src / "clip.mp4", SceneSpec("blue", "square", "right"), seconds=2.0, fps=8)
    config = engine_config(tiny_model_path, max_output_tokens=6, temperature=1.0, top_p=1.0)
    encoding = MediaEncoding(video=mode)
    through_server(server, config, discover([src]).files, tmp_path / "out", encoding=encoding)
    [row] = rows_of(tmp_path / "out")
    assert row["status"] == "ok", row["error"]
    assert row["frames"] >= 2 and row["prompt_tokens"] > 20


def test_a_killed_client_resumes_without_gaps_or_duplicates(server, tmp_path, cache_dir):
    src = tmp_path / "src"
    make_dataset(src, n_images=24, n_videos=2, seed=9, seconds=1.0, fps=8)
    (src / "ground_truth.jsonl").unlink()
    keys = sorted(f.key for f in discover([src]))
    out = tmp_path / "out"
    env = client_env(cache_dir)
    args = ("--server-url", server.url, "--api-key", API_KEY, "--max-output-tokens", "24")
    cmd = client_cmd(src, out, *args, "--concurrency", "1", "--save-every", "2")
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.monotonic() + CLIENT_TIMEOUT_S
    while len(rows_of(out)) < 4 and proc.poll() is None:
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.02)
    killed = proc.poll() is None
    if killed:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert killed, "the client finished before it could be killed"
    before = len(rows_of(out))
    assert before < len(keys)
    again = run_client(cmd, env)
    assert f"resuming: {before}" in " ".join(again.stderr.split())
    rows = rows_of(out)
    failed = any(r["status"] == "failed" for r in rows)
    assert again.returncode == (1 if failed else 0), again.stderr[-3000:]
    assert sorted(r["key"] for r in rows) == keys  # each file once: no gap, no duplicate
    assert caption_map(out) == {r["key"]: r["caption"] for r in rows if r["status"] == "ok"}
    assert not (out / ".vlmcap.lock").exists()


def test_several_clients_share_one_server(server, dataset, tmp_path, cache_dir):
    env = client_env(cache_dir)
    outs = [tmp_path / f"out{i}" for i in range(3)]
    args = ("--server-url", server.url, "--api-key", API_KEY, "--max-output-tokens", "12")
    procs = [
        subprocess.Popen(
            client_cmd(dataset, out, *args, "--concurrency", "4"),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for out in outs
    ]
    errors = [p.communicate(timeout=CLIENT_TIMEOUT_S)[1] for p in procs]
    keys = sorted(f.key for f in discover([dataset]))
    for proc, out, stderr in zip(procs, outs, errors, strict=True):
        rows = rows_of(out)
        assert sorted(r["key"] for r in rows) == keys
        failed = any(r["status"] == "failed" for r in rows)
        assert proc.returncode == (1 if failed else 0), stderr[-3000:]


def test_wrong_served_model_is_a_clear_error(server, dataset, tmp_path, cache_dir):
    cmd = client_cmd(dataset, tmp_path / "out", "--server-url", server.url, "--api-key", API_KEY)
    proc = run_client([*cmd, "--served-model", "nope"], client_env(cache_dir))
    message = " ".join(proc.stderr.split())
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "does not serve 'nope'" in message and repr(MODEL) in message
    assert not rows_of(tmp_path / "out")


def test_wrong_api_key_is_refused_at_once(server, dataset, tmp_path, cache_dir):
    cmd = client_cmd(dataset, tmp_path / "out", "--server-url", server.url)
    t0 = time.monotonic()
    proc = run_client([*cmd, "--api-key", "wrong"], client_env(cache_dir))
    assert proc.returncode == 2, proc.stderr[-3000:]
    message = " ".join(proc.stderr.split())
    assert "refused the API key (401" in message and "--api-key" in message
    assert time.monotonic() - t0 < 60  # no retries on 401
    proc = run_client(cmd, client_env(cache_dir))  # no key at all
    assert proc.returncode == 2 and "refused the API key" in proc.stderr


def test_unreachable_server_is_a_clear_error(dataset, tmp_path, cache_dir):
    url = f"http://127.0.0.1:{free_port()}"
    cmd = client_cmd(dataset, tmp_path / "out", "--server-url", url, "--retries", "1")
    proc = run_client(cmd, client_env(cache_dir))
    message = " ".join(proc.stderr.split())
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert f"cannot reach the vLLM server at {url}" in message and "2 attempts" in message


class MarkedStage2Plugin(TinyQwen25VLPlugin):
    """A plugin with its own stage-2 request: a marker sentence before the stage-2 prompt."""

    variant = "tiny-marked-stage2"
    model_id = "test/tiny-marked-stage2"
    MARK = "Stage two, marked by the plugin. "
    calls: list[str] = []  # noqa: RUF012 - the test reads the calls back

    def make_stage2_request(self, record, stage2_prompt):
        self.calls.append(record.key)
        assert record.item is not None and record.stage1_text is not None
        text = self.MARK + stage2_prompt + record.stage1_text
        return self.make_request(text, record.item.media, fps=record.item.fps)


def test_a_plugins_own_stage2_request_is_what_the_server_gets(
    server, tiny_model_path, dataset, tmp_path
):
    register(MarkedStage2Plugin)
    files = [f for f in discover([dataset]).files if f.kind == "image"][:3]
    values: dict[str, Any] = {"max_output_tokens": 6, "temperature": 1.0, "top_p": 1.0}
    plain = engine_config(tiny_model_path, stage2=True, **values)
    marked = engine_config(
        tiny_model_path, stage2=True, **{**values, "model": MarkedStage2Plugin.variant}
    )
    through_server(server, plain, files, tmp_path / "plain")
    summary = through_server(server, marked, files, tmp_path / "marked")
    stage2_rows = [r for r in rows_of(tmp_path / "marked") if r["stage1_caption"]]
    assert sorted(MarkedStage2Plugin.calls) == sorted(r["key"] for r in stage2_rows)
    assert stage2_rows and summary.loop.requests == len(files) + len(stage2_rows)
    plain_rows = {r["key"]: r for r in rows_of(tmp_path / "plain")}
    mark_tokens = len(
        get_plugin("tiny-qwen2.5-vl", str(tiny_model_path))
        .processor()
        .tokenizer(MarkedStage2Plugin.MARK)["input_ids"]
    )
    compared = 0
    for row in stage2_rows:
        same = plain_rows[row["key"]]
        if same["stage1_caption"] != row["stage1_caption"]:
            continue
        # same stage 1 (seeded), same stage-2 prompt: the only difference is the marker (its
        # last space may merge into the next word's token)
        diff = row["prompt_tokens"] - same["prompt_tokens"]
        assert mark_tokens - 1 <= diff <= mark_tokens, (row["key"], diff, mark_tokens)
        compared += 1
    assert compared > 0
