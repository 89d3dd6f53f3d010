"""Generated hostile manifests (JSONL, CSV, TSV, parquet): a path read from one never leaves
the manifest's folder, and a manifest that cannot be used raises ``ManifestError`` naming it.

Every example builds a fresh folder with files, links into it and links out of it, writes one
manifest there, and reads it three ways: ``read_manifest`` (the rows), ``resolve_in_root`` /
``confine`` on each row (the path policy), and ``discover`` (what a caption job takes).
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from vlmcap.media.images import display_name
from vlmcap.media.inputs import discover
from vlmcap.media.manifest import ManifestError, read_manifest, resolve_in_root
from vlmcap.media.paths import confine

#: File IO in every example: no per-example deadline, a bounded number of examples.
FUZZ = settings(max_examples=100, deadline=None)

#: Placeholders replaced by the example's own absolute paths.
ROOT_MARK = "<ROOT>"
OUTSIDE_MARK = "<OUTSIDE>"

#: Pieces of paths: names that exist, links in and out, dots, separators, odd characters.
FRAGMENTS = [
    "..", ".", "", "videos", "a.mp4", "images", "b.jpg", "link_in.mp4", "link_out.mp4",
    "abs_out.mp4", "dir_out", "dir_in", "loop", "loop_a", "dangling.mp4", "outside.mp4",
    "outside_dir", "c.mp4", "data", "~", "\x00", "nul\x00.mp4", "\n", "\r\n", "\t", " ",
    "é.mp4", "日本.jpg", "😀", "\u202e4pm.mp4", "\udcff.mp4", "\ud800", "s3:", "http:",
    "file:", "C:", "C:\\Windows", "\\\\server\\share", "\\", "%2e%2e", "a" * 300 + ".mp4",
    "b" * 255, ROOT_MARK, OUTSIDE_MARK,
]  # fmt: skip

joined = st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=6).map("/".join)
path_text = st.one_of(
    joined,
    joined.map(lambda p: "/" + p),
    joined.map(lambda p: ROOT_MARK + "/" + p),
    joined.map(lambda p: OUTSIDE_MARK + "/" + p),
    joined.map(lambda p: "s3://bucket/" + p),
    st.integers(1, 2500).map(lambda n: "d/" * n + "x.mp4"),  # longer than PATH_MAX
    st.sampled_from(["", "videos/", "dir_in/", "./"]).map(lambda p: p + "n" * 256 + ".mp4"),
    st.text(max_size=40),
    st.text(st.characters(codec="utf-8"), max_size=40),
)
#: What a path cell may hold: text, or anything else a data file can carry.
cell = st.one_of(
    path_text,
    path_text,
    path_text,
    st.none(),
    st.integers(),
    st.floats(),
    st.booleans(),
    st.lists(path_text, max_size=3),
    st.dictionaries(st.sampled_from(["path", "bytes", "x"]), path_text, max_size=2),
)
column_names = st.sampled_from(["path", "file", "Path", "", "path ", "\ufeffpath", "p\x00"])


@dataclass(frozen=True)
class Tree:
    """One example's folder: ``root`` holds the manifest; ``outside`` is next to it."""

    base: Path
    root: Path
    outside: Path
    alias: Path  # a link to ``root``: the manifest read through another folder name

    def fill(self, text: str) -> str:
        return text.replace(ROOT_MARK, str(self.root)).replace(OUTSIDE_MARK, str(self.outside))


