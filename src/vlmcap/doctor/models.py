"""Is each registered plugin's model here: a local folder, or in the Hugging Face cache?

Nothing is downloaded or built: a folder is looked at (``config.json`` and weights), a hub id is
looked up in the local Hugging Face cache (``huggingface_hub.try_to_load_from_cache``). A model
that is only missing locally is a warning (vLLM downloads it on first start where there is
network); a model the user asked for by ``--model-path`` that does not exist is a failure.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from vlmcap import envs
from vlmcap.doctor.checks import Check, fail, ok, warn
from vlmcap.hub.local import (
    CONFIG_FILE,
    SINGLE_FILE_SUFFIXES,
    WEIGHT_PATTERNS,
    cached_snapshot,
    looks_local,
    weight_files,
)
from vlmcap.plugins.registry import UnknownModelError, available, get_plugin_class

logger = logging.getLogger(__name__)

BYTES_PER_MB = 1e6
#: What a plugin's ``model_path`` may raise (third-party code included).
PLUGIN_ERRORS = (
    ImportError,
    OSError,
    RuntimeError,
    AttributeError,
    ValueError,
    KeyError,
    TypeError,
)
LIST_FIX = "run `vlmcap models` to list variants"


@dataclass(frozen=True)
class Target:
    """Where a model should be: a path or hub id, and a note (``built on first use``)."""

    where: str
    built_on_first_use: bool = False


def _fix_missing(where: str) -> str:
    return f"check the path {where!r}, or {LIST_FIX} and pass one with --model"


def folder_check(name: str, path: Path) -> Check:
    """A local model: a folder with ``config.json`` and weights (or one GGUF file)."""
    path = path.expanduser()
    if not path.exists():
        return fail(name, f"{path} does not exist", _fix_missing(str(path)))
    if path.is_file():
        if path.suffix in SINGLE_FILE_SUFFIXES:
            return ok(name, f"single-file checkpoint {path}")
        return fail(
            name,
            f"{path} is a file, not a model folder",
            "pass the folder that holds config.json and the weights",
        )
    if not (path / CONFIG_FILE).is_file():
        return fail(
            name,
            f"{path} has no {CONFIG_FILE}: not a model folder",
            "pass the folder that holds config.json and the weights (a Hugging Face snapshot)",
        )
    weights = weight_files(path)
    if not weights:
        return fail(
            name,
            f"{path} has {CONFIG_FILE} but no weights ({', '.join(WEIGHT_PATTERNS)})",
            "copy or download the weight files into it (the download may have stopped early)",
        )
    size = sum(f.stat().st_size for f in weights)
    files = f"{len(weights)} weight file" + ("s" if len(weights) > 1 else "")
    return ok(name, f"local folder {path} ({files}, {size / BYTES_PER_MB:.1f} MB)")


def download_fix(repo_id: str) -> str:
    return (
        f"download it where there is network (`vlmcap download {repo_id}` or "
        f"`hf download {repo_id}`), put it in "
        f"$VLMCAP_MODEL_DIR/{repo_id}, or pass --model-path FOLDER"
    )


def hub_check(name: str, repo_id: str, *, requested: bool) -> Check:
    """A hub id: found in the local Hugging Face cache, or not (no download)."""
    try:
        from huggingface_hub import constants
        from huggingface_hub.errors import HFValidationError
    except ImportError:
        return warn(
            name,
            f"{repo_id}: huggingface_hub does not import, the cache cannot be looked at",
            "install it: `pip install huggingface_hub` (transformers needs it too)",
        )
    try:
        snapshot = cached_snapshot(repo_id)
    except HFValidationError as exc:
        return fail(
            name,
            f"{repo_id!r} is neither a folder nor a Hugging Face id: {exc}",
            _fix_missing(repo_id),
        )
    if snapshot is not None:
        if not weight_files(snapshot):
            return warn(
                name,
                f"{repo_id}: config in the Hugging Face cache ({snapshot}) but no weights",
                download_fix(repo_id),
            )
        return ok(name, f"{repo_id} in the Hugging Face cache ({snapshot})")
    detail = f"{repo_id} is not in the Hugging Face cache ({constants.HF_HUB_CACHE})"
    if requested and constants.HF_HUB_OFFLINE:
        return fail(name, f"{detail} and HF_HUB_OFFLINE is set", download_fix(repo_id))
    return warn(name, f"{detail}; vLLM would download it on first start", download_fix(repo_id))


def target_check(name: str, target: Target, *, requested: bool) -> Check:
    if target.built_on_first_use:
        path = Path(target.where)
        if (path / CONFIG_FILE).is_file():
            return folder_check(name, path)
        return ok(name, f"built on first use (seconds, no network) at {path}")
    if looks_local(target.where):
        return folder_check(name, Path(target.where))
    return hub_check(name, target.where, requested=requested)


def plugin_target(variant: str) -> Target:
    """Where ``variant``'s model is, without downloading or building anything."""
    from vlmcap.plugins.tiny import BuiltOnFirstUse

    cls = get_plugin_class(variant)
    if issubclass(cls, BuiltOnFirstUse):  # a tiny model: shipped, or built on first use
        planned = cls.tiny.planned()
        if planned is not None:
            return Target(str(planned), built_on_first_use=True)
    return Target(cls(None).model_path)


def variant_check(variant: str, *, requested: bool = False) -> Check:
    name = f"model {variant}"
    try:
        target = plugin_target(variant)
    except UnknownModelError as exc:
        return fail(name, str(exc), LIST_FIX)
    except PLUGIN_ERRORS as exc:
        logger.debug("plugin %s does not load", variant, exc_info=True)
        check = fail if requested else warn
        return check(
            name,
            f"the plugin does not load: {type(exc).__name__}: {exc}",
            "reinstall vlmcap (`pip install -e .`) or the package that provides this plugin",
        )
    return target_check(name, target, requested=requested)


def model_dir_check() -> Check | None:
    """``$VLMCAP_MODEL_DIR``, when set: it must be a folder."""
    root = envs.model_dir()
    if root is None:
        return None
    name = "VLMCAP_MODEL_DIR"
    if not root.is_dir():
        return warn(
            name,
            f"{root} is not a folder: plugins fall back to Hugging Face ids",
            "create it and put models in it as <dir>/<org>/<name>, or unset VLMCAP_MODEL_DIR",
        )
    return ok(name, f"{root}")


def requested_checks(model: str | None, model_path: str | None) -> list[Check]:
    """The model the user asked about (``--model`` and/or ``--model-path``)."""
    if model_path is None:
        return [variant_check(model, requested=True)] if model is not None else []
    checks = []
    if model is not None and model not in available():
        checks.append(fail(f"model {model}", f"unknown model variant {model!r}", LIST_FIX))
    name = f"--model-path for {model}" if model else "--model-path"
    checks.append(target_check(name, Target(model_path), requested=True))
    return checks


def model_checks(model: str | None = None, model_path: str | None = None) -> list[Check]:
    """The requested model first (if any), then every registered variant."""
    checks = requested_checks(model, model_path)
    if (root := model_dir_check()) is not None:
        checks.append(root)
    for variant in available():
        if variant == model and model_path is None:
            continue  # already checked as the requested one
        checks.append(variant_check(variant))
    return checks
