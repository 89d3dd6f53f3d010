"""Fetch a model from the Hugging Face hub: ``download(model, revision, target) -> Path``.

Where it goes: ``target`` when given; else ``$VLMCAP_MODEL_DIR/<org>/<name>`` when that variable
is set (a plain folder through ``local_dir=``, the layout plugins read); else the Hugging Face
cache (``HF_HUB_CACHE``), where vLLM looks for a hub id. ``huggingface_hub.snapshot_download``
does the work: files already there are skipped and an interrupted download resumes, so running
the same command again finishes or updates a copy.

Flow::

    resolve(model)                 -> hub id + revision (variant name, catalog id or any org/name)
    repo_files(id, revision)       -> file sizes (HfApi.model_info, files_metadata=True)
    check_space(missing bytes, destination)  -> DownloadError before anything is written
    snapshot_download(...)         -> the folder (local files only when the hub did not answer)

Every failure a user can do something about becomes a ``DownloadError`` saying what to do:
offline or the hub unreachable (copy the weights by hand into ``$VLMCAP_MODEL_DIR``), no access
(accept the licence, set ``HF_TOKEN``; a token is never printed), not enough disk space (checked
before, and ``ENOSPC`` while writing).
"""

from __future__ import annotations

import errno
import importlib
import logging
import os
import re
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path

from vlmcap import envs
from vlmcap.hub.catalog import DEFAULT_REVISION, KnownModel, find, known_names
from vlmcap.hub.local import find_local, format_size, model_dir_folder

logger = logging.getLogger(__name__)

#: What a Hugging Face model id looks like (``org/name``); the hub validates the rest.
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
#: HTTP statuses of a refused download (no token, or a token without access).
ACCESS_DENIED_STATUSES = frozenset({401, 403})
#: Exceptions the HTTP libraries under huggingface_hub raise when the hub cannot be reached,
#: as (module, class); the ones that import are caught.
NETWORK_ERRORS = (
    ("httpx2", "TransportError"),
    ("httpx", "TransportError"),
    ("requests.exceptions", "ConnectionError"),
    ("requests.exceptions", "Timeout"),
)
#: Environment variables that may hold a hub token (their values are never printed).
TOKEN_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
#: Where the copy-by-hand advice puts models when VLMCAP_MODEL_DIR is unset.
MODEL_DIR_EXAMPLE = "/path/to/models"


class DownloadError(RuntimeError):
    """A download that cannot be done as asked; the message says what to do about it."""


def resolve(model: KnownModel | str) -> tuple[str, str]:
    """Hub id and default revision of a catalog entry, a variant name, a catalog hub id, or
    any other ``org/name`` id (fetched as is, at ``main``). ``ValueError`` for anything else."""
    if isinstance(model, KnownModel):
        return model.model_id, model.revision
    try:
        known = find(model)
    except ValueError:
        if HUB_ID.fullmatch(model):
            return model, DEFAULT_REVISION
        raise ValueError(
            f"unknown model {model!r}: give a known variant ({', '.join(known_names())}) or a "
            "Hugging Face id as org/name"
        ) from None
    return known.model_id, known.revision


# ---- disk space --------------------------------------------------------------------------


def free_bytes(folder: Path) -> int:
    """Free bytes on the file system that holds ``folder`` (or its nearest existing parent)."""
    path = folder.expanduser().absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def space_shortfall(required_bytes: int, available_bytes: int) -> int:
    """Bytes missing to store ``required_bytes`` in ``available_bytes`` (0 when it fits)."""
    return max(0, required_bytes - available_bytes)


def check_space(required_bytes: int, folder: Path, repo_id: str = "the model") -> None:
    """``DownloadError`` when ``folder``'s disk has less than ``required_bytes`` free."""
    available = free_bytes(folder)
    if space_shortfall(required_bytes, available) > 0:
        raise DownloadError(
            f"not enough disk space for {repo_id} in {folder}: {format_size(required_bytes)} "
            f"to download, {format_size(available)} free. Free some space, or download to a "
            "larger disk with --dir DIR (or point VLMCAP_MODEL_DIR or HF_HUB_CACHE at one)."
        )


def bytes_missing(files: Mapping[str, int], folder: Path | None) -> int:
    """Bytes of ``files`` (name -> size) not already in ``folder`` at their full size."""
    if folder is None:
        return sum(files.values())
    return sum(size for name, size in files.items() if _size_of(folder / name) != size)


