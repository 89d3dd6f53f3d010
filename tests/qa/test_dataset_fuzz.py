"""Generated hostile question sets (seed parquet, VLMEvalKit TSV): a loaded set's images are
files inside the set's folder (or decoded into the work folder), and a set that cannot be used
raises ``QuestionSetError`` naming the file, each bad row and its cause; nothing else escapes.

Every example builds a fresh set folder with good and broken images, links into it and out of
it, writes one set there and loads it, with and without ``skip_invalid``.
"""

from __future__ import annotations

import base64
import csv
import io
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from tests.qa.fixtures_qa import BLUE, GREEN, RED, b64_png, png, png_bytes
from vlmcap.media.images import display_name
from vlmcap.qa.dataset import QuestionSet, load_questions
from vlmcap.qa.problems import REPORT_MAX_LINES, QuestionSetError
from vlmcap.qa.question_images import EMBEDDED_DIR_NAME

#: File IO and image checks in every example: no per-example deadline, bounded examples.
FUZZ = settings(max_examples=150, deadline=None)
#: Leaving bad rows out is what lets hostile rows sit beside loaded ones: mostly on.
skipping = st.sampled_from([True, True, True, False])

ROOT_MARK = "<ROOT>"
OUTSIDE_MARK = "<OUTSIDE>"

#: Pieces of image paths: good and broken images, links in and out, dots, odd characters.
FRAGMENTS = [
    "img", "a.png", "b.png", "broken.png", "notes.txt", "link_in.png", "link_out.png",
    "abs_out.png", "dir_out", "dir_in", "loop", "missing.png", "outside.png", "..", ".", "",
    "~", "\x00", "\n", "\t", " ", "é.png", "日本.png", "😀", "s3:", "http:", "C:", "\\",
    "n" * 256 + ".png", ROOT_MARK, OUTSIDE_MARK,
]  # fmt: skip

joined = st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=5).map("/".join)
path_text = st.one_of(
    st.sampled_from(["img/a.png", "img/b.png", "img/link_in.png", "dir_in/a.png"]),
    joined,
    joined.map(lambda p: "/" + p),
    joined.map(lambda p: ROOT_MARK + "/" + p),
    joined.map(lambda p: OUTSIDE_MARK + "/" + p),
    joined.map(lambda p: "http://host/" + p),
    st.integers(1, 2200).map(lambda n: "d/" * n + "x.png"),
    st.text(max_size=30),
)
GOOD_QUESTION = "What colour is the square?\nA. red\nB. blue\nC. green"
question_text = st.one_of(
    st.just(GOOD_QUESTION),
    st.just(GOOD_QUESTION),
    st.just("Colour? A. red B. blue"),
    st.just("Colour?\nA. red"),  # one choice only
    st.just("   "),
    st.text(max_size=60),
    st.lists(st.sampled_from(["A.", "(B)", "C)", "red", "blue", "\n", " ", "Options:"])).map(
        " ".join
    ),
)
answer_text = st.one_of(
    st.sampled_from(["A", "B", "(B)", "C.", "\\boxed{A}", "red", "blue", "Z", "", " ", "nan"]),
    st.text(max_size=20),
)
qid_value = st.one_of(
    st.sampled_from(["q1", "q2", "q3", " q1 ", "", "  "]),
    st.integers(-5, 5),
    st.none(),
    st.text(max_size=10),
)
#: Embedded image bytes: a good PNG, a truncated one, not an image at all, nothing.
EMBEDDED = [png_bytes(RED), png_bytes(GREEN)[:40], b"not an image", b""]
image_entry = st.one_of(
    path_text,
    path_text,
    st.fixed_dictionaries(
        {"bytes": st.sampled_from(EMBEDDED), "path": st.one_of(st.none(), path_text)}
    ),
    st.fixed_dictionaries({"path": st.one_of(st.none(), path_text)}),
    st.integers(),
    st.none(),
)
image_cell = st.one_of(image_entry, st.lists(image_entry, max_size=3))


@dataclass(frozen=True)
class Tree:
    base: Path
    root: Path  # the set's folder
    work: Path  # where embedded images are decoded (outside the set's folder)
    outside: Path

    def fill(self, value: Any) -> Any:
        """``value`` with the placeholders in its strings replaced by this tree's paths."""
        if isinstance(value, str):
            return value.replace(ROOT_MARK, str(self.root)).replace(OUTSIDE_MARK, str(self.outside))
        if isinstance(value, list):
            return [self.fill(v) for v in value]
        if isinstance(value, dict):
            return {k: self.fill(v) for k, v in value.items()}
        return value