@contextmanager
def tree() -> Iterator[Tree]:
    """A fresh folder tree with files, links inside the root and links leaving it."""
    with tempfile.TemporaryDirectory(prefix="manifest-fuzz-") as tmp:
        base = Path(tmp)
        root = base / "data"
        outside = base / "outside_dir"
        for folder in (root / "videos", root / "images", outside):
            folder.mkdir(parents=True)
        for file in (root / "videos/a.mp4", root / "images/b.jpg", base / "outside.mp4"):
            file.write_bytes(b"x")
        (outside / "c.mp4").write_bytes(b"x")
        links = {
            "link_in.mp4": "videos/a.mp4",
            "link_out.mp4": "../outside.mp4",
            "abs_out.mp4": str(base / "outside.mp4"),
            "dir_out": "../outside_dir",
            "dir_in": "videos",
            "loop": "loop",
            "loop_a": "loop_b",
            "loop_b": "loop_a",
            "dangling.mp4": "nowhere.mp4",
        }
        for name, target in links.items():
            os.symlink(target, root / name)
        os.symlink(root, base / "alias")
        yield Tree(base, root, outside, base / "alias")


def real(path: str | Path) -> Path:
    """``path`` with every link resolved (``Path.resolve`` raises on link loops in 3.11)."""
    return Path(os.path.realpath(path))


def inside(path: str | Path, folder: Path) -> bool:
    return real(path).is_relative_to(real(folder))


def text_of(value: Any) -> str:
    """A cell as a table file writes it."""
    return "" if value is None else value if isinstance(value, str) else json.dumps(value)


def utf8(text: str) -> str:
    """``text`` with what UTF-8 cannot hold (lone surrogates) replaced."""
    return text.encode("utf-8", "replace").decode("utf-8")


def check_manifest(manifest: Path, t: Tree, column: str, lines: int) -> None:
    """The properties every manifest must satisfy, whatever it holds (``lines``: the most
    rows it can have, for the row numbers)."""
    try:
        listed = read_manifest(manifest, path_column=column)
    except ManifestError as exc:
        assert str(manifest) in str(exc), exc  # names the file
        _check_discover_refuses(manifest, column)
        return
    assert listed.root == Path(os.path.abspath(manifest.parent))
    for row, cause in listed.problems:
        assert 1 <= row <= lines and cause, (row, cause)
    for entry in listed.rows:
        assert 1 <= entry.row <= lines
        assert isinstance(entry.value, str) and entry.value
        try:
            target, key = resolve_in_root(listed.root, entry.value)
        except ValueError as exc:
            assert str(exc), entry  # the cause, said
            continue
        assert inside(target, t.root), (entry.value, target)
        assert target.is_absolute() and ".." not in PurePosixPath(key).parts
        assert not PurePosixPath(key).is_absolute() and key not in ("", ".")
    found = discover([], manifest=manifest, path_column=column)
    for media in found:
        assert inside(media.path, t.root), (media.path, media.key)
        assert media.path.exists()
    label = f"{display_name(manifest)} row "
    rows_seen = {entry.row for entry in listed.rows} | {row for row, _ in listed.problems}
    for problem in found.problems:
        assert problem.path.startswith(label), problem  # names the row
        assert int(problem.path.removeprefix(label)) in rows_seen and problem.cause
    taken = len(found) + len(found.problems)
    assert taken == len(listed.rows) + len(listed.problems)  # every row accounted for once


def _check_discover_refuses(manifest: Path, column: str) -> None:
    try:
        discover([], manifest=manifest, path_column=column)
    except ManifestError as exc:
        assert str(manifest) in str(exc)
    else:
        raise AssertionError(f"discover read {manifest} that read_manifest refused")


# --- the path policy alone ---------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(path_text, st.booleans(), st.booleans())
def test_confine_keeps_every_accepted_path_inside_the_root(
    value: str, absolute_ok: bool, through_alias: bool
) -> None:
    with tree() as t:
        root = t.alias if through_alias else t.root
        value = t.fill(value)
        try:
            target, key = confine(root, value, root_name="the folder", absolute_ok=absolute_ok)
        except ValueError as exc:
            assert str(exc)
            return
        assert "\x00" not in value and "://" not in value
        if not absolute_ok:
            assert not PurePosixPath(value).is_absolute()
            assert not PureWindowsPath(value).is_absolute()
        assert inside(target, t.root), (value, target)
        assert real(target) != real(t.root)  # a file in the root, never the root itself
        assert ".." not in PurePosixPath(key).parts and not PurePosixPath(key).is_absolute()
        # the key names the same file again, relative to the root
        again, again_key = confine(root, key, root_name="the folder", absolute_ok=True)
        assert real(again) == real(target) and again_key == key


