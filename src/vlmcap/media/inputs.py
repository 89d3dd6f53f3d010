"""Find the media files a user names: folders, glob patterns, single files and manifests.

``discover`` returns the files sorted by key, each once, plus the problems met on the way
(unreadable folders, symbolic link loops, broken links, manifest rows that cannot be used).
Problems are logged as warnings and never stop discovery; only a path that does not exist at
all raises ``FileNotFoundError`` (a typo the user must fix).

Keys are POSIX paths relative to the root a file was found under: the folder given, the fixed
part of a glob pattern (``data`` for ``data/**/*.mp4``), the manifest's folder, or just the file
name for a file named on its own. They are valid UTF-8 text even for file names that are not
(undecodable bytes appear as ``\\xNN``), so they can be written to any output.

One policy for paths and links (``vlmcap.media.paths``): a path written in a data file (a
manifest row, a QA set's image) must stay inside that file's folder, symbolic links included
(``..`` out of it, absolute paths elsewhere, links whose target is outside and URLs are
refused, row by row). Files found by walking a folder the user named are the user's own file
system: their links are followed wherever they point (datasets are often trees of links into
shared storage, as a Hugging Face snapshot is); those leaving the folder are counted in one
INFO line, and link loops and broken links are reported.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import lru_cache
from pathlib import Path
from typing import overload

from vlmcap.media.images import IMAGE_EXTENSIONS, display_name
from vlmcap.media.manifest import read_manifest, resolve_in_root
from vlmcap.media.video import VIDEO_EXTENSIONS

logger = logging.getLogger(__name__)

_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class MediaFile:
    path: Path
    key: str  # path relative to the root it was found under (stable across machines)
    kind: str  # "image" or "video"


@dataclass(frozen=True)
class InputProblem:
    """Something under the given inputs that was skipped, and why."""

    path: str  # printable path (or ``manifest:row``)
    cause: str

    def __str__(self) -> str:
        return f"{self.path}: {self.cause}"


@dataclass
class DiscoveryResult(Sequence[MediaFile]):
    """The files found (sorted by key, no duplicates) and the problems met.

    It is a sequence of its ``files``, so code written for a plain list keeps working.
    """

    files: list[MediaFile] = field(default_factory=list)
    problems: list[InputProblem] = field(default_factory=list)

    @overload
    def __getitem__(self, index: int) -> MediaFile: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[MediaFile]: ...
    def __getitem__(self, index: int | slice) -> MediaFile | Sequence[MediaFile]:
        return self.files[index]

    def __len__(self) -> int:
        return len(self.files)

    def __iter__(self) -> Iterator[MediaFile]:
        return iter(self.files)


def media_kind(path: str | Path) -> str | None:
    """``"image"`` or ``"video"`` from the file's extension, ``None`` for anything else."""
    ext = Path(path).suffix.lower()
    if ext in IMAGE_EXTENSIONS:
        return "image"
    if ext in VIDEO_EXTENSIONS:
        return "video"
    return None


def normalize_extensions(extensions: Iterable[str]) -> frozenset[str]:
    """``{"MP4", ".jpg"}`` -> ``{".mp4", ".jpg"}``; ``ValueError`` for a non-media extension."""
    out = set()
    for ext in extensions:
        e = ext.lower() if ext.startswith(".") else f".{ext.lower()}"
        if media_kind(f"x{e}") is None:
            known = ", ".join(sorted(IMAGE_EXTENSIONS | VIDEO_EXTENSIONS))
            raise ValueError(f"{ext!r} is not an image or video extension (known: {known})")
        out.add(e)
    return frozenset(out)


