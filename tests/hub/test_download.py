"""Downloads through the real huggingface_hub: a small hub on loopback, offline mode, an
unreachable hub, and the disk-space check.

huggingface_hub reads HF_ENDPOINT, HF_HUB_OFFLINE and HF_HUB_CACHE when it is imported, so
each scenario runs ``download`` in a fresh Python with those variables set.

The loopback hub stands in for huggingface.co, which this machine (and CI) cannot reach: it
answers the routes ``snapshot_download`` calls (model info, file tree, resolve, and 401/403 with
the hub's error headers), so the client code under test is the real huggingface_hub.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from vlmcap.hub import download as dl
from vlmcap.hub.local import PARTIAL_SUFFIX

#: Commit every repo of the loopback hub is at.
COMMIT = "c" * 40
#: Size the loopback hub claims for the weights of ``org/huge`` (far above any free space).
HUGE_BYTES = 10**18
TINY_FILES = {"config.json": b"{}", "model.safetensors": b"w" * 2048}
#: Seconds a failed download may take against a closed port (no retry loop, no long timeout).
QUICK_FAILURE_S = 10.0
#: Runs ``download`` for each name of argv and prints {name: [outcome, text]} as JSON.
CHILD = """
import json, sys
from vlmcap.hub.download import DownloadError, download
out = {}
for name in sys.argv[1:]:
    try:
        out[name] = ["ok", str(download(name))]
    except DownloadError as exc:
        out[name] = ["DownloadError", str(exc)]
