"""Find the media files under the paths a user gives."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from vlmcap.media.images import IMAGE_EXTENSIONS
from vlmcap.media.video import VIDEO_EXTENSIONS

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MediaFile:
    path: Path
    key: str  # path relative to the root it was found under (stable across machines)
    kind: str  # "image" or "video"


def media_kind(path: Path) -> str | None:
    ext = path.suffix.lower()
    if ext in IMAGE_EXTENSIONS:
        return "image"
    if ext in VIDEO_EXTENSIONS:
        return "video"
    return None


def discover(paths: Iterable[str | Path]) -> list[MediaFile]:
    """Media files under ``paths`` (files or folders, recursive), sorted by key, no duplicates.

    Raises ``FileNotFoundError`` for a path that does not exist.
    """
    found: dict[str, MediaFile] = {}
    for raw in paths:
        root = Path(raw)
        if not root.exists():
            raise FileNotFoundError(f"{root}: no such file or folder")
        if root.is_file():
            kind = media_kind(root)
            if kind is None:
                logger.warning("%s: not a known image or video extension, skipped", root)
                continue
            found.setdefault(root.name, MediaFile(root, root.name, kind))
            continue
        for path in sorted(root.rglob("*")):
            kind = media_kind(path)
            if kind is None or not path.is_file():
                continue
            key = path.relative_to(root).as_posix()
            found.setdefault(key, MediaFile(path, key, kind))
    return [found[k] for k in sorted(found)]
