"""Benchmark result files (``bench/common.write_result``): each one says how it was made."""

from __future__ import annotations

import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.append(str(BENCH))  # last: its module names must shadow nothing

from common import write_result  # noqa: E402 - bench/ is not a package


def test_a_result_records_the_command_that_made_it(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["engine_loop.py", "--caps", "256"])
    path = write_result("x", {"name": "x", "value": 1.5}, tmp_path / "sub" / "x.json")
    data = json.loads(path.read_text())
    assert data["value"] == 1.5
    assert data["command"].endswith("engine_loop.py --caps 256")
    assert data["command"].split()[0] == Path(sys.executable).name


def test_a_command_the_benchmark_wrote_itself_is_kept(tmp_path):
    path = write_result("x", {"command": "python bench/x.py --n 3"}, tmp_path / "x.json")
    assert json.loads(path.read_text())["command"] == "python bench/x.py --n 3"