# --- manifests ---------------------------------------------------------------------------------

json_row = st.one_of(
    st.dictionaries(st.sampled_from(["path", "file", "id", "Path"]), cell, max_size=3),
    st.fixed_dictionaries({"path": cell}),
    st.fixed_dictionaries({"path": cell}),
    cell,  # a JSON value that is not an object
)
json_line = st.one_of(
    json_row.map(lambda r: ("json", r)),
    st.text(max_size=30).map(lambda s: ("raw", s)),  # not JSON, or JSON by chance
)


def filled(t: Tree, value: Any) -> Any:
    """``value`` with the placeholders in its strings replaced by the example's paths."""
    if isinstance(value, str):
        return t.fill(value)
    if isinstance(value, list):
        return [filled(t, v) for v in value]
    if isinstance(value, dict):
        return {k: filled(t, v) for k, v in value.items()}
    return value


def jsonl_text(t: Tree, lines: Sequence[tuple[str, Any]], ascii_only: bool) -> str:
    out = []
    for kind, value in lines:
        if kind == "raw":
            out.append(t.fill(value).replace("\n", " ").replace("\r", " "))
        else:
            out.append(json.dumps(filled(t, value), ensure_ascii=ascii_only))
    return "\n".join(out) + "\n"


@FUZZ
@given(st.lists(json_line, max_size=8), st.booleans(), st.sampled_from([".jsonl", ".ndjson"]))
def test_jsonl_manifests(lines: list[tuple[str, Any]], ascii_only: bool, suffix: str) -> None:
    with tree() as t:
        manifest = t.root / f"m{suffix}"
        text = jsonl_text(t, lines, ascii_only)
        manifest.write_bytes(text.encode("utf-8", "surrogatepass"))  # lone surrogates too
        check_manifest(manifest, t, "path", max(1, len(lines)))


def table_text(
    header: Sequence[str], rows: Sequence[Sequence[Any]], delimiter: str, quoted: bool
) -> str:
    """A CSV/TSV file: written by ``csv`` (cells quoted as needed) or joined raw (so cells
    with delimiters, quotes and newlines break the layout)."""
    if quoted:
        buf = io.StringIO()
        writer = csv.writer(buf, delimiter=delimiter, lineterminator="\n")
        writer.writerow(header)
        writer.writerows([[text_of(c) for c in row] for row in rows])
        return buf.getvalue()
    lines = [delimiter.join(header)] + [delimiter.join(text_of(c) for c in row) for row in rows]
    return "\n".join(lines) + "\n"


@FUZZ
@given(
    st.lists(column_names, min_size=0, max_size=3),
    st.lists(st.lists(cell, max_size=4), max_size=6),
    st.sampled_from([(".csv", ","), (".tsv", "\t"), (".CSV", ",")]),
    st.booleans(),
    st.sampled_from(["", "\ufeff"]),
    st.sampled_from(["strict", "surrogatepass"]),
)
def test_csv_and_tsv_manifests(
    header: list[str],
    rows: list[list[Any]],
    kind: tuple[str, str],
    quoted: bool,
    bom: str,
    errors: str,
) -> None:
    suffix, delimiter = kind
    with tree() as t:
        manifest = t.root / f"m{suffix}"
        text = bom + table_text(header, filled(t, rows), delimiter, quoted)
        if errors == "strict":
            text = utf8(text)
        manifest.write_bytes(text.encode("utf-8", errors))  # surrogatepass: not UTF-8
        lines = text.count("\n") + text.count("\r") + 1  # data rows cannot exceed the lines
        check_manifest(manifest, t, "path", lines)


