"""Where each model is: a local folder, the Hugging Face cache, or nowhere (nothing downloaded)."""

from __future__ import annotations

from vlmcap.doctor import models
from vlmcap.doctor.checks import Status
from vlmcap.tiny.model import SHIPPED_MODEL_DIR


def test_every_registered_variant_is_reported():
    from vlmcap.plugins.registry import available

    names = [c.name for c in models.model_checks()]
    for variant in available():
        assert f"model {variant}" in names


def test_the_shipped_model_folder_is_ok():
    check = models.folder_check("m", SHIPPED_MODEL_DIR)
    assert check.status is Status.OK and str(SHIPPED_MODEL_DIR) in check.detail


def test_hub_ids_and_paths_are_told_apart():
    assert not models.looks_local("Qwen/Qwen2.5-VL-7B-Instruct")
    assert models.looks_local("/models/qwen")
    assert models.looks_local("./qwen")
    assert models.looks_local("~/models/qwen")
    assert models.looks_local("models/org/name")


def test_a_hub_id_missing_from_an_empty_cache_is_a_warning_with_a_download_fix(
    tmp_path, monkeypatch
):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    check = models.hub_check("m", "org/not-cached", requested=False)
    assert check.status is Status.WARN
    assert "hf download org/not-cached" in (check.fix or "")


def test_a_cached_hub_snapshot_is_found(tmp_path, monkeypatch):
    """A Hugging Face cache laid out as huggingface_hub writes it (refs + snapshot)."""
    from huggingface_hub import constants

    repo = tmp_path / "models--org--cached"
    snapshot = repo / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    (snapshot / "config.json").write_text("{}")
    (snapshot / "model.safetensors").write_bytes(b"0")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    check = models.hub_check("m", "org/cached", requested=True)
    assert check.status is Status.OK and str(snapshot) in check.detail


def test_the_random_tiny_model_is_never_built_here(tmp_path, monkeypatch):
    monkeypatch.setenv("VLMCAP_CACHE_DIR", str(tmp_path))
    check = models.variant_check("tiny-random-qwen2.5-vl")
    assert check.status is Status.OK and "built on first use" in check.detail
    assert not (tmp_path / "models").exists()


def test_a_model_dir_that_is_missing_is_a_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("VLMCAP_MODEL_DIR", str(tmp_path / "nope"))
    check = models.model_dir_check()
    assert check is not None and check.status is Status.WARN
    assert "VLMCAP_MODEL_DIR" in (check.fix or "")