@contextmanager
def tree() -> Iterator[Tree]:
    """A fresh set folder: good, broken and non-image files, links in and out of it."""
    with tempfile.TemporaryDirectory(prefix="qa-fuzz-") as tmp:
        base = Path(tmp)
        root = base / "set"
        png(root / "img" / "a.png", RED)
        png(root / "img" / "b.png", BLUE)
        (root / "img" / "broken.png").write_bytes(png_bytes()[:40])
        (root / "img" / "notes.txt").write_text("not an image")
        png(base / "outside.png", GREEN)
        png(base / "outside_dir" / "c.png", GREEN)
        links = {
            "img/link_in.png": "a.png",
            "img/link_out.png": "../../outside.png",
            "img/abs_out.png": str(base / "outside.png"),
            "dir_out": "../outside_dir",
            "dir_in": "img",
            "loop": "loop",
        }
        for name, target in links.items():
            os.symlink(target, root / name)
        yield Tree(base, root, base / "work", base / "outside_dir")


def inside(path: Path, folder: Path) -> bool:
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(folder))


def utf8(value: Any) -> Any:
    return value.encode("utf-8", "replace").decode("utf-8") if isinstance(value, str) else value


def check_set(path: Path, t: Tree, rows: int, skip_invalid: bool) -> QuestionSet | QuestionSetError:
    """The properties every set must satisfy, whatever it holds (``rows``: the most data rows
    it can have). The loaded set, or the error that refused it."""
    try:
        qs = load_questions(path, skip_invalid=skip_invalid, work_dir=t.work)
    except QuestionSetError as exc:
        message = str(exc)
        assert message.startswith(f"{display_name(path)}: "), message  # names the file
        assert exc.problems, message
        for problem in exc.problems:
            assert problem.cause, problem
            if problem.row is not None:  # names the row (and its qid when it has one)
                assert 1 <= problem.row <= rows, problem
                assert str(problem).startswith(f"row {problem.row}")
        for problem in exc.problems[:REPORT_MAX_LINES]:
            assert str(problem) in message
        return exc
    assert qs.questions and qs.source_path == path
    if not skip_invalid:
        assert qs.problems == []
    assert len({q.qid for q in qs}) == len(qs.questions)
    assert not {q.row for q in qs} & {p.row for p in qs.problems}  # a bad row is left out whole
    for q in qs:
        assert 1 <= q.row <= rows and q.qid and q.qid == q.qid.strip()
        assert len(q.choices) >= 2 and q.answer in q.choices
        assert q.images and len(q.images) == len(q.image_keys)
        for image in q.images:
            assert image.is_file(), image
            embedded = image.parent == t.work / EMBEDDED_DIR_NAME
            assert embedded or inside(image, t.root), (q.image_keys, image)
    return qs


def outcome(result: QuestionSet | QuestionSetError) -> str:
    """What happened to a set, for hypothesis' statistics (``--hypothesis-show-statistics``)."""
    if isinstance(result, QuestionSet):
        return "loaded" + (", some rows left out" if result.problems else "")
    return "refused: " + ("the file" if result.problems[0].row is None else "rows")


# --- the seed layout in parquet ------------------------------------------------------------------


def _text_or_none(v: Any) -> Any:
    return utf8(v) if isinstance(v, str) else None


def _as_path(v: Any) -> Any:
    """One image entry as a path cell: text, a struct's path, else null."""
    if isinstance(v, dict):
        v = v.get("path")
    return _text_or_none(v)


def _as_struct(v: Any) -> dict[str, Any]:
    if isinstance(v, dict):
        data = v.get("bytes")
        return {"bytes": data if isinstance(data, bytes) else None, "path": _as_path(v)}
    return {"bytes": None, "path": _as_path(v)}


def _entries(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]


#: Arrow types a column may have and how a generated cell becomes one of its values.
IMAGE_TYPES = {
    "string": (pa.string(), lambda v: _as_path((_entries(v) or [None])[0])),
    "list": (pa.list_(pa.string()), lambda v: [_as_path(e) for e in _entries(v)]),
    "struct": (
        pa.struct([("bytes", pa.binary()), ("path", pa.string())]),
        lambda v: _as_struct((_entries(v) or [None])[0]),
    ),
    "int": (pa.int64(), lambda v: v if type(v) is int and abs(v) < 2**62 else None),
}


def _qid_number(v: Any) -> Any:
    """An integer qid: ints as they are, the numbered ``q7`` as 7, anything else null."""
    if type(v) is int:
        return v
    if isinstance(v, str) and v.startswith("q") and v[1:].isdigit():
        return int(v[1:])
    return None


