"""The images of a question set's rows: what their cells hold, where the files are, and
whether they are images at all, checked before any inference.

An image cell of the seed layout is one path, a list of paths (a parquet ``list<string>``
column; in TSV a JSON list), or Hugging Face's image struct (``{"bytes": ..., "path": ...}``,
embedded bytes). VLMEvalKit's ``image`` is base64 (a JSON or Python-literal list of base64
strings for several images; or, as VLMEvalKit writes to share an image, a short value naming
the ``index`` of the row that holds it); when ``image`` is absent or empty, ``image_path``
holds paths, as in the seed layout.

Embedded images (base64, or bytes in parquet) are decoded to files, because the pipeline loads
images from paths (``vlmcap.media.images.load_image``): they go to ``<work_dir>/qa_images/``,
named by a hash of their bytes (so a rerun or a shared image writes nothing new), and their
``image_keys`` entry is that file name.

Path policy: image paths are relative to the dataset root. An absolute path, a path whose
``..`` leaves the root, or one that resolves outside the root through a symbolic link is
refused; symbolic links are followed only when their target stays inside the (resolved) root.

Every image must be a readable image: header and, where the format has them, checksums,
through Pillow's ``verify``; pixels are not decoded. Files are checked once each, in threads.
"""

from __future__ import annotations

import ast
import base64
import binascii
import hashlib
import io
import json
import math
import os
import struct
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from vlmcap.media.images import DEFAULT_MAX_PIXELS, MediaError, check_file, display_name
from vlmcap.media.paths import confine
from vlmcap.qa.question_files import (
    SEED_LAYOUT,
    VLMEVAL_LAYOUT,
    CellProblem,
    FileProblem,
    scalar,
    type_name,
)

#: Folder under ``work_dir`` that embedded images are decoded into.
EMBEDDED_DIR_NAME = "qa_images"
#: A VLMEvalKit ``image`` cell this short is the ``index`` of the row holding the image.
IMAGE_REF_MAX_CHARS = 64
#: Threads checking image files (I/O bound: network file systems gain the most).
IMAGE_CHECK_WORKERS = 8
#: Pillow format -> suffix of a decoded embedded image.
_IMAGE_SUFFIXES = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp"}
_HASH_CHARS = 24  # hex digits of the sha256 naming a decoded image

# What Pillow raises for damaged files, besides OSError and its subclasses.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, KeyError)


@dataclass(frozen=True)
class RowImage:
    """One image of a row: a file to check (``check``) or one already decoded and verified."""

    key: str
    path: Path
    check: bool
    column: str


@dataclass(frozen=True)
class ImageRef:
    """A VLMEvalKit image cell naming the ``index`` of the row that holds the image."""

    index: str


