"""``vlmcap doctor --server-url`` against the session's real ``vlmcap serve``."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tests.client.conftest import API_KEY, MODEL
from vlmcap.cli.app import app
from vlmcap.doctor import server as doctor_server
from vlmcap.doctor.checks import Status

runner = CliRunner()


def test_doctor_reports_what_a_live_server_serves(server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    result = runner.invoke(
        app, ["doctor", "--json", "--server-url", server.url, "--api-key", API_KEY]
    )
    assert result.exit_code == 0, result.stdout
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    health = checks["server health"]
    assert health["status"] == "ok" and server.url in health["detail"]
    assert "vLLM " in health["detail"]  # the server's /version
    models = checks["server models"]
    assert models["status"] == "ok"
    assert models["detail"].startswith(f"serves {MODEL} (root {server.model_path}")


def test_doctor_says_the_server_wants_its_key(server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    health, models = doctor_server.server_checks(server.url)
    assert health.status is Status.OK
    assert models.status is Status.FAIL and "needs an API key" in models.detail
    assert "--api-key" in (models.fix or "")


def test_doctor_warns_when_the_server_serves_another_model(server):
    _, models = doctor_server.server_checks(server.url, API_KEY, model="qwen2.5-vl")
    assert models.status is Status.WARN
    assert f"--served-model {MODEL}" in (models.fix or "")