QID_TYPES = {
    "string": (pa.string(), lambda v: _text_or_none(v) if not isinstance(v, int) else str(v)),
    "int": (pa.int64(), _qid_number),
    "float": (pa.float64(), lambda v: None if _qid_number(v) is None else float(_qid_number(v))),
}
#: A qid replaced by the row's own number (``q1``, ``q2``...), so most rows have their own.
AUTO = "<AUTO>"


good_image = st.sampled_from(["img/a.png", "img/b.png", "img/link_in.png", "dir_in/a.png"])


@st.composite
def rows_with_hostile_cells(
    draw: st.DrawFn, good: Mapping[str, Any], hostile: Mapping[str, st.SearchStrategy[Any]]
) -> dict[str, Any]:
    """A valid row (``good``: values or strategies) with at most one of its ``hostile`` cells
    replaced, so that hostile values meet the checks in rows that are otherwise fine."""
    row = {k: draw(v) if isinstance(v, st.SearchStrategy) else v for k, v in good.items()}
    for column in draw(st.lists(st.sampled_from(sorted(hostile)), max_size=1)):
        row[column] = draw(hostile[column])
    return row


seed_row = rows_with_hostile_cells(
    {
        "qid": AUTO,
        "question": GOOD_QUESTION,
        "answer": st.sampled_from(["A", "(B)", "green", "\\boxed{C}"]),
        "image": st.one_of(good_image, st.lists(good_image, min_size=1, max_size=2), image_cell),
        "category": st.one_of(st.none(), st.text(max_size=10)),
    },
    {
        "qid": qid_value,
        "question": st.one_of(question_text, st.none()),
        "answer": st.one_of(answer_text, st.none()),
    },
)


def numbered(rows: Sequence[Mapping[str, Any]], column: str) -> list[dict[str, Any]]:
    """``rows`` with each ``AUTO`` id replaced by the row's number."""
    out = []
    for i, row in enumerate(rows, start=1):
        values = dict(row)
        if values.get(column) == AUTO:
            values[column] = f"q{i}"
        out.append(values)
    return out


def seed_table(
    rows: Sequence[Mapping[str, Any]], image_type: str, qid_type: str, dropped: str | None
) -> pa.Table:
    qid_arrow, qid_of = QID_TYPES[qid_type]
    image_arrow, image_of = IMAGE_TYPES[image_type]
    columns = {
        "qid": pa.array([qid_of(r.get("qid")) for r in rows], type=qid_arrow),
        "question": pa.array([_text_or_none(r.get("question")) for r in rows], type=pa.string()),
        "answer": pa.array([_text_or_none(r.get("answer")) for r in rows], type=pa.string()),
        "image": pa.array([image_of(r.get("image")) for r in rows], type=image_arrow),
        "category": pa.array([_text_or_none(r.get("category")) for r in rows], type=pa.string()),
    }
    columns.pop(dropped or "", None)
    return pa.table(columns)


@FUZZ
@given(
    st.lists(seed_row, min_size=0, max_size=6),
    st.sampled_from(["string", "list", "struct"] * 3 + ["int"]),
    st.sampled_from(["string"] * 4 + ["int", "float"]),
    st.sampled_from([None] * 8 + ["qid", "answer", "image", "category"]),
    skipping,
)
def test_seed_parquet_sets(
    rows: list[dict[str, Any]],
    image_type: str,
    qid_type: str,
    dropped: str | None,
    skip_invalid: bool,
) -> None:
    with tree() as t:
        path = t.root / "set.parquet"
        table = seed_table(numbered(t.fill(rows), "qid"), image_type, qid_type, dropped)
        pq.write_table(table, path)
        event(outcome(check_set(path, t, max(1, len(rows)), skip_invalid)))


# --- VLMEvalKit's TSV ----------------------------------------------------------------------------

b64_cell = st.one_of(
    st.just(b64_png(BLUE)),
    st.just(b64_png(RED)[:120]),  # cut short: not a whole image
    st.just(repr([b64_png(RED), b64_png(GREEN)])),
    st.just(f'["{b64_png(GREEN)}", 7]'),
    st.just(base64.b64encode(b"not an image at all, but long enough for base64").decode()),
    st.sampled_from(["0", "1", "2", "99", "", "nan", "[", "[]", "['x'"]),  # references, junk
    st.text(max_size=80),
)
tsv_cell = st.one_of(st.text(max_size=20), st.sampled_from(["", "nan", "NaN", "red", "blue"]))
vlmeval_row = rows_with_hostile_cells(
    {
        "index": AUTO,
        "question": "What colour is the square?",
        "A": "red",
        "B": "blue",
        "C": tsv_cell,
        "D": st.sampled_from(["", "nan"]),
        "answer": st.sampled_from(["A", "B", "(A)", "blue"]),
        "category": tsv_cell,
        "image": st.one_of(st.just(b64_png(BLUE)), b64_cell),
        "image_path": st.one_of(
            good_image, path_text, st.lists(st.one_of(good_image, path_text), max_size=3).map(repr)
        ),
    },
    {
        "index": st.one_of(st.integers(0, 3).map(str), st.text(max_size=5)),
        "question": question_text,
        "A": tsv_cell,
        "B": tsv_cell,
        "answer": answer_text,
    },
)
TSV_COLUMNS = ["index", "question", "A", "B", "C", "D", "answer", "category"]


