"""Manifests (JSONL, CSV, TSV, parquet): reading rows, and keeping paths inside the folder."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vlmcap.media.inputs import discover
from vlmcap.media.manifest import ManifestError, read_manifest, resolve_in_root


@pytest.fixture
def data(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "videos").mkdir(parents=True)
    (root / "images").mkdir()
    (root / "videos" / "a.mp4").write_bytes(b"x")
    (root / "images" / "b.jpg").write_bytes(b"x")
    (tmp_path / "outside.mp4").write_bytes(b"x")
    return root


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_jsonl_rows_resolve_against_the_manifest_folder(data):
    m = write_jsonl(data / "m.jsonl", [{"path": "videos/a.mp4"}, {"path": "images/b.jpg"}])
    result = discover([], manifest=m)
    assert [(f.key, f.kind) for f in result] == [
        ("images/b.jpg", "image"),
        ("videos/a.mp4", "video"),
    ]
    assert result[1].path == data / "videos" / "a.mp4"
    assert result.problems == []


def test_csv_tsv_and_parquet_with_a_chosen_column(data):
    (data / "m.csv").write_text("id,file\n1,videos/a.mp4\n2,images/b.jpg\n", encoding="utf-8")
    (data / "m.tsv").write_text("file\tid\nvideos/a.mp4\t1\n", encoding="utf-8")
    pq.write_table(pa.table({"file": ["images/b.jpg", "videos/a.mp4"]}), data / "m.parquet")
    for name, expected in [
        ("m.csv", ["images/b.jpg", "videos/a.mp4"]),
        ("m.tsv", ["videos/a.mp4"]),
        ("m.parquet", ["images/b.jpg", "videos/a.mp4"]),
    ]:
        result = discover([], manifest=data / name, path_column="file")
        assert [f.key for f in result] == expected, name


def test_csv_with_a_byte_order_mark(data):
    (data / "m.csv").write_bytes("\ufeffpath\nvideos/a.mp4\n".encode())
    assert [f.key for f in discover([], manifest=data / "m.csv")] == ["videos/a.mp4"]


@pytest.mark.parametrize(
    "value",
    ["../outside.mp4", "videos/../../outside.mp4", "{outside}", "/etc/passwd", "s3://b/a.mp4"],
)
def test_paths_leaving_the_folder_are_problems_not_followed(data, value):
    value = value.format(outside=data.parent / "outside.mp4")
    m = write_jsonl(data / "m.jsonl", [{"path": value}, {"path": "videos/a.mp4"}])
    result = discover([], manifest=m)
    assert [f.key for f in result] == ["videos/a.mp4"]  # the good row is still read
    (problem,) = result.problems
    assert problem.path == f"{m} row 1" and value in problem.cause
    assert "outside the manifest's folder" in problem.cause or "URLs" in problem.cause


def test_absolute_path_inside_the_folder_and_dotdot_that_stays_inside(data):
    inside = str(data / "videos" / "a.mp4")
    m = write_jsonl(data / "m.jsonl", [{"path": inside}, {"path": "videos/../images/b.jpg"}])
    assert [f.key for f in discover([], manifest=m)] == ["images/b.jpg", "videos/a.mp4"]


def test_bad_rows_are_reported_with_their_row(data, caplog):
    lines = [
        json.dumps({"path": "videos/a.mp4"}),
        "{not json",
        json.dumps(["a list"]),
        json.dumps({"other": 1}),
        json.dumps({"path": ""}),
        json.dumps({"path": 7}),
        json.dumps({"path": "missing.mp4"}),
        json.dumps({"path": "images"}),
        json.dumps({"path": "notes.txt"}),
        "",
    ]
    (data / "notes.txt").write_text("x")
    m = data / "m.jsonl"
    m.write_text("\n".join(lines), encoding="utf-8")
    result = discover([], manifest=m)
    assert [f.key for f in result] == ["videos/a.mp4"]
    causes = {p.path.rsplit(" ", 1)[1]: p.cause for p in result.problems}
    assert causes["2"].startswith("not valid JSON")
    assert causes["3"] == "not a JSON object"
    assert causes["4"] == "no 'path' field"
    assert causes["5"] == "empty path"
    assert causes["6"] == "path is not text: 7"
    assert causes["7"] == "'missing.mp4': file not found"
    assert "is a folder" in causes["8"]
    assert "not an image or video extension" in causes["9"]
    assert "row 7" in caplog.text  # problems are logged as warnings too


def test_extension_filter_applies_to_manifest_rows(data):
    m = write_jsonl(data / "m.jsonl", [{"path": "videos/a.mp4"}, {"path": "images/b.jpg"}])
    result = discover([], manifest=m, extensions={".jpg"})
    assert [f.key for f in result] == ["images/b.jpg"] and result.problems == []


def test_missing_column_is_an_error_naming_the_columns(data):
    (data / "m.csv").write_text("file,id\nvideos/a.mp4,1\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"m\.csv: no 'path' column \(columns: file, id\)"):
        discover([], manifest=data / "m.csv")
    pq.write_table(pa.table({"file": ["a"]}), data / "m.parquet")
    with pytest.raises(ManifestError, match=r"no 'path' column \(columns: file\)"):
        read_manifest(data / "m.parquet")
    write_jsonl(data / "m.jsonl", [{"file": "a.mp4"}, {"id": 2}])
    with pytest.raises(ManifestError, match=r"no row has a 'path' field \(fields: file, id\)"):
        read_manifest(data / "m.jsonl")


def test_unreadable_manifests(data):
    with pytest.raises(FileNotFoundError, match=r"nope\.jsonl"):
        discover([], manifest=data / "nope.jsonl")
    (data / "m.yaml").write_text("- a.mp4\n")
    with pytest.raises(ManifestError, match=r"unknown manifest format '\.yaml'"):
        read_manifest(data / "m.yaml")
    (data / "m.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(ManifestError, match=r"m\.parquet: not a readable parquet file"):
        read_manifest(data / "m.parquet")
    (data / "latin.csv").write_bytes(b"path\ncaf\xe9.mp4\n")
    with pytest.raises(ManifestError, match=r"latin\.csv: not UTF-8 text"):
        read_manifest(data / "latin.csv")


def test_parquet_nulls_are_row_problems(data):
    pq.write_table(pa.table({"path": ["videos/a.mp4", None]}), data / "m.parquet")
    manifest = read_manifest(data / "m.parquet")
    assert [r.value for r in manifest.rows] == ["videos/a.mp4"]
    assert manifest.problems == [(2, "empty path")]


def test_resolve_in_root(tmp_path):
    assert resolve_in_root(tmp_path, "a/b.mp4") == (tmp_path / "a" / "b.mp4", "a/b.mp4")
    assert resolve_in_root(tmp_path, "./a//b.mp4")[1] == "a/b.mp4"
    for bad, cause in [
        ("..", "outside"),
        (".", "folder itself"),
        ("a\x00b.mp4", "NUL"),
        ("http://x/a.mp4", "URLs are not supported"),
    ]:
        with pytest.raises(ValueError, match=cause):
            resolve_in_root(tmp_path, bad)
