"""Where a model is on disk: an explicit path, $VLMCAP_MODEL_DIR/<org>/<name>, the HF cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from huggingface_hub import constants

from vlmcap.hub import local
from vlmcap.hub.catalog import find

QWEN = find("qwen2.5-vl")
CONFIG = b'{"model_type": "qwen2_5_vl"}'
WEIGHTS = b"\0" * 4096
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def model_folder(path: Path, weights: bytes = WEIGHTS) -> Path:
    """A model folder as ``hf download --local-dir`` leaves it: config and weights."""
    path.mkdir(parents=True)
    (path / "config.json").write_bytes(CONFIG)
    (path / "model.safetensors").write_bytes(weights)
    return path


def hf_cache(root: Path, repo_id: str, revision: str = "main") -> Path:
    """A Hugging Face cache entry laid out as huggingface_hub writes it: content in
    ``blobs/<hash>``, ``snapshots/<commit>/<file>`` relative links to them, and
    ``refs/<revision>`` holding the commit. Returns the snapshot folder."""
    repo = root / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir()
    (repo / "refs").mkdir()
    (repo / "refs" / revision).write_text(COMMIT)
    for name, content in (("config.json", CONFIG), ("model.safetensors", WEIGHTS)):
        blob = repo / "blobs" / f"blob-{name}"
        blob.write_bytes(content)
        (snapshot / name).symlink_to(os.path.relpath(blob, snapshot))
    return snapshot


@pytest.fixture
def model_dir(tmp_path, monkeypatch):
    root = tmp_path / "models"
    monkeypatch.setenv("VLMCAP_MODEL_DIR", str(root))
    return root


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "hf-cache"
    root.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(root))  # read at import from HF_HUB_CACHE
    return root


def test_nothing_on_disk_is_none(model_dir, cache):
    assert local.local_copy(QWEN) is None


def test_a_folder_in_the_model_dir_is_found_with_its_size(model_dir, cache):
    folder = model_folder(model_dir / QWEN.model_id)
    copy = local.local_copy(QWEN)
    assert copy is not None
    assert (copy.path, copy.where) == (folder, local.WHERE_MODEL_DIR)
    assert copy.size_bytes == len(CONFIG) + len(WEIGHTS)
    assert copy.weight_files == 1 and copy.complete


def test_a_cached_snapshot_is_found_through_its_ref(cache, monkeypatch):
    monkeypatch.delenv("VLMCAP_MODEL_DIR", raising=False)
    snapshot = hf_cache(cache, QWEN.model_id)
    copy = local.local_copy(QWEN)
    assert copy is not None
    assert (copy.path, copy.where) == (snapshot, local.WHERE_HF_CACHE)
    assert copy.size_bytes == len(CONFIG) + len(WEIGHTS)  # the blobs, through the links
    assert copy.complete


def test_another_revision_than_the_cached_one_is_not_found(cache, monkeypatch):
    monkeypatch.delenv("VLMCAP_MODEL_DIR", raising=False)
    hf_cache(cache, QWEN.model_id, revision="main")
    assert local.find_local(QWEN.model_id, revision="v2") is None
    assert local.find_local(QWEN.model_id, revision="main") is not None


def test_the_model_dir_comes_before_the_cache(model_dir, cache):
    hf_cache(cache, QWEN.model_id)
    folder = model_folder(model_dir / QWEN.model_id)
    copy = local.local_copy(QWEN)
    assert copy is not None and copy.path == folder


def test_an_explicit_path_is_the_only_place_looked_at(tmp_path, model_dir, cache):
    model_folder(model_dir / QWEN.model_id)
    mine = model_folder(tmp_path / "mine", weights=b"1" * 10)
    copy = local.local_copy(QWEN, path=mine)
    assert copy is not None
    assert (copy.path, copy.where, copy.size_bytes) == (mine, local.WHERE_PATH, len(CONFIG) + 10)
    assert local.local_copy(QWEN, path=tmp_path / "missing") is None


def test_an_interrupted_download_is_partial(model_dir, cache):
    folder = model_folder(model_dir / QWEN.model_id)
    state = folder / local.LOCAL_DIR_STATE / "download"
    state.mkdir(parents=True)
    (state / f"abc.etag{local.PARTIAL_SUFFIX}").write_bytes(b"12")
    copy = local.local_copy(QWEN)
    assert copy is not None and copy.partial and not copy.complete


def test_a_config_without_weights_is_not_complete(model_dir, cache):
    folder = model_dir / QWEN.model_id
    folder.mkdir(parents=True)
    (folder / "config.json").write_bytes(CONFIG)
    copy = local.local_copy(QWEN)
    assert copy is not None and copy.weight_files == 0 and not copy.complete


def test_model_dir_ids_lists_org_name_model_folders(model_dir):
    model_folder(model_dir / "org" / "one")
    (model_dir / "org" / "not-a-model").mkdir()
    model_folder(model_dir / "other" / "two")
    assert local.model_dir_ids() == ["org/one", "other/two"]


def test_hub_ids_and_paths_are_told_apart():
    assert not local.looks_local("Qwen/Qwen2.5-VL-7B-Instruct")
    assert local.looks_local("/models/qwen")
    assert local.looks_local("models/org/name")


@pytest.mark.parametrize(
    ("size", "text"),
    [(12, "12 B"), (1_500, "1.5 kB"), (16_600_000_000, "16.6 GB"), (2 * 10**12, "2.0 TB")],
)
def test_format_size(size, text):
    assert local.format_size(size) == text