def tsv_text(columns: Sequence[str], rows: Sequence[Mapping[str, Any]], quoted: bool) -> str:
    """A TSV file: written by ``csv`` (cells quoted as needed) or joined raw (so cells with
    tabs, quotes and newlines break the layout)."""
    if quoted:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(columns), delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows([{c: r.get(c, "") for c in columns} for r in rows])
        return buf.getvalue()
    lines = ["\t".join(columns)] + ["\t".join(str(r.get(c, "")) for c in columns) for r in rows]
    return "\n".join(lines) + "\n"


@FUZZ
@given(
    st.lists(vlmeval_row, min_size=0, max_size=5),
    st.sampled_from([("image",), ("image_path",), ("image_path",), ("image", "image_path"), ()]),
    st.one_of(st.just([]), st.just([]), st.just([]), st.lists(st.sampled_from(TSV_COLUMNS))),
    st.booleans(),
    skipping,
    st.sampled_from(["strict", "surrogatepass"]),
)
def test_vlmeval_tsv_sets(
    rows: list[dict[str, Any]],
    image_columns: tuple[str, ...],
    dropped: list[str],
    quoted: bool,
    skip_invalid: bool,
    errors: str,
) -> None:
    with tree() as t:
        columns = [c for c in TSV_COLUMNS if c not in dropped] + list(image_columns)
        text = tsv_text(columns, numbered(t.fill(rows), "index"), quoted)
        if errors == "strict":
            text = utf8(text)
        path = t.root / "set.tsv"
        path.write_bytes(text.encode("utf-8", errors))
        event(outcome(check_set(path, t, text.count("\n") + text.count("\r") + 1, skip_invalid)))


@FUZZ
@given(st.binary(max_size=300), st.sampled_from([".parquet", ".pq", ".tsv", ".json"]))
def test_arbitrary_bytes_as_a_set(data: bytes, suffix: str) -> None:
    with tree() as t:
        path = t.root / f"set{suffix}"
        path.write_bytes(data)
        result = check_set(path, t, data.count(b"\n") + data.count(b"\r") + 1, skip_invalid=True)
        assert isinstance(result, QuestionSetError)  # random bytes are no question set


@pytest.mark.parametrize("skip_invalid", [False, True])
def test_generated_rows_reach_every_outcome(skip_invalid: bool) -> None:
    """The generators above exercise what they claim: each hostile image path gives its
    stated problem, and good rows (links inside the folder included) load."""
    with tree() as t:
        images = [
            "img/a.png",
            "img/link_in.png",
            "dir_in/b.png",
            "img/link_out.png",
            "img/abs_out.png",
            "dir_out/c.png",
            "../outside.png",
            str(t.root / "img" / "a.png"),
            "img/\x00.png",
            "img/" + "n" * 256 + ".png",
            "d/" * 2100 + "x.png",
            "img/broken.png",
            "img/notes.txt",
            "loop",
            "http://host/a.png",
        ]
        rows = [
            {"qid": f"q{i}", "question": GOOD_QUESTION, "answer": "A", "image": [image]}
            for i, image in enumerate(images, start=1)
        ]
        path = t.root / "set.parquet"
        pq.write_table(seed_table(rows, "list", "string", None), path)
        qs = check_set(path, t, len(rows), skip_invalid)
        if not skip_invalid:
            assert isinstance(qs, QuestionSetError) and len(qs.problems) == len(rows) - 3
            return
        assert isinstance(qs, QuestionSet) and [q.qid for q in qs] == ["q1", "q2", "q3"]
        assert all(p.row is not None for p in qs.problems)
        causes = {p.row or 0: p.cause for p in qs.problems}
        for row in (4, 5, 6):
            assert "symbolic link" in causes[row] and "outside the dataset root" in causes[row]
        assert "'..' leads outside" in causes[7] and "absolute paths are refused" in causes[8]
        assert "NUL" in causes[9]
        assert "too long" in causes[10] and "too long" in causes[11]
        assert "not a readable image" in causes[12] and "not a readable image" in causes[13]
        assert "Too many levels of symbolic links" in causes[14]
        assert "URLs are not supported" in causes[15]
        assert sorted(causes) == list(range(4, len(rows) + 1))