def discover(
    paths: Iterable[str | Path],
    *,
    extensions: Iterable[str] | None = None,
    manifest: str | Path | None = None,
    path_column: str = "path",
    include_hidden: bool = False,
) -> DiscoveryResult:
    """Media files under ``paths`` and in ``manifest``, sorted by key, each once.

    ``paths`` may be folders (searched recursively, following symbolic links, skipping names
    that start with a dot unless ``include_hidden``), glob patterns (``data/**/*.mp4``) or
    files. ``extensions`` (e.g. ``{".mp4"}``) keeps only those. ``manifest`` is a JSONL, CSV or
    parquet file whose ``path_column`` lists files relative to its folder.

    Raises ``FileNotFoundError`` for a path, pattern folder or manifest that does not exist,
    ``ManifestError`` for a manifest that cannot be read, ``ValueError`` for a bad extension.
    """
    if isinstance(paths, str | Path):
        paths = [paths]  # one path, not the characters of one
    allowed = None if extensions is None else normalize_extensions(extensions)
    found = _Collector(allowed, include_hidden)
    for raw in paths:
        text = os.fspath(raw)
        path = Path(text)
        try:
            if not os.path.lexists(path) and _GLOB_CHARS & set(text):
                found.glob(text)
            elif not path.exists():
                broken = " (broken symbolic link)" if os.path.lexists(path) else ""
                raise FileNotFoundError(f"{display_name(path)}: no such file or folder{broken}")
            elif path.is_dir():
                found.walk(path)
            else:
                found.file(path, _text_key(path.name), explicit=True)
        except PermissionError:
            found.problem(path, "permission denied (cannot reach it); skipped")
    if manifest is not None:
        found.manifest(Path(manifest), path_column)
    return DiscoveryResult([found.files[k] for k in sorted(found.files)], found.problems)


def _text_key(key: str) -> str:
    """A key as valid UTF-8 text (undecodable file-name bytes become ``\\xNN``)."""
    return os.fsencode(key).decode("utf-8", "backslashreplace")