print(json.dumps(out))
"""


class LoopbackHub(ThreadingHTTPServer):
    """The few hub routes a snapshot download uses: model info, file tree, resolve."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), HubHandler)
        self.repos: dict[str, dict[str, bytes]] = {
            "org/tiny": TINY_FILES,
            "org/huge": {"config.json": b"{}", "model.safetensors": b""},
        }
        self.gated = {"org/gated"}
        self.requests: list[tuple[str, str]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class HubHandler(BaseHTTPRequestHandler):
    server: LoopbackHub

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self.answer(head=False)

    def do_HEAD(self) -> None:
        self.answer(head=True)

    def send(self, status: int, body: bytes, headers: dict[str, str], head: bool) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def answer(self, head: bool) -> None:
        path = urlsplit(self.path).path
        self.server.requests.append((self.command, path))
        parts = path.strip("/").split("/")
        api = parts[:2] == ["api", "models"]
        repo_id = "/".join(parts[2:4] if api else parts[:2])
        rest = parts[4:] if api else parts[2:]
        if repo_id in self.server.gated:
            self.send(403, b"gated", {"X-Error-Code": "GatedRepo"}, head)
            return
        files = self.server.repos.get(repo_id)
        if files is None:
            self.send(401, b"not found", {"X-Error-Code": "RepoNotFound"}, head)
            return
        if api and rest[:1] == ["tree"]:
            tree = [
                {"type": "file", "path": n, "size": len(b), "oid": hashlib.sha1(b).hexdigest()}
                for n, b in files.items()
            ]
            self.send(200, json.dumps(tree).encode(), {}, head)
        elif api:
            sizes = {n: HUGE_BYTES if repo_id == "org/huge" else len(b) for n, b in files.items()}
            siblings = [{"rfilename": n, "size": s} for n, s in sizes.items()]
            info = {"id": repo_id, "sha": COMMIT, "siblings": siblings}
            self.send(200, json.dumps(info).encode(), {}, head)
        else:  # /<org>/<name>/resolve/<commit>/<file>
            body = files["/".join(rest[2:])]
            etag = f'"{hashlib.sha1(body).hexdigest()}"'
            self.send(200, body, {"X-Repo-Commit": COMMIT, "ETag": etag}, head)


@pytest.fixture(scope="module")
def hub() -> Iterator[LoopbackHub]:
    server = LoopbackHub()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    thread.join()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_downloads(names: list[str], **env: str) -> dict[str, list[str]]:
    """``download(name)`` for each name in a fresh Python with ``env`` on top of ours."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "VLMCAP_MODEL"))}
    full.update(HF_HUB_DISABLE_PROGRESS_BARS="1", HF_HUB_DISABLE_TELEMETRY="1")
    full.update(env)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *names],
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, list[str]] = json.loads(done.stdout)
    return result


def one_line(text: str) -> str:
    return " ".join(text.split())


# ---- from the loopback hub ---------------------------------------------------------------


@pytest.fixture(scope="module")
def hub_runs(hub, tmp_path_factory) -> dict[str, Any]:
    """One fresh Python runs every hub scenario (the tiny model twice: fetched, then kept)."""
    tmp = tmp_path_factory.mktemp("hub-downloads")
    env = {
        "HF_ENDPOINT": hub.url,
        "HF_HUB_CACHE": str(tmp / "cache"),
        "HF_HOME": str(tmp / "hf-home"),
        "VLMCAP_MODEL_DIR": str(tmp / "models"),
    }
    names = ["org/tiny", "org/gated", "org/missing", "org/huge"]
    first = run_downloads(names, **env)
    again = run_downloads(["org/tiny"], **env)
    return {"tmp": tmp, "first": first, "again": again, "requests": list(hub.requests)}


def test_a_model_lands_in_the_model_dir_as_org_name(hub_runs):
    outcome, path = hub_runs["first"]["org/tiny"]
    assert outcome == "ok"
    assert Path(path) == hub_runs["tmp"] / "models" / "org" / "tiny"
    for name, content in TINY_FILES.items():
        assert (Path(path) / name).read_bytes() == content


def test_a_second_download_fetches_nothing_again(hub_runs):
    assert hub_runs["again"]["org/tiny"] == hub_runs["first"]["org/tiny"]
    gets = [p for m, p in hub_runs["requests"] if m == "GET" and p.startswith("/org/tiny/resolve/")]
    assert len(gets) == len(TINY_FILES)  # all from the first download


def test_a_gated_model_says_how_to_get_access(hub_runs, hub):
    outcome, message = hub_runs["first"]["org/gated"]
    assert outcome == "DownloadError"
    assert f"{hub.url}/org/gated" in message  # the page where the licence is accepted
    assert "HF_TOKEN" in message and "huggingface-cli login" in message
    assert "No token is set" in message


def test_an_unknown_or_private_repo_says_to_check_the_id(hub_runs):
    outcome, message = hub_runs["first"]["org/missing"]
    assert outcome == "DownloadError"
    assert "not on the hub" in message and "HF_TOKEN" in message


def test_too_little_disk_space_stops_before_anything_is_fetched(hub_runs):
    outcome, message = hub_runs["first"]["org/huge"]
    assert outcome == "DownloadError"
    assert message.startswith("not enough disk space for org/huge")
    assert "--dir" in message
    assert not any(p.startswith("/org/huge/resolve/") for _, p in hub_runs["requests"])
    assert not (hub_runs["tmp"] / "models" / "org" / "huge").exists()


def test_a_token_is_never_printed(hub, tmp_path):
    secret = "hf_" + "s3cr3t" * 6
    env = {
        "HF_ENDPOINT": hub.url,
        "HF_HUB_CACHE": str(tmp_path),
        "HF_HOME": str(tmp_path / "hf-home"),
        "HF_TOKEN": secret,
    }
    outcome, message = run_downloads(["org/gated"], **env)["org/gated"]
    assert outcome == "DownloadError"
    assert secret not in message and "A token is set" in message


# ---- offline and unreachable -------------------------------------------------------------


def test_offline_without_a_copy_says_how_to_copy_weights_by_hand(tmp_path):
    models = tmp_path / "models"
    env = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path), "VLMCAP_MODEL_DIR": str(models)}
    outcome, message = run_downloads(["qwen2.5-vl"], **env)["qwen2.5-vl"]
    assert outcome == "DownloadError"
    assert "HF_HUB_OFFLINE is set" in message
    assert "hf download Qwen/Qwen2.5-VL-7B-Instruct" in message
    assert f"{models}/Qwen/Qwen2.5-VL-7B-Instruct" in message


def test_offline_a_complete_copy_is_kept_and_a_partial_one_refused(tmp_path):
    models = tmp_path / "models"
    for name in ("complete", "partial"):
        folder = models / "org" / name
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")
        (folder / "model.safetensors").write_bytes(b"w")
    state = models / "org" / "partial" / ".cache" / "huggingface" / "download"
    state.mkdir(parents=True)
    (state / f"model.safetensors.etag{PARTIAL_SUFFIX}").write_bytes(b"w")
    env = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path), "VLMCAP_MODEL_DIR": str(models)}
    runs = run_downloads(["org/complete", "org/partial"], **env)
    assert runs["org/complete"] == ["ok", str(models / "org" / "complete")]
    outcome, message = runs["org/partial"]
    assert outcome == "DownloadError" and "incomplete copy" in message


def test_an_unreachable_hub_fails_quickly_and_clearly(tmp_path):
    endpoint = f"http://127.0.0.1:{closed_port()}"
    env = {
        "HF_ENDPOINT": endpoint,
        "HF_HUB_CACHE": str(tmp_path / "cache"),
        "HF_HUB_ETAG_TIMEOUT": "2",
        "HF_HUB_DOWNLOAD_TIMEOUT": "2",
    }
    start = time.monotonic()
    outcome, message = run_downloads(["cosmos-reason2"], **env)["cosmos-reason2"]
    assert time.monotonic() - start < QUICK_FAILURE_S
    assert outcome == "DownloadError"
    assert f"cannot reach the Hugging Face hub at {endpoint}" in message
    assert "VLMCAP_MODEL_DIR" in message  # where to copy the weights by hand
    assert not (tmp_path / "cache" / "models--nvidia--Cosmos-Reason2-8B" / "snapshots").exists()


# ---- pure parts --------------------------------------------------------------------------


def test_names_resolve_to_a_hub_id_and_revision():
    assert dl.resolve("qwen3-vl-4b") == ("Qwen/Qwen3-VL-4B-Instruct", "main")
    assert dl.resolve("google/gemma-3-4b-it") == ("google/gemma-3-4b-it", "main")
    assert dl.resolve("someone/any-model") == ("someone/any-model", "main")  # not catalogued
    with pytest.raises(ValueError, match="org/name"):
        dl.resolve("not-a-model")


def test_the_destination_is_the_target_then_the_model_dir_then_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VLMCAP_MODEL_DIR", str(tmp_path))
    assert dl.destination("org/name", tmp_path / "mine") == tmp_path / "mine"
    assert dl.destination("org/name") == tmp_path / "org" / "name"
    monkeypatch.delenv("VLMCAP_MODEL_DIR")
    assert dl.destination("org/name") is None


def test_space_shortfall_compares_sizes():
    assert dl.space_shortfall(100, 40) == 60
    assert dl.space_shortfall(40, 100) == 0


def test_check_space_refuses_more_than_is_free(tmp_path):
    free = dl.free_bytes(tmp_path)
    with pytest.raises(dl.DownloadError, match="not enough disk space for org/big"):
        dl.check_space(free + 10**9, tmp_path / "not" / "made" / "yet", "org/big")
    dl.check_space(0, tmp_path)  # fits: no error


def test_bytes_missing_skips_files_already_there_at_full_size(tmp_path):
    (tmp_path / "config.json").write_bytes(b"{}")
    (tmp_path / "model.safetensors").write_bytes(b"half")  # interrupted: size differs
    files = {"config.json": 2, "model.safetensors": 8, "tokenizer.json": 5}
    assert dl.bytes_missing(files, tmp_path) == 8 + 5
    assert dl.bytes_missing(files, None) == 15


def test_a_full_disk_while_writing_is_explained(tmp_path):
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    error = dl.explain(full, "org/name", "main", tmp_path)
    assert "filled up" in str(error) and "resumes" in one_line(str(error))