def image_values(value: Any) -> list[Any]:
    """The entries of an image cell: a path string, a list/tuple/numpy array of them, a JSON
    list written as text, or Hugging Face image structs. Raises ``ValueError`` for other types."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("[") and text.endswith("]"):
            return _text_list(text)
        return [text] if text else []
    if isinstance(value, np.ndarray):
        return [scalar(v) for v in value.tolist()]
    if isinstance(value, list | tuple):
        return [scalar(v) for v in value]
    if isinstance(value, dict):
        return [value]
    raise ValueError(f"holds {type_name(value)}, expected a path or a list of paths")


def _text_list(text: str) -> list[Any]:
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        try:
            parsed = ast.literal_eval(text)  # VLMEvalKit writes Python lists: ['a', 'b']
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise ValueError("looks like a list but is neither JSON nor a Python list") from None
    if not isinstance(parsed, list):
        raise ValueError("looks like a list but is not one")
    return parsed


def resolve_in_root(root: Path, value: str) -> Path:
    """The real path of the file ``value`` (relative to ``root``) names, inside ``root``.

    Raises ``ValueError`` with the cause for a path that is absolute, leaves the root through
    ``..``, or resolves outside it through a symbolic link (``vlmcap.media.paths``).
    """
    target, _ = confine(root, value, root_name="the dataset root", absolute_ok=False)
    return Path(os.path.realpath(target))


def check_image(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> str | None:
    """Why the image file at ``path`` is unusable, or ``None`` when it is a readable image.

    Reads the header and lets Pillow ``verify`` the file (chunk checksums for PNG); pixels are
    not decoded, so this is fast.
    """
    try:
        check_file(path)
    except MediaError as exc:
        return str(exc).removeprefix(f"{display_name(path)}: ")
    if not path.is_file():
        return "not a regular file"
    try:
        with path.open("rb") as f:
            return _inspect_image(f, max_pixels)[1]
    except PermissionError:
        return "permission denied (cannot open the file)"
    except OSError as exc:
        return f"cannot read the file ({exc.strerror or exc})"


def check_images(paths: Iterable[Path]) -> dict[Path, str | None]:
    """``check_image`` of each of ``paths``, once each, in threads."""
    unique = sorted(set(paths))
    if not unique:
        return {}
    workers = min(IMAGE_CHECK_WORKERS, len(unique))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="qa-check") as pool:
        return dict(zip(unique, pool.map(check_image, unique), strict=True))


def _inspect_image(f: Any, max_pixels: int) -> tuple[str, str | None]:
    """``(Pillow's format name, None)`` for a readable image in ``f`` (verified, not decoded),
    else ``("", cause)``."""
    try:
        with Image.open(f) as im:
            w, h = im.size
            if w * h > max_pixels:
                return "", (
                    f"image too large: {w}x{h} ({w * h:,} pixels) is over the limit of "
                    f"{max_pixels:,} pixels"
                )
            fmt = str(im.format or "")
            im.verify()
            return fmt, None
    except Image.DecompressionBombError:
        return "", "image too large, refused as a possible decompression bomb"
    except UnidentifiedImageError:
        return "", "not a readable image (unknown format, or the header is damaged)"
    except _DECODE_ERRORS as exc:
        return "", f"not a readable image, damaged or truncated ({exc})"


class ImageCells:
    """Reads the image cells of rows: paths resolved under ``root``, embedded images decoded
    into ``work_dir``. Raises ``CellProblem`` for a bad cell, ``FileProblem`` for embedded
    images without a work folder."""

    def __init__(self, root: Path, layout: str, work_dir: Path | None) -> None:
        self.root = root
        self.layout = layout
        self.work_dir = work_dir
        self.embedded_count = 0

    def row_images(self, values: Mapping[str, Any]) -> list[RowImage | ImageRef]:
        """The images of one row, in order (``[]`` when its image cell is empty)."""
        if self.layout == VLMEVAL_LAYOUT and values.get("image") is not None:
            return self._base64_images(values["image"])
        column = "image" if self.layout == SEED_LAYOUT else "image_path"
        try:
            entries = image_values(values.get(column))
        except ValueError as exc:
            raise CellProblem(column, str(exc)) from None
        out: list[RowImage | ImageRef] = []
        for i, entry in enumerate(entries, start=1):
            label = f"image {i}" if len(entries) > 1 else "the image"
            if isinstance(entry, dict) and self.layout == SEED_LAYOUT:
                out.append(self._struct_image(column, label, entry))
                continue
            text = scalar(entry)
            if not isinstance(text, str):
                raise CellProblem(column, f"{label} holds {type_name(text)}, expected a path")
            if not text.strip():
                raise CellProblem(column, f"{label} is an empty path")
            try:
                out.append(RowImage(text, resolve_in_root(self.root, text), True, column))
            except ValueError as exc:
                raise CellProblem(column, f"image path {text!r}: {exc}") from None
        return out

    def _struct_image(self, column: str, label: str, entry: Mapping[str, Any]) -> RowImage:
        data, name = entry.get("bytes"), entry.get("path")
        if isinstance(data, bytes | bytearray) and data:
            return self._store(column, label, bytes(data), name if isinstance(name, str) else None)
        if isinstance(name, str) and name.strip():
            try:
                return RowImage(name, resolve_in_root(self.root, name), True, column)
            except ValueError as exc:
                raise CellProblem(column, f"image path {name!r}: {exc}") from None
        raise CellProblem(column, f"{label} has neither bytes nor a path")

    def _base64_images(self, value: Any) -> list[RowImage | ImageRef]:
        if not isinstance(value, str):
            try:
                entries = image_values(value)
            except ValueError as exc:
                raise CellProblem("image", str(exc)) from None
        else:
            text = value.strip()
            if len(text) <= IMAGE_REF_MAX_CHARS and not text.startswith("["):
                return [ImageRef(text)]
            try:
                entries = _text_list(text) if text.startswith("[") else [text]
            except ValueError as exc:
                raise CellProblem("image", str(exc)) from None
        out: list[RowImage | ImageRef] = []
        for i, entry in enumerate(entries, start=1):
            label = f"image {i}" if len(entries) > 1 else "the image"
            if not isinstance(entry, str) or not entry.strip():
                raise CellProblem("image", f"{label} is not a base64 string")
            compact = "".join(entry.split())
            try:
                data = base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
            except (binascii.Error, ValueError):
                raise CellProblem("image", f"{label} is not valid base64") from None
            out.append(self._store("image", label, data, None))
        return out

    def _store(self, column: str, label: str, data: bytes, name: str | None) -> RowImage:
        """Verify embedded image bytes and write them (once) to the work folder."""
        if self.work_dir is None:
            raise FileProblem(
                [
                    (
                        column,
                        "holds embedded images; give a work folder (work_dir) to decode them into",
                    )
                ]
            )
        fmt, cause = _inspect_image(io.BytesIO(data), DEFAULT_MAX_PIXELS)
        if cause is not None:
            raise CellProblem(column, f"{label}: {cause}")
        digest = hashlib.sha256(data).hexdigest()[:_HASH_CHARS]
        suffix = _IMAGE_SUFFIXES.get(fmt) or (Path(name).suffix.lower() if name else "") or ".img"
        folder = self.work_dir / EMBEDDED_DIR_NAME
        target = folder / f"{digest}{suffix}"
        if not target.is_file() or target.stat().st_size != len(data):
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{target.name}.{os.getpid()}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, target)
        self.embedded_count += 1
        return RowImage(target.name, target, False, column)
