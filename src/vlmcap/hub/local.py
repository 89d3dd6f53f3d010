"""Where a model's weights are on this machine, and how much room they take; nothing is fetched.

Resolution order, first match wins:

1. an explicit path (``--model-path``, ``path=`` here): when given, it is the only place looked
   at, so a wrong path is reported rather than hidden by another copy;
2. ``$VLMCAP_MODEL_DIR/<org>/<name>`` (``vlmcap.envs.model_dir()``): the layout
   ``vlmcap download`` writes when the variable is set, and the one plugins read
   (``VLMPlugin.model_path``);
3. the Hugging Face cache (``HF_HUB_CACHE``, read by ``huggingface_hub``): the snapshot of the
   revision, found as the hub library finds it (``try_to_load_from_cache``:
   ``models--<org>--<name>/refs/<revision>`` names the commit, ``snapshots/<commit>/`` holds
   the files).

A folder counts when it holds ``config.json`` or the partial files of an interrupted download
(``*.incomplete``); ``LocalCopy.complete`` says whether it is ready to run.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vlmcap import envs
from vlmcap.hub.catalog import DEFAULT_REVISION

if TYPE_CHECKING:
    from vlmcap.hub.catalog import KnownModel

logger = logging.getLogger(__name__)

#: A model folder's description, which vLLM and transformers read first.
CONFIG_FILE = "config.json"
#: Weight files vLLM loads from a folder.
WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt")
#: A single-file checkpoint vLLM takes as ``--model``.
SINGLE_FILE_SUFFIXES = (".gguf",)
#: Separators in a Hugging Face id (``org/name``): one at most.
MAX_HUB_ID_SLASHES = 1
#: Suffix huggingface_hub gives a file while it is being downloaded.
PARTIAL_SUFFIX = ".incomplete"
#: Where huggingface_hub keeps a ``local_dir`` download's state (its partial files included).
LOCAL_DIR_STATE = Path(".cache") / "huggingface"

#: Values of ``LocalCopy.where``.
WHERE_PATH = "path"
WHERE_MODEL_DIR = "VLMCAP_MODEL_DIR"
WHERE_HF_CACHE = "hf-cache"


@dataclass(frozen=True)
class LocalCopy:
    """A model found on disk."""

    repo_id: str
    path: Path
    #: ``path`` (given explicitly), ``VLMCAP_MODEL_DIR`` or ``hf-cache``.
    where: str
    #: Bytes of every file in the folder (links followed: the cache's blobs are counted).
    size_bytes: int
    #: Weight files found (``WEIGHT_PATTERNS``, or one single-file checkpoint).
    weight_files: int
    #: An interrupted download left partial files (``vlmcap download`` resumes it).
    partial: bool = False

    @property
    def complete(self) -> bool:
        return self.weight_files > 0 and not self.partial


def looks_local(where: str) -> bool:
    """True when ``where`` names a file system path rather than a Hugging Face id."""
    if os.path.isabs(where) or where.startswith((".", "~")) or "\\" in where:
        return True
    return where.count("/") > MAX_HUB_ID_SLASHES or Path(where).exists()


def weight_files(folder: Path) -> list[Path]:
    """The weight files directly in ``folder`` (``WEIGHT_PATTERNS``)."""
    return [f for pattern in WEIGHT_PATTERNS for f in sorted(folder.glob(pattern))]


def folder_size(folder: Path) -> int:
    """Bytes of every file under ``folder``, following links; unreadable entries are skipped."""
    total = 0
    for path in folder.rglob("*"):
        try:
            if path.is_file():
                total += path.stat().st_size
        except OSError:
            logger.debug("cannot stat %s", path, exc_info=True)
    return total


def has_partial_files(folder: Path) -> bool:
    """True when ``folder`` holds a download's partial files (``*.incomplete``)."""
    return folder.is_dir() and any(folder.rglob(f"*{PARTIAL_SUFFIX}"))


