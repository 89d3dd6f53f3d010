"""Loading and checking multiple-choice visual-QA sets (seed parquet, VLMEvalKit TSV)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from tests.qa.fixtures_qa import (
    BLUE,
    GREEN,
    IMAGE_SIZE,
    RED,
    SEED_SCHEMA,
    b64_png,
    png,
    png_bytes,
    seed_row,
    write_parquet,
    write_tsv,
)
from vlmcap.qa.dataset import Question, load_questions
from vlmcap.qa.problems import REPORT_MAX_LINES, QuestionSetError
from vlmcap.qa.question_images import EMBEDDED_DIR_NAME, image_values, resolve_in_root
from vlmcap.qa.question_text import answer_letter, parse_choices

VLMEVAL_COLUMNS = ["index", "question", "hint", "A", "B", "C", "D", "answer", "category"]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A dataset root holding img/a.png (red), img/b.png (blue), img/c.png (green)."""
    base = tmp_path / "data"
    png(base / "img" / "a.png", RED)
    png(base / "img" / "b.png", BLUE)
    png(base / "img" / "c.png", GREEN)
    return base


def _report(excinfo: pytest.ExceptionInfo[QuestionSetError]) -> str:
    return str(excinfo.value)


# --- the seed layout ------------------------------------------------------------------------


def test_seed_parquet_with_list_image_column_from_numpy_arrays(root: Path) -> None:
    images = pa.array(
        [np.array(["img/a.png", "img/b.png"]), np.array(["img/c.png"])],
        type=pa.list_(pa.string()),
    )
    table = pa.table(
        {
            "qid": ["q1", "q2"],
            "question": [
                "Which image is blue?\nA. the first\nB. the second",
                "What colour? A. red B. blue C. green",
            ],
            "answer": ["\\boxed{B}", "C. green"],
            "image": images,
            "category": ["compare", None],
        }
    )
    path = root / "set.parquet"
    pq.write_table(table, path)

    qs = load_questions(path, root)

    assert [q.qid for q in qs] == ["q1", "q2"]
    q1, q2 = qs.questions
    assert q1.image_keys == ("img/a.png", "img/b.png")
    assert q1.images == (
        (root / "img/a.png").resolve(),
        (root / "img/b.png").resolve(),
    )
    assert q1.question == "Which image is blue?"
    assert q1.choices == {"A": "the first", "B": "the second"}
    assert (q1.answer, q1.raw_answer) == ("B", "\\boxed{B}")
    assert (q1.category, q1.source, q1.row) == ("compare", None, 1)
    assert q2.image_keys == ("img/c.png",)
    assert q2.answer == "C"
    assert q2.category is None
    assert q2.row == 2
    assert qs.problems == []


def test_seed_parquet_with_single_string_image_column(root: Path) -> None:
    rows = [seed_row("q1", "img/a.png"), seed_row("q2", "img/c.png", answer="green")]
    path = write_parquet(root / "set.parquet", rows)  # image inferred as string

    qs = load_questions(path, root)

    assert [q.image_keys for q in qs] == [("img/a.png",), ("img/c.png",)]
    assert [q.answer for q in qs] == ["A", "C"]
    assert all(len(q.images) == 1 and q.images[0].is_file() for q in qs)
    assert qs.questions[0].source == "synthetic"


def test_image_values_accepts_numpy_arrays_lists_and_strings() -> None:
    assert image_values(np.array(["a.png", "b.png"], dtype=object)) == ["a.png", "b.png"]
    assert image_values(np.array(["a.png"])) == ["a.png"]
    assert image_values(["a.png", "b.png"]) == ["a.png", "b.png"]
    assert image_values("a.png") == ["a.png"]
    assert image_values('["a.png", "b.png"]') == ["a.png", "b.png"]
    assert image_values(None) == []
    with pytest.raises(ValueError, match="expected a path"):
        image_values(3)


