"""Helpers of the ``vlmcap doctor`` tests: run the command in this process, read its JSON."""

from __future__ import annotations

import json
import socket
from typing import Any

from typer.testing import CliRunner

from vlmcap.cli.app import app

runner = CliRunner()


def doctor_json(*args: str) -> tuple[int, dict[str, Any]]:
    """Exit status and parsed report of ``vlmcap doctor --json ARGS``."""
    result = runner.invoke(app, ["doctor", "--json", *args])
    return result.exit_code, json.loads(result.stdout)


def check(report: dict[str, Any], name: str) -> dict[str, Any]:
    """The check called ``name`` in a JSON report (AssertionError when absent)."""
    found = [c for c in report["checks"] if c["name"] == name]
    assert found, f"no check {name!r} in {[c['name'] for c in report['checks']]}"
    return found[0]


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
