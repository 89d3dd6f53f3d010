"""`vlmcap models` (catalog, other plugins, --local) and `vlmcap download`, as users run them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest
from huggingface_hub import constants
from typer.testing import CliRunner

from vlmcap.cli import models as models_cli
from vlmcap.cli.app import app
from vlmcap.hub.catalog import CATALOG
from vlmcap.plugins.capabilities import Capabilities
from vlmcap.plugins.qwen2_5_vl import Qwen25VLPlugin
from vlmcap.plugins.registry import get_plugin_class

runner = CliRunner()
#: Wide enough that no table cell wraps.
WIDE = {"COLUMNS": "300"}
#: Modules listing must not import (slow, and absent on machines that only download).
HEAVY = ("torch", "vllm", "transformers")


def one_line(text: str) -> str:
    return " ".join(text.split())


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m vlmcap.cli ARGS`` in a fresh process, hub variables replaced by ``env``."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "VLMCAP_MODEL"))}
    full.update(WIDE, HF_HUB_DISABLE_PROGRESS_BARS="1", **env)
    return subprocess.run(
        [sys.executable, "-m", "vlmcap.cli", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_models_lists_every_catalog_entry_with_its_hub_id_and_licence():
    result = runner.invoke(app, ["models"], env=WIDE)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for model in CATALOG:
        row = next((line for line in lines if f" {model.variant} " in line), None)
        assert row is not None, model.variant
        assert model.model_id in row and model.params in row and model.licence in row
        assert ("(gated)" in row) is model.gated


def test_models_lists_plugins_outside_the_catalog_with_their_description():
    result = runner.invoke(app, ["models"], env=WIDE)
    assert result.exit_code == 0
    section = result.output.split("Other registered plugins", 1)[1]
    shouty = get_plugin_class("example-shouty")  # an entry-point plugin (tests/fixtures)
    assert "example-shouty" in section and shouty.description in section
    assert "tiny-qwen2.5-vl" in section
    names = models_cli.other_plugins()
    assert "tiny-qwen2.5-vl" in names
    assert not {m.variant for m in CATALOG} & set(names)


def test_inputs_come_from_the_plugin_capabilities():
    class Declared(Qwen25VLPlugin):
        capabilities: ClassVar[Capabilities] = Capabilities(max_images=2, video=True)

    class Undeclared:
        pass

    assert models_cli.inputs_of(Declared) == "image, images (<= 2), video"
    assert models_cli.inputs_of(Undeclared) == "-"  # type: ignore[arg-type]
    assert models_cli.inputs_of(None) == "-"


def test_a_plugin_not_installed_is_a_note_not_a_failure():
    cls, note = models_cli.plugin_class("no-such-plugin")
    assert cls is None and note == "not installed"


def test_models_does_not_import_torch_or_vllm():
    code = (
        "import sys\n"
        "from vlmcap.cli.app import app\n"
        "try:\n"
        "    app(['models'])\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


@pytest.fixture
def on_disk(tmp_path, monkeypatch) -> dict[str, Path]:
    """One catalog model in $VLMCAP_MODEL_DIR, one other hub id beside it, an empty HF cache."""
    root = tmp_path / "models"
    folders = {"qwen3-vl-4b": root / "Qwen" / "Qwen3-VL-4B-Instruct", "-": root / "me" / "mine"}
    for folder in folders.values():
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")
        (folder / "model.safetensors").write_bytes(b"w" * 2_000)
    monkeypatch.setenv("VLMCAP_MODEL_DIR", str(root))
    (tmp_path / "cache").mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    return folders


def test_models_local_shows_what_is_on_disk_with_path_and_size(on_disk):
    result = runner.invoke(app, ["models", "--local"], env=WIDE)
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if "VLMCAP_MODEL_DIR" in line]
    assert len(rows) == 2
    assert "qwen3-vl-4b" in rows[0] and str(on_disk["qwen3-vl-4b"]) in rows[0]
    assert "me/mine" in rows[1] and str(on_disk["-"]) in rows[1]
    assert all("2.0 kB" in row and "complete" in row for row in rows)
    assert "qwen2.5-vl " not in result.output  # not on disk: not listed


def test_models_local_with_nothing_on_disk_says_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.setenv("VLMCAP_MODEL_DIR", str(tmp_path / "empty"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    result = runner.invoke(app, ["models", "--local"], env=WIDE)
    assert result.exit_code == 0
    assert "vlmcap download VARIANT" in result.output


def test_download_of_an_unknown_name_is_bad_usage():
    result = runner.invoke(app, ["download", "no-such-model"], env=WIDE)
    assert result.exit_code == 2
    assert "no-such-model" in result.output and "cosmos-reason2" in result.output


def test_download_offline_exits_1_with_what_to_do(tmp_path):
    done = cli("download", "smolvlm2-2.2b", HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(tmp_path))
    assert done.returncode == 1, done.stderr
    message = one_line(done.stderr)
    assert "error: cannot download HuggingFaceTB/SmolVLM2-2.2B-Instruct" in message
    assert "HF_HUB_OFFLINE is set" in message and "VLMCAP_MODEL_DIR" in message
    assert "Traceback" not in done.stderr


def test_download_prints_where_the_model_is_and_how_to_run_it(tmp_path):
    folder = tmp_path / "models" / "google" / "gemma-3-4b-it"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"w")
    env = {
        "HF_HUB_OFFLINE": "1",  # already complete: kept without asking the hub
        "HF_HUB_CACHE": str(tmp_path / "cache"),
        "VLMCAP_MODEL_DIR": str(tmp_path / "models"),
    }
    done = cli("download", "gemma-3-4b", **env)
    assert done.returncode == 0, done.stderr
    out = one_line(done.stdout)
    assert f"downloaded gemma-3-4b to {folder}" in out
    assert f"--model generic --model-path {folder}" in out
