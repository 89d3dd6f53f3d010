"""``vlmcap caption --profile DIR`` through ``vlmcap serve --profile DIR``: the client starts
and stops the real server's torch profiler (its ``/start_profile`` and ``/stop_profile``).

The profiled server is this module's own: with vLLM 0.32 a server started with a profiler
configuration reported no running requests in ``/metrics`` under load (seen in
``tests/client/test_monitor_server.py``), so the session server runs without one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.client.conftest import API_KEY, LiveServer, running_server
from tests.conftest import engine_config
from vlmcap.core.progress import Progress
from vlmcap.debug.server_profiler import ServerProfiler
from vlmcap.debug.traces import find_traces, load_trace, profiled_steps


@pytest.fixture(scope="module")
def profiled_server(
    tiny_model_path: Path, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("profiled-server")
    yield from running_server(tiny_model_path, cache_dir, root, profile=True)


def test_client_profiles_the_first_requests_on_the_server(
    profiled_server: LiveServer, tmp_path: Path
):
    server = profiled_server
    from vlmcap.client.connect import connect
    from vlmcap.client.openai_client import ClientConfig
    from vlmcap.media.inputs import discover
    from vlmcap.pipeline.backend import ServerBackend
    from vlmcap.pipeline.caption import caption_files
    from vlmcap.plugins.registry import get_plugin
    from vlmcap.tiny.synthetic import make_dataset

    assert server.profile_dir is not None
    make_dataset(tmp_path / "media", n_images=6, n_videos=0, seed=5)
    (tmp_path / "media" / "ground_truth.jsonl").unlink(missing_ok=True)
    files = discover([tmp_path / "media"]).files
    config = engine_config(
        server.model_path, profile=server.profile_dir, profile_steps=2, max_output_tokens=8
    )
    plugin = get_plugin(config.model, config.model_path)
    settings = connect(ClientConfig(url=server.url, api_key=API_KEY, concurrency=2), config)
    backend = ServerBackend(settings, plugin, config)

    live = Progress()
    profiler = ServerProfiler.from_config(config, settings.url, settings.resolved_api_key)
    assert profiler.follow(live) and profiler.running
    try:
        summary = caption_files(files, backend, plugin, config, tmp_path / "out", live=live)
    finally:
        traces = profiler.finish()
    assert summary.ok == len(files)
    assert profiler.stopped_after is not None and profiler.stopped_after >= 2  # by the watcher
    assert traces and traces == find_traces(server.profile_dir, profiler.prefix)
    for path in traces:
        assert load_trace(path)["traceEvents"]
    assert profiled_steps(traces) > 0  # the engine worker's trace is among them
    assert profiler.summary is not None
    assert any(op.name.startswith("aten::") and op.self_us > 0 for op in profiler.summary.ops)
    assert not profiler.running and profiler.finish() == traces