class _Collector:
    """Files found so far (by key, first wins) and problems."""

    def __init__(self, allowed: frozenset[str] | None, include_hidden: bool) -> None:
        self.allowed = allowed
        self.include_hidden = include_hidden
        self.files: dict[str, MediaFile] = {}
        self.paths: set[str] = set()  # absolute paths already taken (same file named twice)
        self.problems: list[InputProblem] = []

    def problem(self, where: str | Path, cause: str) -> None:
        text = where if isinstance(where, str) else display_name(where)
        self.problems.append(InputProblem(text, cause))
        logger.warning("%s: %s", text, cause)

    def kind(self, path: Path) -> str | None:
        """The media kind of ``path`` when it passes the extension filter."""
        if self.allowed is not None and path.suffix.lower() not in self.allowed:
            return None
        return media_kind(path)

    def file(self, path: Path, key: str, *, explicit: bool = False) -> bool:
        """Take ``path`` under ``key``; False when it is not a media file we want."""
        kind = self.kind(path)
        if kind is None:
            if explicit and media_kind(path) is None:
                self.problem(path, "not an image or video extension; skipped")
            return False
        absolute = os.path.abspath(path)
        if absolute in self.paths:
            return True  # the same file reached twice (a folder and a file in it, say)
        other = self.files.get(key)
        if other is not None:
            self.problem(
                path,
                f"key {key!r} is already used by {display_name(other.path)}; skipped "
                "(give a common parent folder so the keys differ)",
            )
            return True
        self.paths.add(absolute)
        self.files[key] = MediaFile(path, key, kind)
        return True

    def walk(self, root: Path, match: _Matcher | None = None) -> int:
        """Add the media files under ``root`` (keys: paths relative to it) that ``match``
        accepts; return how many matched. Symbolic links are followed wherever they point (a
        dataset is often a tree of links into shared storage, as a Hugging Face snapshot is);
        those that leave ``root`` are counted in one INFO line. A link back to a folder being
        walked is reported, not followed."""
        try:
            st = root.stat()
        except OSError as exc:
            self.problem(root, f"cannot read folder ({exc.strerror or exc}); skipped")
            return 0
        matched = 0
        inside = os.path.realpath(root) + os.sep
        outside: list[Path] = []  # links whose target is not under root (followed)
        stack = [(root, "", frozenset({(st.st_dev, st.st_ino)}))]
        while stack:
            folder, rel, ancestors = stack.pop()
            for entry in self._entries(folder):
                path, name = Path(entry.path), entry.name
                wanted = match is None or match.matches(rel + name)
                try:
                    is_dir = entry.is_dir()
                    is_file = not is_dir and entry.is_file()
                except OSError as exc:
                    if wanted or match is None or match.could_contain(rel + name):
                        self._bad_entry(path, exc)
                    continue
                if is_dir:
                    if match is not None and not match.could_contain(rel + name):
                        continue
                    try:
                        sub = entry.stat()
                    except OSError as exc:
                        self._bad_entry(path, exc)
                        continue
                    ident = (sub.st_dev, sub.st_ino)
                    if ident in ancestors:
                        target = display_name(os.path.realpath(path))
                        self.problem(path, f"symbolic link loop (back to {target}); not followed")
                        continue
                    if _leaves(entry, inside):
                        outside.append(path)
                    stack.append((path, f"{rel}{name}/", ancestors | {ident}))
                elif is_file:
                    if wanted:
                        taken = self.file(path, _text_key(rel + name))
                        matched += taken
                        if taken and _leaves(entry, inside):
                            outside.append(path)
                elif wanted and entry.is_symlink() and self.kind(path) is not None:
                    self.problem(path, "broken symbolic link (its target does not exist)")
        if outside:
            logger.info(
                "%s: %d symbolic link(s) point outside it and were followed (keys stay their "
                "paths under it), e.g. %s -> %s",
                display_name(root),
                len(outside),
                display_name(outside[0]),
                display_name(os.path.realpath(outside[0])),
            )
        return matched

    def _entries(self, folder: Path) -> list[os.DirEntry[str]]:
        """Entries of ``folder`` sorted by name (hidden ones left out unless asked for)."""
        try:
            with os.scandir(folder) as it:
                entries = [e for e in it if self.include_hidden or not e.name.startswith(".")]
        except PermissionError:
            self.problem(folder, "permission denied; folder skipped")
            return []
        except OSError as exc:
            self.problem(folder, f"cannot list folder ({exc.strerror or exc}); skipped")
            return []
        return sorted(entries, key=lambda e: e.name)

    def _bad_entry(self, path: Path, exc: OSError) -> None:
        if exc.errno == errno.ELOOP:
            self.problem(path, "symbolic link loop; not followed")
        else:
            self.problem(path, f"cannot read ({exc.strerror or exc}); skipped")

    def glob(self, pattern: str) -> None:
        parts = Path(pattern).parts
        fixed = 0
        while fixed < len(parts) - 1 and not _GLOB_CHARS & set(parts[fixed]):
            fixed += 1
        root = Path(*parts[:fixed]) if fixed else Path(".")
        if not root.is_dir():
            raise FileNotFoundError(f"{pattern}: folder {display_name(root)} does not exist")
        if not self.walk(root, _Matcher(tuple(parts[fixed:]))):
            self.problem(pattern, "pattern matched no image or video file")

    def manifest(self, path: Path, column: str) -> None:
        listed = read_manifest(path, path_column=column)
        where = display_name(path)
        for row, cause in listed.problems:
            self.problems.append(InputProblem(f"{where} row {row}", cause))
        for entry in listed.rows:
            label = f"{where} row {entry.row}"
            try:
                target, key = resolve_in_root(listed.root, entry.value)
            except ValueError as exc:
                self.problem(label, f"{entry.value!r}: {exc}")
                continue
            if not target.exists():
                self.problem(label, f"{entry.value!r}: file not found")
            elif target.is_dir():
                self.problem(label, f"{entry.value!r}: is a folder; list files in a manifest")
            elif media_kind(target) is None:
                self.problem(label, f"{entry.value!r}: not an image or video extension")
            elif os.path.abspath(target) in self.paths:
                self.problem(label, f"{entry.value!r}: listed before; taken once")
            else:
                self.file(target, _text_key(key))


def _leaves(entry: os.DirEntry[str], inside: str) -> bool:
    """True for a symbolic link whose target is not under the folder ``inside`` names."""
    return entry.is_symlink() and not os.path.realpath(entry.path).startswith(inside)


class _Matcher:
    """Matches relative POSIX paths against glob parts; ``**`` spans any number of folders."""

    def __init__(self, parts: tuple[str, ...]) -> None:
        self.parts = parts

    def matches(self, rel: str) -> bool:
        return _match(self.parts, tuple(rel.split("/")), False)

    def could_contain(self, rel_dir: str) -> bool:
        return _match(self.parts, tuple(rel_dir.split("/")), True)


@lru_cache(maxsize=4096)
def _match(pattern: tuple[str, ...], parts: tuple[str, ...], prefix: bool) -> bool:
    """Whether ``parts`` match ``pattern`` (with ``prefix``: could be the start of a match)."""
    if not parts:
        return prefix or all(p == "**" for p in pattern)
    if not pattern:
        return False
    head = pattern[0]
    if head == "**":
        return _match(pattern[1:], parts, prefix) or _match(pattern, parts[1:], prefix)
    return fnmatchcase(parts[0], head) and _match(pattern[1:], parts[1:], prefix)