def test_dataset_root_defaults_to_the_file_folder(root: Path) -> None:
    path = write_parquet(root / "set.parquet", [seed_row("q1", "img/a.png")])
    assert load_questions(path).questions[0].image_keys == ("img/a.png",)


def test_parquet_image_structs_with_bytes_are_decoded(root: Path, tmp_path: Path) -> None:
    struct = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    table = pa.table(
        {
            "qid": ["q1"],
            "question": ["Colour? A. red B. blue"],
            "answer": ["A"],
            "image": pa.array([{"bytes": png_bytes(BLUE), "path": "x.png"}], type=struct),
        }
    )
    path = root / "hf.parquet"
    pq.write_table(table, path)

    q = load_questions(path, root, work_dir=tmp_path / "work").questions[0]

    assert q.images[0].parent == tmp_path / "work" / EMBEDDED_DIR_NAME
    with Image.open(q.images[0]) as im:
        assert im.convert("RGB").getpixel((0, 0)) == BLUE


# --- choices and answers --------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "What colour is it?\nA. red\nB. blue\nC. green",
        "What colour is it?\n(A) red\n(B) blue\n(C) green",
        "What colour is it?\nA) red\nB) blue\nC) green",
        "What colour is it?\nA: red\nB: blue\nC: green",
        "What colour is it?\nA. red\n(B) blue\nC) green",
        "What colour is it? A. red B. blue C. green",
        "What colour is it? (A) red (B) blue (C) green",
        "What colour is it? A) red B) blue C) green",
        "What colour is it?\nOptions:\nA. red\nB. blue\nC. green",
        "What colour is it? Options: A. red, B. blue, C. green",
    ],
)
def test_choices_parsed_in_each_form(text: str) -> None:
    stem, choices = parse_choices(text)
    assert stem == "What colour is it?"
    assert list(choices.values()) == ["red", "blue", "green"]
    assert list(choices) == ["A", "B", "C"]


def test_choice_parsing_keeps_instructions_and_skips_letters_in_the_stem() -> None:
    stem, choices = parse_choices(
        "Is A. Lincoln on the coin?\nA. yes\nB. no\nAnswer with the option's letter."
    )
    assert choices == {"A": "yes", "B": "no"}
    assert stem == "Is A. Lincoln on the coin?\nAnswer with the option's letter."


def test_no_choices_in_plain_text() -> None:
    assert parse_choices("What colour is the U.S.A. flag?") == (
        "What colour is the U.S.A. flag?",
        {},
    )
    assert parse_choices("Only A. red here")[1] == {}  # one option is no choice


CHOICES = {"A": "red", "B": "blue", "C": "dark green"}


@pytest.mark.parametrize(
    ("raw", "letter"),
    [
        ("\\boxed{B}", "B"),
        ("$\\boxed{C}$", "C"),
        ("B", "B"),
        ("b", "B"),
        ("(C)", "C"),
        ("A.", "A"),
        ("A)", "A"),
        ("A. red", "A"),
        ("(C) Dark green", "C"),
        ("dark green", "C"),
        ("Blue.", "B"),
        ("\\boxed{red}", "A"),
    ],
)
def test_ground_truth_in_each_form(raw: str, letter: str) -> None:
    assert answer_letter(raw, CHOICES) == letter


@pytest.mark.parametrize(
    ("raw", "cause"),
    [
        ("D", "not one of the choices A, B, C"),
        ("A. blue", "option A is 'red'"),
        ("purple", "not one of the choices"),
        ("\\boxed{}", "empty"),
    ],
)
def test_ground_truth_not_among_the_choices(raw: str, cause: str) -> None:
    with pytest.raises(ValueError, match=cause):
        answer_letter(raw, CHOICES)


# --- VLMEvalKit TSV --------------------------------------------------------------------------


