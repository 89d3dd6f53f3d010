"""Read the media paths listed in a manifest: JSONL, CSV/TSV or parquet, one row per file.

Rows name files relative to the manifest's folder (absolute paths are accepted when they lie
inside it). A path that leaves the folder (``../x.mp4``, ``/etc/passwd``) is refused, so a
manifest cannot point the tool at files its author does not own. The check is on the path as
written: symbolic links placed inside the folder are followed (datasets are often links into a
blob store).

A manifest that cannot be used as a whole (unknown format, no path column, not UTF-8) raises
``ManifestError``; a bad row is a problem of that row only and the rest are read.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlmcap.media.paths import confine

logger = logging.getLogger(__name__)

#: Manifest suffix -> format.
MANIFEST_FORMATS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
}


class ManifestError(ValueError):
    """A manifest that cannot be read at all; the message names it and says why."""


@dataclass(frozen=True)
class ManifestRow:
    """One listed path: ``row`` is 1-based (the line of a JSONL file, the data row of a table)."""

    row: int
    value: str


@dataclass
class Manifest:
    """The rows of a manifest, the folder they resolve against, and rows that were unusable."""

    path: Path
    root: Path
    rows: list[ManifestRow] = field(default_factory=list)
    problems: list[tuple[int, str]] = field(default_factory=list)  # (row, cause)


def read_manifest(path: str | Path, *, path_column: str = "path") -> Manifest:
    """Read the ``path_column`` of every row of ``path`` (format from its suffix).

    Raises ``FileNotFoundError`` when the manifest does not exist and ``ManifestError`` when it
    cannot be used at all.
    """
    p = Path(path)
    try:
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no such manifest file")
    except PermissionError:
        raise ManifestError(f"{p}: permission denied (cannot reach the manifest)") from None
    fmt = MANIFEST_FORMATS.get(p.suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(MANIFEST_FORMATS))
        raise ManifestError(f"{p}: unknown manifest format {p.suffix!r} (use one of {known})")
    manifest = Manifest(path=p, root=Path(os.path.abspath(p.parent)))
    try:
        if fmt == "jsonl":
            _read_jsonl(manifest, path_column)
        elif fmt == "parquet":
            _read_parquet(manifest, path_column)
        else:
            _read_table(manifest, path_column, "\t" if fmt == "tsv" else ",")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except PermissionError:
        raise ManifestError(f"{p}: permission denied") from None
    except csv.Error as exc:
        raise ManifestError(f"{p}: not a readable CSV file ({exc})") from None
    for row, cause in manifest.problems:
        logger.warning("%s row %d: %s", p, row, cause)
    return manifest


def _take(manifest: Manifest, row: int, value: Any) -> None:
    if value is None or value == "":
        manifest.problems.append((row, "empty path"))
    elif not isinstance(value, str):
        manifest.problems.append((row, f"path is not text: {value!r}"))
    else:
        manifest.rows.append(ManifestRow(row, value))


def _read_jsonl(manifest: Manifest, column: str) -> None:
    fields_seen: set[str] = set()
    with manifest.path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                manifest.problems.append((line_no, f"not valid JSON ({exc.msg})"))
                continue
            if not isinstance(obj, dict):
                manifest.problems.append((line_no, "not a JSON object"))
                continue
            fields_seen.update(obj)
            if column not in obj:
                manifest.problems.append((line_no, f"no {column!r} field"))
                continue
            _take(manifest, line_no, obj[column])
    if fields_seen and column not in fields_seen:
        raise ManifestError(
            f"{manifest.path}: no row has a {column!r} field (fields: "
            f"{', '.join(sorted(fields_seen))}); choose the path column"
        )


def _read_table(manifest: Manifest, column: str, delimiter: str) -> None:
    with manifest.path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        names = reader.fieldnames or []
        if column not in names:
            raise ManifestError(
                f"{manifest.path}: no {column!r} column (columns: {', '.join(names) or 'none'})"
            )
        for row_no, row in enumerate(reader, start=1):
            _take(manifest, row_no, row.get(column))


def _read_parquet(manifest: Manifest, column: str) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ManifestError(
            f"{manifest.path}: reading parquet needs pyarrow (pip install pyarrow)"
        ) from None
    try:
        names = pq.ParquetFile(manifest.path).schema_arrow.names
        if column not in names:
            raise ManifestError(
                f"{manifest.path}: no {column!r} column (columns: {', '.join(names)})"
            )
        values = pq.read_table(manifest.path, columns=[column]).column(column).to_pylist()
    except (pa.ArrowException, OSError) as exc:
        if isinstance(exc, PermissionError):
            raise
        raise ManifestError(f"{manifest.path}: not a readable parquet file ({exc})") from None
    for row_no, value in enumerate(values, start=1):
        _take(manifest, row_no, value)


def resolve_in_root(root: Path, value: str) -> tuple[Path, str]:
    """The file ``value`` names under ``root`` and its key (POSIX path relative to ``root``).

    Raises ``ValueError`` with the cause for a path that leaves ``root`` (``..``, an absolute
    path elsewhere, a symbolic link out of it) or cannot be a file (``vlmcap.media.paths``).
    """
    return confine(root, value, root_name="the manifest's folder", absolute_ok=True)