#: Arrow types a path column may have, and how a generated cell becomes one of its values.
PARQUET_TYPES = {
    "string": (pa.string(), lambda v: v if isinstance(v, str) else None),
    "large_string": (pa.large_string(), lambda v: v if isinstance(v, str) else None),
    "int": (pa.int64(), lambda v: v if type(v) is int and abs(v) < 2**62 else None),
    "float": (pa.float64(), lambda v: v if isinstance(v, float) else None),
    "list": (pa.list_(pa.string()), lambda v: [v] if isinstance(v, str) else None),
    "binary": (pa.binary(), lambda v: v.encode("utf-8") if isinstance(v, str) else None),
    "struct": (
        pa.struct([("path", pa.string())]),
        lambda v: {"path": v} if isinstance(v, str) else None,
    ),
}


@FUZZ
@given(
    st.lists(cell, max_size=8),
    st.sampled_from(sorted(PARQUET_TYPES)),
    st.sampled_from(["path", "file"]),
    st.sampled_from([".parquet", ".pq"]),
    st.booleans(),
)
def test_parquet_manifests(
    values: list[Any], type_name: str, column: str, suffix: str, through_alias: bool
) -> None:
    arrow_type, convert = PARQUET_TYPES[type_name]
    with tree() as t:
        cells = [utf8(v) if isinstance(v, str) else v for v in filled(t, values)]
        table = pa.table(
            {
                column: pa.array([convert(v) for v in cells], type=arrow_type),
                "id": pa.array(range(len(cells)), type=pa.int64()),
            }
        )
        pq.write_table(table, t.root / f"m{suffix}")
        folder = t.alias if through_alias else t.root
        check_manifest(folder / f"m{suffix}", t, "path", max(1, len(values)))


@FUZZ
@given(
    st.binary(max_size=200),
    st.sampled_from([".jsonl", ".csv", ".tsv", ".parquet", ".txt", ".json", ""]),
)
def test_arbitrary_bytes_as_a_manifest(data: bytes, suffix: str) -> None:
    with tree() as t:
        manifest = t.root / f"m{suffix}"
        manifest.write_bytes(data)
        check_manifest(manifest, t, "path", data.count(b"\n") + data.count(b"\r") + 1)


def test_generated_rows_reach_every_outcome() -> None:
    """The generators above exercise what they claim: links out, dots out, absolute paths,
    NUL, overlong names and good rows, each with its stated result."""
    with tree() as t:
        rows = [
            "videos/a.mp4",
            "link_in.mp4",
            "dir_in/a.mp4",
            str(t.root / "images/b.jpg"),
            "link_out.mp4",
            "abs_out.mp4",
            "dir_out/c.mp4",
            "../outside.mp4",
            str(t.base / "outside.mp4"),
            "nul\x00.mp4",
            "a" * 300 + ".mp4",
            "d/" * 2100 + "x.mp4",
            "loop",
        ]
        manifest = t.root / "m.jsonl"
        manifest.write_text("".join(json.dumps({"path": r}) + "\n" for r in rows))
        found = discover([], manifest=manifest)
        keys = ["dir_in/a.mp4", "images/b.jpg", "link_in.mp4", "videos/a.mp4"]
        assert [f.key for f in found] == keys  # links inside the folder are followed
        causes = {int(p.path.rsplit(" ", 1)[1]): p.cause for p in found.problems}
        for row in (5, 6, 7):
            assert "symbolic link" in causes[row] and "outside" in causes[row]
        assert "'..' leads outside" in causes[8] and "is outside" in causes[9]
        assert "NUL" in causes[10]
        assert "too long" in causes[11] and "too long" in causes[12]
        assert "file not found" in causes[13]  # a link loop names no file
        assert sorted(causes) == list(range(5, len(rows) + 1))
        check_manifest(manifest, t, "path", len(rows))