def test_vlmeval_tsv_with_base64_images(tmp_path: Path) -> None:
    work = tmp_path / "out"
    rows = [
        {
            "index": "0",
            "question": "What colour is the square?",
            "hint": "It is bright.",
            "A": "red",
            "B": "blue",
            "C": "green",
            "D": "nan",  # pandas' NaN: an absent option
            "answer": "B",
            "category": "colour",
            "l2-category": "perception",
            "image": b64_png(BLUE),
        },
        {
            "index": "1",
            "question": "Which one is green?",
            "A": "the first",
            "B": "the second",
            "answer": "B",
            "category": "compare",
            "image": repr([b64_png(RED), b64_png(GREEN)]),  # VLMEvalKit's multi-image cell
        },
        {
            "index": "2",
            "question": "Same square again: which colour?",
            "A": "red",
            "B": "blue",
            "answer": "(B)",
            "category": "colour",
            "image": "0",  # VLMEvalKit shares row 0's image by naming its index
        },
    ]
    path = write_tsv(tmp_path / "mmb.tsv", rows, [*VLMEVAL_COLUMNS, "l2-category", "image"])

    qs = load_questions(path, tmp_path, work_dir=work)

    q0, q1, q2 = qs.questions
    assert qs.layout == "vlmeval"
    assert (q0.qid, q0.question, q0.hint) == ("0", "What colour is the square?", "It is bright.")
    assert q0.choices == {"A": "red", "B": "blue", "C": "green"}
    assert (q0.answer, q0.category, q0.l2_category) == ("B", "colour", "perception")
    assert len(q0.images) == 1 and q0.images[0].parent == work / EMBEDDED_DIR_NAME
    assert q0.image_keys == (q0.images[0].name,)
    with Image.open(q0.images[0]) as im:
        assert im.size == IMAGE_SIZE
        assert im.convert("RGB").getpixel((0, 0)) == BLUE
    assert len(q1.images) == 2
    colours = []
    for p in q1.images:
        with Image.open(p) as im:
            colours.append(im.convert("RGB").getpixel((0, 0)))
    assert colours == [RED, GREEN]
    assert q2.images == q0.images and q2.answer == "B"
    assert len(list((work / EMBEDDED_DIR_NAME).iterdir())) == 3  # one file per distinct image


def test_shared_image_of_a_bad_row_is_still_usable(tmp_path: Path) -> None:
    rows = [
        {"index": 0, "question": "Q?", "A": "x", "B": "y", "answer": "Q", "image": b64_png()},
        {"index": 1, "question": "Q?", "A": "x", "B": "y", "answer": "B", "image": "0"},
    ]
    path = write_tsv(tmp_path / "share.tsv", rows, [*VLMEVAL_COLUMNS, "image"])
    qs = load_questions(path, tmp_path, work_dir=tmp_path / "w", skip_invalid=True)
    assert [q.qid for q in qs] == ["1"] and qs.questions[0].images[0].is_file()
    assert [(p.row, p.column) for p in qs.problems] == [(1, "answer")]


def test_vlmeval_tsv_with_json_list_of_base64(tmp_path: Path) -> None:
    row = {"index": "7", "question": "Q?", "A": "x", "B": "y", "answer": "A"}
    row["image"] = f'["{b64_png(RED)}", "{b64_png(BLUE)}"]'
    path = write_tsv(tmp_path / "multi.tsv", [row], [*VLMEVAL_COLUMNS, "image"])
    q = load_questions(path, tmp_path, work_dir=tmp_path / "w").questions[0]
    assert len(q.images) == 2 and len(set(q.images)) == 2


def test_vlmeval_tsv_with_image_path(root: Path) -> None:
    rows = [
        {
            "index": 1,
            "question": "Q1?",
            "A": "red",
            "B": "blue",
            "answer": "A",
            "image_path": "img/a.png",
        },
        {
            "index": 2,
            "question": "Q2?",
            "A": "red",
            "B": "blue",
            "answer": "B",
            "image_path": "['img/b.png', 'img/c.png']",
        },
    ]
    path = write_tsv(root / "paths.tsv", rows, [*VLMEVAL_COLUMNS, "image_path"])

    qs = load_questions(path, root)

    assert [q.image_keys for q in qs] == [("img/a.png",), ("img/b.png", "img/c.png")]
    assert qs.questions[1].images[1] == (root / "img/c.png").resolve()