def _size_of(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:  # not there (or unreadable): to be downloaded
        return None


def repo_files(repo_id: str, revision: str) -> dict[str, int] | None:
    """Name -> size of the repo's files at ``revision``; None when the hub does not list
    sizes. Raises what huggingface_hub raises (offline, unreachable, no access)."""
    from huggingface_hub import HfApi, constants

    info = HfApi().model_info(
        repo_id, revision=revision, files_metadata=True, timeout=constants.HF_HUB_ETAG_TIMEOUT
    )
    if info.siblings is None:
        return None
    return {s.rfilename: s.size for s in info.siblings if s.size is not None}


# ---- errors ------------------------------------------------------------------------------


def network_errors() -> tuple[type[BaseException], ...]:
    """Exception types meaning "the hub cannot be reached", for the libraries installed."""
    kinds: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module_name, name in NETWORK_ERRORS:
        try:
            kind = getattr(importlib.import_module(module_name), name, None)
        except ImportError:
            continue
        if isinstance(kind, type) and issubclass(kind, BaseException):
            kinds.append(kind)
    return tuple(kinds)


def hub_errors() -> tuple[type[BaseException], ...]:
    """What huggingface_hub raises for a download it cannot do (HTTP errors are ``OSError``,
    invalid ids ``ValueError``; its Xet transfer raises its own)."""
    from huggingface_hub import errors

    kinds: list[type[BaseException]] = [OSError, ValueError, RuntimeError]
    xet = getattr(errors, "XetDownloadError", None)
    if isinstance(xet, type) and issubclass(xet, BaseException):
        kinds.append(xet)
    return tuple(kinds)


def _disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    return os.strerror(errno.ENOSPC) in str(exc)  # raised by native code as plain text


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from or during, outermost first."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def _token_present() -> bool:
    """A hub token is configured (environment or saved login); its value is not read out."""
    from huggingface_hub import constants

    return any(os.environ.get(v) for v in TOKEN_VARS) or Path(constants.HF_TOKEN_PATH).is_file()


def _redact(text: str) -> str:
    for var in TOKEN_VARS:
        token = os.environ.get(var)
        if token:
            text = text.replace(token, "***")
    return text


def _copy_by_hand(repo_id: str, revision: str) -> str:
    root = envs.model_dir()
    base = str(root) if root is not None else MODEL_DIR_EXAMPLE
    tail = "" if root is not None else f" and set VLMCAP_MODEL_DIR={base}"
    return (
        f"To copy the weights by hand: on a machine with network run `hf download {repo_id} "
        f"--revision {revision} --local-dir {repo_id.rsplit('/', 1)[-1]}`, copy that folder "
        f"(config.json, weights, tokenizer and processor files) to {base}/{repo_id} here{tail}."
    )


def _access_steps(repo_id: str, endpoint: str) -> str:
    """How to get access to a gated or private model; says whether a token is set, never
    what it is."""
    token = (
        "A token is set, but its account has no access yet: accept the licence with that account."
        if _token_present()
        else "No token is set."
    )
    return (
        f"accept its licence on {endpoint}/{repo_id} while logged in, then give this machine "
        f"a read token: set HF_TOKEN (from {endpoint}/settings/tokens) or run "
        f"`huggingface-cli login` (`hf auth login`). {token}"
    )


def explain(exc: BaseException, repo_id: str, revision: str, destination: Path) -> DownloadError:
    """The ``DownloadError`` for what huggingface_hub (or the file system) raised."""
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    endpoint = constants.ENDPOINT
    chain = list(_chain(exc))
    for cause in chain:
        if isinstance(cause, GatedRepoError):
            return DownloadError(
                f"no access to {repo_id}, a gated model: " + _access_steps(repo_id, endpoint)
            )
        if isinstance(cause, RevisionNotFoundError):
            return DownloadError(
                f"{repo_id} has no revision {revision!r}: pass a branch, tag or commit that "
                f"exists (--revision), or leave it out for {DEFAULT_REVISION!r}."
            )
        if isinstance(cause, RepositoryNotFoundError):
            return DownloadError(
                f"{repo_id} is not on the hub at {endpoint}, or this machine has no access to "
                "it: check the id (`vlmcap models` lists the known ones); if it is gated or "
                "private, " + _access_steps(repo_id, endpoint)
            )
        if isinstance(cause, HfHubHTTPError) and _status(cause) in ACCESS_DENIED_STATUSES:
            return DownloadError(
                f"no access to {repo_id} (HTTP {_status(cause)}): "
                + _access_steps(repo_id, endpoint)
            )
        if _disk_full(cause):
            return DownloadError(
                f"the disk under {destination} filled up while downloading {repo_id}: free "
                "some space (or pass --dir on a larger disk) and run the same command again; "
                "the download resumes where it stopped."
            )
    if constants.HF_HUB_OFFLINE or any(isinstance(c, OfflineModeIsEnabled) for c in chain):
        return DownloadError(
            f"cannot download {repo_id}: HF_HUB_OFFLINE is set, so this machine does not "
            "contact the Hugging Face hub (unset it where there is network). "
            + _copy_by_hand(repo_id, revision)
        )
    unreachable = network_errors()
    if any(isinstance(c, (LocalEntryNotFoundError, *unreachable)) for c in chain):
        return DownloadError(
            f"cannot download {repo_id}: this machine cannot reach the Hugging Face hub at "
            f"{endpoint} (check the network, a proxy through HTTPS_PROXY, or HF_ENDPOINT). "
            + _copy_by_hand(repo_id, revision)
        )
    if isinstance(exc, HFValidationError):
        return DownloadError(f"{repo_id!r} is not a valid Hugging Face id: {exc}")
    if isinstance(exc, HfHubHTTPError):
        return DownloadError(
            f"the hub answered HTTP {_status(exc)} for {repo_id}; try again later (the "
            "download resumes where it stopped)."
        )
    return DownloadError(f"downloading {repo_id} failed: {type(exc).__name__}: {_redact(str(exc))}")


# ---- download ----------------------------------------------------------------------------


def destination(repo_id: str, target: Path | None = None) -> Path | None:
    """The folder a download writes to: ``target``, ``$VLMCAP_MODEL_DIR/<org>/<name>``, or
    None for the Hugging Face cache."""
    if target is not None:
        return target.expanduser()
    return model_dir_folder(repo_id)


def download(
    model: KnownModel | str, revision: str | None = None, target: Path | None = None
) -> Path:
    """Fetch ``model`` (see ``resolve``) at ``revision`` (its catalog revision by default)
    into ``target`` / ``$VLMCAP_MODEL_DIR`` / the Hugging Face cache; the folder it is in.

    ``ValueError`` when ``model`` is neither known nor a hub id; ``DownloadError`` otherwise.
    """
    repo_id, default_revision = resolve(model)
    revision = revision or default_revision
    try:
        from huggingface_hub import constants, snapshot_download
    except ImportError as exc:
        raise DownloadError(
            "huggingface_hub is not installed: `pip install huggingface_hub`"
        ) from exc
    local_dir = destination(repo_id, target)
    where = local_dir if local_dir is not None else Path(constants.HF_HUB_CACHE)
    unreachable = network_errors()
    failures = (*hub_errors(), *unreachable)

    reachable = not constants.HF_HUB_OFFLINE
    files = None
    if reachable:
        try:
            files = repo_files(repo_id, revision)
        except failures as exc:
            if not isinstance(exc, unreachable):
                raise explain(exc, repo_id, revision, where) from exc
            logger.debug("the hub does not answer for %s: %s", repo_id, exc)
            reachable = False  # a complete copy on disk may still do
    if files:
        present = local_dir
        if present is None and (cached := find_local(repo_id, revision)) is not None:
            present = cached.path
        check_space(bytes_missing(files, present), where, repo_id)

    if reachable:
        logger.info("downloading %s (%s) into %s", repo_id, revision, where)
    else:
        logger.info("the hub is not reachable: looking for a complete %s in %s", repo_id, where)
    try:
        path = Path(
            snapshot_download(
                repo_id,
                revision=revision,
                local_dir=local_dir,
                local_files_only=not reachable,
            )
        )
    except failures as exc:
        raise explain(exc, repo_id, revision, where) from exc
    if not reachable:
        copy = find_local(repo_id, revision, path)
        if copy is None or not copy.complete:
            offline = explain(ConnectionError("hub not reachable"), repo_id, revision, where)
            raise DownloadError(f"{path} holds an incomplete copy; {offline}")
    return path