def model_dir_folder(repo_id: str) -> Path | None:
    """``$VLMCAP_MODEL_DIR/<org>/<name>`` (whether or not it exists); None when unset."""
    root = envs.model_dir()
    return root / repo_id if root is not None else None


def hf_cache_repo(repo_id: str) -> Path | None:
    """The Hugging Face cache folder of a model repo (``models--org--name``); None when
    huggingface_hub is not installed."""
    try:
        from huggingface_hub import constants
        from huggingface_hub.file_download import repo_folder_name
    except ImportError:
        return None
    return Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo_id, repo_type="model")


def cached_snapshot(repo_id: str, revision: str = DEFAULT_REVISION) -> Path | None:
    """The cache's snapshot folder of ``repo_id`` at ``revision`` when its ``config.json`` is
    cached, else None (also when huggingface_hub is not installed). Raises huggingface_hub's
    ``HFValidationError`` when ``repo_id`` is not a valid hub id."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        logger.debug("huggingface_hub does not import: the cache is not looked at")
        return None
    cached = try_to_load_from_cache(repo_id, CONFIG_FILE, revision=revision)
    return Path(cached).parent if isinstance(cached, str) else None


def folder_copy(repo_id: str, path: Path, where: str, state: Path | None = None) -> LocalCopy:
    """What is in ``path`` (a folder, or a single-file checkpoint); ``state`` is the folder
    where partial files of its download would be (``path`` itself when None)."""
    if path.is_file():
        return LocalCopy(repo_id, path, where, path.stat().st_size, weight_files=1)
    return LocalCopy(
        repo_id,
        path,
        where,
        folder_size(path),
        weight_files=len(weight_files(path)),
        partial=has_partial_files(state if state is not None else path),
    )


def _is_model_folder(path: Path) -> bool:
    if path.is_file():
        return path.suffix in SINGLE_FILE_SUFFIXES
    return (path / CONFIG_FILE).is_file() or has_partial_files(path)


def find_local(
    repo_id: str, revision: str = DEFAULT_REVISION, path: Path | str | None = None
) -> LocalCopy | None:
    """The copy of ``repo_id`` on disk, in the order of the module docstring; None if none."""
    if path is not None:
        explicit = Path(path).expanduser()
        return folder_copy(repo_id, explicit, WHERE_PATH) if _is_model_folder(explicit) else None
    folder = model_dir_folder(repo_id)
    if folder is not None and _is_model_folder(folder):
        return folder_copy(repo_id, folder, WHERE_MODEL_DIR)
    snapshot = cached_snapshot(repo_id, revision)
    if snapshot is not None:
        repo = hf_cache_repo(repo_id)
        blobs = repo / "blobs" if repo is not None else snapshot
        return folder_copy(repo_id, snapshot, WHERE_HF_CACHE, state=blobs)
    return None


def local_copy(model: KnownModel, path: Path | str | None = None) -> LocalCopy | None:
    """The copy of a catalog model on disk (at its catalog revision in the cache), or None."""
    return find_local(model.model_id, model.revision, path)


def model_dir_ids() -> list[str]:
    """Hub ids present under ``$VLMCAP_MODEL_DIR`` as ``<org>/<name>`` model folders."""
    root = envs.model_dir()
    if root is None or not root.is_dir():
        return []
    found: list[str] = []
    for org in sorted(p for p in root.iterdir() if p.is_dir()):
        found.extend(
            f"{org.name}/{name.name}"
            for name in sorted(p for p in org.iterdir() if p.is_dir())
            if _is_model_folder(name)
        )
    return found


#: Bytes in one of the units sizes are shown in (decimal, as disks and the hub count).
SIZE_UNITS = (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3))


def format_size(size_bytes: int) -> str:
    """``size_bytes`` for people: ``16.6 GB``, ``532.0 kB``, ``12 B``."""
    for unit, scale in SIZE_UNITS:
        if size_bytes >= scale:
            return f"{size_bytes / scale:.1f} {unit}"
    return f"{size_bytes} B"