def test_vlmeval_options_from_the_question_when_columns_are_absent(root: Path) -> None:
    row = {
        "index": 1,
        "question": "Colour?\nA. red\nB. blue",
        "answer": "B",
        "image_path": "img/a.png",
    }
    path = write_tsv(root / "q.tsv", [row], ["index", "question", "answer", "image_path"])
    q = load_questions(path, root).questions[0]
    assert (q.question, q.choices, q.answer) == ("Colour?", {"A": "red", "B": "blue"}, "B")


def test_base64_images_need_a_work_dir(tmp_path: Path) -> None:
    row = {"index": 0, "question": "Q?", "A": "x", "B": "y", "answer": "A", "image": b64_png()}
    path = write_tsv(tmp_path / "b.tsv", [row], [*VLMEVAL_COLUMNS, "image"])
    with pytest.raises(QuestionSetError, match="work_dir"):
        load_questions(path, tmp_path)


def test_bad_base64_and_dangling_reference_are_row_problems(tmp_path: Path) -> None:
    rows = [
        {"index": 0, "question": "Q?", "A": "x", "B": "y", "answer": "A", "image": b64_png()},
        {
            "index": 1,
            "question": "Q?",
            "A": "x",
            "B": "y",
            "answer": "A",
            "image": "not base64 at all! " * 8,
        },
        {"index": 2, "question": "Q?", "A": "x", "B": "y", "answer": "A", "image": "99"},
    ]
    path = write_tsv(tmp_path / "b.tsv", rows, [*VLMEVAL_COLUMNS, "image"])
    qs = load_questions(path, tmp_path, work_dir=tmp_path / "w", skip_invalid=True)
    assert [q.qid for q in qs] == ["0"]
    causes = {p.row: p.cause for p in qs.problems}
    assert "not valid base64" in causes[2]
    assert "'99'" in causes[3]


# --- validation ------------------------------------------------------------------------------


def _messy_rows(root: Path) -> list[dict[str, object]]:
    (root / "img" / "broken.png").write_bytes(png_bytes()[:40])  # truncated
    data = bytearray(png_bytes())
    data[-20] ^= 0xFF  # inside the pixel data: the header reads, the checksum does not match
    (root / "img" / "corrupt.png").write_bytes(bytes(data))
    return [
        seed_row("ok1", ["img/a.png"]),
        seed_row("empty-q", ["img/a.png"], question="   "),
        seed_row("no-choices", ["img/a.png"], question="What colour is the square?"),
        seed_row("bad-answer", ["img/a.png"], answer="E"),
        seed_row("missing", ["img/a.png", "img/nope.png"]),
        seed_row("broken", ["img/broken.png"]),
        seed_row("no-image", []),
        seed_row("corrupt", ["img/corrupt.png"]),
        seed_row("ok2", ["img/b.png"], answer="(B)"),
    ]


def test_validation_report_lists_every_problem_in_one_message(root: Path) -> None:
    path = write_parquet(root / "messy.parquet", _messy_rows(root), SEED_SCHEMA)

    with pytest.raises(QuestionSetError) as excinfo:
        load_questions(path, root)

    report = _report(excinfo)
    lines = report.splitlines()
    assert lines[0].endswith("7 problems in 7 of 9 rows:")
    assert "row 2 (qid 'empty-q') column 'question': the question is empty" in report
    assert "row 3 (qid 'no-choices') column 'question': no choices found" in report
    assert "row 4 (qid 'bad-answer') column 'answer': answer 'E' is not one of" in report
    assert "row 5 (qid 'missing') column 'image': image 'img/nope.png': file not found" in report
    assert "row 6 (qid 'broken') column 'image': image 'img/broken.png': not a readable" in report
    assert "row 7 (qid 'no-image') column 'image': no image" in report
    assert "row 8 (qid 'corrupt') column 'image': image 'img/corrupt.png': not a readable" in report
    assert "--skip-invalid" in lines[-1] and "2 valid questions" in lines[-1]
    assert [p.row for p in excinfo.value.problems] == [2, 3, 4, 5, 6, 7, 8]


