"""``vlmcap doctor`` run as a user runs it: on this machine, and on broken set-ups."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.doctor.conftest import check, closed_port, doctor_json, runner
from vlmcap.cli.app import app

#: The version checks and the distribution each one reports.
VERSIONED = {
    "vlmcap": "vlmcap",
    "torch": "torch",
    "transformers": "transformers",
    "PyAV": "av",
    "Pillow": "pillow",
}
#: Seconds the whole command may take (it imports vLLM and torchvision on a busy 2-core box).
DOCTOR_TIMEOUT_S = 300


def vlmcap_command() -> list[str]:
    script = Path(sys.executable).with_name("vlmcap")
    return [str(script)] if script.exists() else [sys.executable, "-m", "vlmcap.cli"]


@pytest.fixture(scope="module")
def machine_report() -> tuple[int, dict, str]:
    """``vlmcap doctor --json`` on this machine, in its own process: status, report, stderr."""
    proc = subprocess.run(
        [*vlmcap_command(), "doctor", "--json"],
        capture_output=True,
        text=True,
        timeout=DOCTOR_TIMEOUT_S,
        check=False,
    )
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def test_doctor_on_this_machine_is_healthy(machine_report):
    status, report, stderr = machine_report
    assert status == 0, stderr
    assert report["healthy"] is True
    assert report["counts"]["fail"] == 0
    for name, dist in VERSIONED.items():
        found = check(report, name)
        assert found["status"] == "ok"
        assert found["detail"].startswith(importlib.metadata.version(dist)), found
    vllm = check(report, "vLLM")
    assert vllm["status"] == "ok"
    assert vllm["detail"].startswith(importlib.import_module("vllm").__version__)


def test_doctor_reports_the_platform_vllm_detects(machine_report):
    from vllm.platforms import current_platform

    _, report, _ = machine_report
    assert check(report, "vLLM platform")["detail"].startswith(current_platform.device_type)


def test_every_problem_has_a_fix_and_every_section_is_there(machine_report):
    _, report, _ = machine_report
    for found in report["checks"]:
        if found["status"] != "ok":
            assert found["fix"], found
    sections = {c["section"] for c in report["checks"]}
    assert {"versions", "platform", "system", "models", "workarounds"} <= sections
    for name in ("RAM", "disk", "GPUs", "model tiny-qwen2.5-vl"):
        assert check(report, name)["status"] == "ok"


def test_the_shipped_tiny_model_is_found_locally(machine_report):
    _, report, _ = machine_report
    detail = check(report, "model tiny-qwen2.5-vl")["detail"]
    assert "tiny/assets/tiny_vlm" in detail and "weight file" in detail


def test_a_model_path_that_does_not_exist_fails_with_its_fix(tmp_path):
    missing = tmp_path / "no" / "such-model"
    status, report = doctor_json("--model-path", str(missing))
    assert status == 1
    assert report["healthy"] is False
    found = check(report, "--model-path")
    assert found["status"] == "fail"
    assert str(missing) in found["detail"] and "does not exist" in found["detail"]
    assert "check the path" in found["fix"] and "vlmcap models" in found["fix"]


def test_the_table_shows_the_failure_and_its_fix(tmp_path):
    wide = {"COLUMNS": "1000"}  # rich folds cells to the terminal's width
    result = runner.invoke(app, ["doctor", "--model-path", str(tmp_path / "gone")], env=wide)
    assert result.exit_code == 1
    assert "FAIL" in result.output and "not healthy" in result.output
    assert "run `vlmcap models` to list variants" in result.output


def test_a_folder_without_weights_fails(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    status, report = doctor_json("--model-path", str(tmp_path))
    found = check(report, "--model-path")
    assert status == 1 and found["status"] == "fail"
    assert "no weights" in found["detail"] and found["fix"]


def test_an_unknown_variant_fails_and_points_at_vlmcap_models():
    status, report = doctor_json("--model", "no-such-variant")
    found = check(report, "model no-such-variant")
    assert status == 1 and found["status"] == "fail"
    assert "vlmcap models" in found["fix"]


def test_a_requested_variant_is_checked_once():
    status, report = doctor_json("--model", "tiny-qwen2.5-vl")
    assert status == 0
    names = [c["name"] for c in report["checks"]]
    assert names.count("model tiny-qwen2.5-vl") == 1
    assert names.index("model tiny-qwen2.5-vl") < names.index("model qwen2.5-vl")


def test_a_closed_server_port_fails_with_a_fix():
    url = f"http://127.0.0.1:{closed_port()}"
    status, report = doctor_json("--server-url", url)
    assert status == 1
    found = check(report, "server health")
    assert found["status"] == "fail"
    assert url in found["detail"]
    assert "vlmcap serve" in found["fix"]
    assert all(c["name"] != "server models" for c in report["checks"])


def test_output_dir_is_measured_where_it_will_be(tmp_path):
    target = tmp_path / "not" / "yet"
    status, report = doctor_json("--output-dir", str(target))
    assert status == 0
    detail = check(report, "disk")["detail"]
    assert str(target) in detail and f"measured at {tmp_path}" in detail


def test_help_explains_the_command():
    result = runner.invoke(app, ["doctor", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for text in ("--server-url", "--model-path", "--json", "--output-dir", "Exit status"):
        assert text in result.output
