"""Discovery of media files: folders, globs, files, filters, links and unreadable places."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import pytest

from vlmcap.media import inputs
from vlmcap.media.inputs import DiscoveryResult, MediaFile, discover, media_kind

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "media"
    touch(root, "b.mp4", "a/z.JPG", "a/c/y.webm", "a/notes.txt", "d.png", ".hidden/h.jpg")
    touch(root, "a/._resource_fork.jpg")
    return root


def keys(result: DiscoveryResult) -> list[str]:
    return [f.key for f in result]


def test_folder_is_searched_recursively_sorted_by_key(tree):
    result = discover([tree])
    assert keys(result) == ["a/c/y.webm", "a/z.JPG", "b.mp4", "d.png"]
    assert [f.kind for f in result] == ["video", "image", "video", "image"]
    assert result[0] == MediaFile(tree / "a" / "c" / "y.webm", "a/c/y.webm", "video")
    assert result.problems == []


def test_result_reads_like_the_list_it_used_to_be(tree):
    result = discover([tree])
    assert len(result) == 4 and bool(result) and result[-1].key == "d.png"
    assert [f.key for f in result[1:3]] == ["a/z.JPG", "b.mp4"]
    assert list(result) == result.files
    assert not discover([tree / "a" / "notes.txt"])


def test_hidden_names_are_skipped_unless_asked_for(tree):
    assert "a/._resource_fork.jpg" not in keys(discover([tree]))
    hidden = keys(discover([tree], include_hidden=True))
    assert ".hidden/h.jpg" in hidden and "a/._resource_fork.jpg" in hidden


def test_explicit_files_are_keyed_by_name(tree):
    result = discover([tree / "a" / "c" / "y.webm", tree / "d.png"])
    assert keys(result) == ["d.png", "y.webm"]


def test_explicit_non_media_file_is_a_problem(tree, caplog):
    result = discover([tree / "a" / "notes.txt"])
    assert len(result) == 0
    assert [str(p) for p in result.problems] == [
        f"{tree / 'a' / 'notes.txt'}: not an image or video extension; skipped"
    ]
    assert "notes.txt" in caplog.text


def test_missing_path_raises_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.mp4: no such file or folder"):
        discover([tmp_path / "nope.mp4"])


def test_glob_patterns_key_relative_to_their_fixed_part(tree):
    assert keys(discover([f"{tree}/**/*.webm"])) == ["a/c/y.webm"]
    assert keys(discover([f"{tree}/*.mp4"])) == ["b.mp4"]  # one level only
    assert keys(discover([f"{tree}/a/*"])) == ["z.JPG"]
    assert keys(discover([f"{tree}/**"])) == ["a/c/y.webm", "a/z.JPG", "b.mp4", "d.png"]


def test_relative_glob_from_the_working_folder(tree, monkeypatch):
    monkeypatch.chdir(tree)
    assert keys(discover(["**/*.png"])) == ["d.png"]
    assert keys(discover(["a/**/*.webm"])) == ["c/y.webm"]


def test_glob_without_matches_is_a_problem_and_missing_folder_an_error(tree):
    result = discover([f"{tree}/**/*.mov"])
    assert len(result) == 0 and "matched no image or video file" in str(result.problems[0])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        discover([f"{tree}/nope/*.mp4"])


def test_file_name_with_brackets_is_not_a_pattern(tmp_path):
    touch(tmp_path, "clip[1].mp4")
    assert keys(discover([tmp_path / "clip[1].mp4"])) == ["clip[1].mp4"]


def test_extension_filter(tree):
    assert keys(discover([tree], extensions={".mp4", "webm"})) == ["a/c/y.webm", "b.mp4"]
    assert keys(discover([tree], extensions={"JPG"})) == ["a/z.JPG"]
    assert len(discover([tree / "b.mp4"], extensions={".png"})) == 0
    with pytest.raises(ValueError, match=r"'\.txt' is not an image or video extension"):
        discover([tree], extensions={".txt"})


def test_no_duplicates_when_a_file_is_named_twice(tree):
    result = discover([tree, tree / "b.mp4", tree, f"{tree}/*.mp4"])
    assert keys(result) == ["a/c/y.webm", "a/z.JPG", "b.mp4", "d.png"]
    assert result.problems == []


def test_same_key_from_two_roots_is_reported_not_overwritten(tmp_path):
    touch(tmp_path, "one/x.mp4", "two/x.mp4")
    result = discover([tmp_path / "one", tmp_path / "two"])
    assert [f.path for f in result] == [tmp_path / "one" / "x.mp4"]
    (problem,) = result.problems
    assert problem.path == str(tmp_path / "two" / "x.mp4") and "already used" in problem.cause


def test_symlinked_files_and_folders_are_followed_and_those_leaving_the_root_counted(
    tmp_path, caplog
):
    touch(tmp_path, "store/blob1.mp4", "store/sub/blob2.jpg", "dataset/own.png")
    root = tmp_path / "dataset"
    (root / "clip.mp4").symlink_to(tmp_path / "store" / "blob1.mp4")
    (root / "linked").symlink_to(tmp_path / "store" / "sub")
    (root / "again.png").symlink_to(root / "own.png")  # stays inside: not counted
    with caplog.at_level(logging.INFO, logger="vlmcap.media.inputs"):
        result = discover([root])
    assert keys(result) == ["again.png", "clip.mp4", "linked/blob2.jpg", "own.png"]
    assert result[1].path == root / "clip.mp4"  # the name the user sees, not the target
    assert not result.problems
    (line,) = [r.getMessage() for r in caplog.records if "point outside" in r.getMessage()]
    assert "2 symbolic link(s) point outside it and were followed" in line


def test_a_manifest_row_must_stay_inside_its_folder_links_included(tmp_path):
    """Data-file paths are confined (vlmcap.media.paths): a link out of the manifest's folder
    is refused like '..', a link inside it is followed."""
    touch(tmp_path, "store/blob.mp4", "outside.mp4", "dataset/own.mp4")
    root = tmp_path / "dataset"
    (root / "out.mp4").symlink_to(tmp_path / "store" / "blob.mp4")
    (root / "alias.mp4").symlink_to(root / "own.mp4")
    manifest = root / "list.csv"
    manifest.write_text("path\nalias.mp4\nout.mp4\n../outside.mp4\n")
    result = discover([], manifest=manifest)
    assert keys(result) == ["alias.mp4"]
    causes = [p.cause for p in result.problems]
    assert "'out.mp4': resolves through a symbolic link" in causes[0]
    assert "outside the manifest's folder; refused" in causes[0]
    assert "'../outside.mp4': '..' leads outside the manifest's folder" in causes[1]


def test_symlink_loops_and_broken_links_are_reported(tmp_path, caplog):
    touch(tmp_path, "root/a/x.mp4")
    root = tmp_path / "root"
    (root / "a" / "up").symlink_to(root)  # root/a/up -> root: a loop
    (root / "self").symlink_to(root / "self")  # a link to itself
    (root / "gone.mp4").symlink_to(root / "missing.mp4")
    with caplog.at_level(logging.WARNING):
        result = discover([root])
    assert keys(result) == ["a/x.mp4"]
    causes = {Path(p.path).name: p.cause for p in result.problems}
    assert causes["up"].startswith("symbolic link loop (back to")
    assert causes["self"].startswith("symbolic link loop")
    assert causes["gone.mp4"].startswith("broken symbolic link")
    assert "symbolic link loop" in caplog.text


def test_unreadable_folder_is_reported_and_the_rest_is_found(tmp_path, monkeypatch):
    touch(tmp_path, "root/ok/a.mp4", "root/locked/b.mp4")
    locked = tmp_path / "root" / "locked"
    if IS_ROOT:
        # Root lists any folder whatever its mode bits, so chmod cannot lock it out: make the
        # listing fail the way the OS does for other users.
        real_scandir = os.scandir

        def scandir(path):
            if Path(path) == locked:
                raise PermissionError(13, "Permission denied", str(path))
            return real_scandir(path)

        monkeypatch.setattr(inputs.os, "scandir", scandir)
    locked.chmod(0)
    try:
        result = discover([tmp_path / "root"])
    finally:
        locked.chmod(stat.S_IRWXU)
    assert keys(result) == ["ok/a.mp4"]
    assert [str(p) for p in result.problems] == [f"{locked}: permission denied; folder skipped"]


@pytest.mark.skipif(os.name != "posix", reason="byte file names are a POSIX thing")
def test_non_utf8_and_unicode_names_give_text_keys(tmp_path):
    touch(tmp_path, "vidéo.mp4", "動画/クリップ.mp4")
    odd = Path(os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9.png"))
    odd.write_bytes(b"x")
    result = discover([tmp_path])
    assert keys(result) == ["caf\\xe9.png", "vidéo.mp4", "動画/クリップ.mp4"]
    assert result[0].path == odd and result[0].path.exists()
    json.dumps([f.key for f in result], ensure_ascii=False).encode("utf-8")  # writable anywhere


def test_folders_globs_and_manifest_together(tree):
    (tree / "list.jsonl").write_text(json.dumps({"path": "a/c/y.webm"}) + "\n")
    touch(tree.parent, "extra/e.gif")
    result = discover([tree.parent / "extra", f"{tree}/*.png"], manifest=tree / "list.jsonl")
    assert keys(result) == ["a/c/y.webm", "d.png", "e.gif"]


def test_media_kind():
    assert media_kind("a/B.MP4") == "video" and media_kind(Path("x.webp")) == "image"
    assert media_kind("x.txt") is None and media_kind("noext") is None


def test_single_path_string_is_one_path(tree):
    assert keys(discover(str(tree / "b.mp4"))) == ["b.mp4"]


def test_path_behind_a_closed_folder_is_a_problem(tree, monkeypatch):
    target = tree / "b.mp4"
    real_exists = Path.exists

    def exists(self, *args, **kwargs):
        # what a non-root user gets for a path under a folder without the x bit
        if self == target:
            raise PermissionError(13, "Permission denied", str(self))
        return real_exists(self, *args, **kwargs)

    monkeypatch.setattr(Path, "exists", exists)
    result = discover([target, tree / "d.png"])
    assert keys(result) == ["d.png"]
    assert [p.cause for p in result.problems] == ["permission denied (cannot reach it); skipped"]