def test_skip_invalid_keeps_the_good_rows(root: Path) -> None:
    path = write_parquet(root / "messy.parquet", _messy_rows(root), SEED_SCHEMA)

    qs = load_questions(path, root, skip_invalid=True)

    assert [q.qid for q in qs] == ["ok1", "ok2"]
    assert [q.row for q in qs] == [1, 9]
    assert qs.questions[1].answer == "B"
    assert {p.qid for p in qs.problems} == {
        "empty-q",
        "no-choices",
        "bad-answer",
        "missing",
        "broken",
        "no-image",
        "corrupt",
    }
    assert qs.source_path == path


def test_a_row_reports_each_of_its_problems(root: Path) -> None:
    rows = [seed_row("q1", ["img/a.png"]), seed_row("q2", ["img/gone.png"], answer="Z")]
    path = write_parquet(root / "two.parquet", rows, SEED_SCHEMA)
    with pytest.raises(QuestionSetError) as excinfo:
        load_questions(path, root)
    assert [(p.row, p.column) for p in excinfo.value.problems] == [(2, "answer"), (2, "image")]
    assert "2 problems in 1 of 2 rows" in _report(excinfo)


def test_report_is_capped(root: Path) -> None:
    rows = [seed_row(f"q{i}", ["img/a.png"], answer="Z") for i in range(REPORT_MAX_LINES + 12)]
    path = write_parquet(root / "many.parquet", rows, SEED_SCHEMA)

    with pytest.raises(QuestionSetError) as excinfo:
        load_questions(path, root)

    lines = _report(excinfo).splitlines()
    problem_lines = [line for line in lines if line.startswith("  row ")]
    assert len(problem_lines) == REPORT_MAX_LINES
    assert "  ... and 12 more problems" in lines
    assert len(excinfo.value.problems) == REPORT_MAX_LINES + 12


def test_every_row_bad_raises_even_when_skipping(root: Path) -> None:
    path = write_parquet(root / "bad.parquet", [seed_row("q1", answer="Z")], SEED_SCHEMA)
    with pytest.raises(QuestionSetError, match="No question is usable"):
        load_questions(path, root, skip_invalid=True)


def test_missing_columns_are_one_error_naming_them(root: Path) -> None:
    path = write_parquet(root / "cols.parquet", [{"qid": "q1", "question": "Q? A. x B. y"}])
    with pytest.raises(QuestionSetError) as excinfo:
        load_questions(path, root, skip_invalid=True)
    report = _report(excinfo)
    assert "missing required columns for the seed layout: answer, image" in report
    assert "(columns found: qid, question)" in report
    assert len(excinfo.value.problems) == 1


def test_missing_tsv_image_columns(tmp_path: Path) -> None:
    row = {"index": 0, "question": "Q?", "A": "x", "B": "y", "answer": "A"}
    path = write_tsv(tmp_path / "noimg.tsv", [row], VLMEVAL_COLUMNS)
    with pytest.raises(QuestionSetError, match="image or image_path"):
        load_questions(path, tmp_path)


def test_wrong_column_types(root: Path) -> None:
    rows = [{"qid": "q1", "question": "Q? A. x B. y", "answer": 1, "image": 5}]
    path = write_parquet(root / "types.parquet", rows)
    with pytest.raises(QuestionSetError) as excinfo:
        load_questions(path, root)
    report = _report(excinfo)
    assert "column 'answer': has type int64; expected text" in report
    assert "column 'image': has type int64; expected text or a list of text" in report


def test_integer_qids_are_text(root: Path) -> None:
    rows = [seed_row(7, "img/a.png")]  # type: ignore[arg-type]
    path = write_parquet(root / "ints.parquet", rows)
    assert load_questions(path, root).questions[0].qid == "7"


def test_duplicate_qids_are_all_named(root: Path) -> None:
    rows = [seed_row("q1"), seed_row("q2"), seed_row("q1"), seed_row("q3"), seed_row("q1")]
    path = write_parquet(root / "dup.parquet", rows)

    with pytest.raises(QuestionSetError) as excinfo:
        load_questions(path, root)

    dup = [p for p in excinfo.value.problems if "duplicate" in p.cause]
    assert [p.row for p in dup] == [1, 3, 5]
    assert all(p.qid == "q1" and "rows 1, 3, 5" in p.cause for p in dup)
    kept = load_questions(path, root, skip_invalid=True)
    assert [q.qid for q in kept] == ["q2", "q3"]


def test_not_a_question_set_file(tmp_path: Path) -> None:
    with pytest.raises(QuestionSetError, match="no such file"):
        load_questions(tmp_path / "absent.parquet", tmp_path)
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(QuestionSetError, match="unknown format"):
        load_questions(tmp_path / "x.json", tmp_path)
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(QuestionSetError, match="not a readable parquet"):
        load_questions(tmp_path / "junk.parquet", tmp_path)


# --- paths never leave the root ---------------------------------------------------------------


def test_path_escapes_are_refused(root: Path, tmp_path: Path) -> None:
    outside = png(tmp_path / "outside.png", GREEN)
    os.symlink(outside, root / "img" / "link-out.png")
    rows = [
        seed_row("dotdot", ["../outside.png"]),
        seed_row("absolute", [str(outside)]),
        seed_row("link-out", ["img/link-out.png"]),
        seed_row("ok", ["img/a.png"]),
    ]
    path = write_parquet(root / "esc.parquet", rows, SEED_SCHEMA)

    with pytest.raises(QuestionSetError) as excinfo:
        load_questions(path, root)

    report = _report(excinfo)
    assert "row 1 (qid 'dotdot') column 'image': image path '../outside.png': '..' leads" in report
    assert f"row 2 (qid 'absolute') column 'image': image path '{outside}': absolute" in report
    assert "row 3 (qid 'link-out') column 'image': image path 'img/link-out.png'" in report
    assert "symbolic link" in report
    assert {p.row for p in excinfo.value.problems} == {1, 2, 3}


def test_symlinks_inside_the_root_are_followed(root: Path) -> None:
    os.symlink(root / "img" / "b.png", root / "img" / "alias.png")
    os.symlink(root / "img", root / "shortcut")
    rows = [
        seed_row("alias", ["img/alias.png"]),
        seed_row("dir", ["shortcut/c.png"], answer="C"),
        seed_row("dots", ["img/../img/a.png"]),
    ]
    qs = load_questions(write_parquet(root / "links.parquet", rows, SEED_SCHEMA), root)
    assert [q.images[0].name for q in qs] == ["b.png", "c.png", "a.png"]
    assert [q.image_keys[0] for q in qs] == ["img/alias.png", "shortcut/c.png", "img/../img/a.png"]


def test_root_reached_through_a_symlink(root: Path, tmp_path: Path) -> None:
    linked = tmp_path / "linked-root"
    os.symlink(root, linked)
    assert resolve_in_root(linked, "img/a.png") == (root / "img/a.png").resolve()
    with pytest.raises(ValueError, match="outside the dataset root"):
        resolve_in_root(linked, "..")
    with pytest.raises(ValueError, match="dataset root itself"):
        resolve_in_root(linked, ".")


def test_question_is_frozen(root: Path) -> None:
    path = write_parquet(root / "one.parquet", [seed_row("q1")])
    q = load_questions(path, root).questions[0]
    assert isinstance(q, Question)
    with pytest.raises(AttributeError):
        q.answer = "B"  # type: ignore[misc]
    assert hash(q) == hash(q)
