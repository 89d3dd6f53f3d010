"""Multiple-choice visual-QA question sets: read them, and check them before any inference.

A set is a parquet or TSV file in one of two layouts, the seed layout or VLMEvalKit's
multiple-choice TSV (``vlmcap.qa.question_files``); its questions hold their choices in option
columns or in the question text, and their ground truth as a letter or an option's text
(``vlmcap.qa.question_text``); their images are paths under the dataset root or embedded
images, decoded to files (``vlmcap.qa.question_images``, which also states the path policy).
This module turns the rows into checked ``Question`` records and reports what is wrong.

Everything is checked before a question is returned: required columns and their types, empty
questions, missing choices, an answer that is none of the choices, duplicate qids, and that
every image is a readable image. Problems of the file as a whole always raise
``QuestionSetError``; problems of rows raise it too, as one report, unless ``skip_invalid``,
in which case the bad rows are left out and listed in ``QuestionSet.problems``. Every row
of a duplicated qid is a bad row (which one holds the right ground truth is unknown). Rows are
numbered from 1, the header not counted.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlmcap.qa.choices import LETTERS
from vlmcap.qa.problems import Problem, QuestionSetError, file_report, row_report
from vlmcap.qa.question_files import (
    PARQUET_SUFFIXES,
    SEED_LAYOUT,
    TSV_SUFFIXES,
    CellProblem,
    FileFault,
    FileProblem,
    cell_text,
    check_columns,
    check_types,
    detect_layout,
    open_parquet,
    open_tsv,
)
from vlmcap.qa.question_images import ImageCells, ImageRef, RowImage, check_images
from vlmcap.qa.question_text import answer_letter, parse_choices

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Question:
    """One multiple-choice question, checked: ``answer`` is a key of ``choices``, every image
    exists under the root (or was decoded from the file) and is readable."""

    qid: str
    question: str  # the stem, without the choice lines
    choices: dict[str, str] = field(hash=False)  # letter -> text, in letter order
    answer: str  # the ground-truth letter
    raw_answer: str  # the answer cell as written
    images: tuple[Path, ...]  # resolved paths, in order
    image_keys: tuple[str, ...]  # the paths as written (embedded images: their cache name)
    category: str | None
    source: str | None
    hint: str | None
    row: int  # 1-based data row of the file, for messages
    l2_category: str | None = None  # VLMEvalKit's ``l2-category``


@dataclass
class QuestionSet:
    """The usable questions of ``source_path`` and the problems of the rows left out."""

    questions: list[Question]
    problems: list[Problem]
    source_path: Path
    dataset_root: Path | None = None
    layout: str = SEED_LAYOUT

    def __len__(self) -> int:
        return len(self.questions)

    def __iter__(self) -> Iterator[Question]:
        return iter(self.questions)


# ---------------------------------------------------------------------------------------------
# Rows


@dataclass
class _Pending:
    """A row whose images are to be checked; ``fields`` is ``None`` when the rest of the row
    is already known to be bad (its images are still checked, to report every problem)."""

    row: int
    qid: str | None
    fields: dict[str, Any] | None
    images: list[RowImage | ImageRef]


class _Reader:
    """Turns rows into pending questions, collecting every row problem."""

    def __init__(self, root: Path, layout: str, columns: Sequence[str], work_dir: Path | None):
        self.layout = layout
        self.columns = set(columns)
        self.option_columns = [c for c in LETTERS if c in self.columns]
        self.cells = ImageCells(root, layout, work_dir)
        self.problems: list[Problem] = []
        #: Each row's own images by id, for VLMEvalKit cells that name another row's index.
        self.images_by_id: dict[str, list[RowImage]] = {}

    def row(self, row: int, values: Mapping[str, Any]) -> _Pending | None:
        problems: list[Problem] = []
        id_column = "qid" if self.layout == SEED_LAYOUT else "index"
        try:
            qid = cell_text(values, id_column, integer_ok=True)
        except CellProblem as exc:
            qid = None
            problems.append(Problem(row, None, exc.column, exc.cause))
        else:
            if qid is None:
                problems.append(Problem(row, None, id_column, f"the {id_column} is empty"))
            else:
                qid = qid.strip()

        def attempt(fn: Any, *args: Any) -> Any:
            try:
                return fn(*args)
            except CellProblem as exc:
                problems.append(Problem(row, qid, exc.column, exc.cause))
                return None

        fields = attempt(self._fields, values)
        images = attempt(self.cells.row_images, values)
        if qid is not None and images and all(isinstance(i, RowImage) for i in images):
            self.images_by_id.setdefault(qid, images)
        if images == []:
            column = (
                "image" if self.layout == SEED_LAYOUT or "image" in self.columns else "image_path"
            )
            problems.append(Problem(row, qid, column, "no image (the cell is empty)"))
        self.problems.extend(problems)
        if images is None:
            return None
        return _Pending(row, qid, None if problems else fields, images)

    def _fields(self, values: Mapping[str, Any]) -> dict[str, Any]:
        question = cell_text(values, "question")
        if question is None:
            raise CellProblem("question", "the question is empty")
        choices: dict[str, str] = {}
        column = "question"
        if self.option_columns:
            for letter in self.option_columns:
                text = cell_text(values, letter)
                if text is not None:
                    choices[letter] = text.strip()
            column = "/".join(self.option_columns)
        stem = question.strip()
        if not choices:
            stem, choices = parse_choices(question)
            if len(choices) < 2:
                where = f"option columns {column} are empty and " if self.option_columns else ""
                raise CellProblem(
                    "question",
                    f"no choices found: {where}the question text lists none (write them as "
                    "lines 'A. red' / '(B) blue' / 'C) green', or inline 'A. red B. blue')",
                )
        elif len(choices) < 2:
            raise CellProblem(column, f"only one option ({', '.join(choices)}) is filled")
        raw = cell_text(values, "answer")
        if raw is None:
            raise CellProblem("answer", "the answer is empty")
        try:
            letter = answer_letter(raw, choices)
        except ValueError as exc:
            raise CellProblem("answer", str(exc)) from None
        return {
            "question": stem,
            "choices": choices,
            "answer": letter,
            "raw_answer": raw,
            "category": _stripped(cell_text(values, "category")),
            "source": _stripped(cell_text(values, "source")),
            "hint": _stripped(cell_text(values, "hint")),
            "l2_category": _stripped(cell_text(values, "l2-category")),
        }


def _stripped(text: str | None) -> str | None:
    return None if text is None else text.strip()


# ---------------------------------------------------------------------------------------------
# Loading


def load_questions(
    path: str | Path,
    dataset_root: str | Path | None = None,
    *,
    skip_invalid: bool = False,
    work_dir: str | Path | None = None,
) -> QuestionSet:
    """Read and check the question set at ``path`` (parquet or TSV, see the module docstring).

    Image paths are relative to ``dataset_root`` (default: the folder of ``path``); embedded
    images are decoded under ``work_dir``. Raises ``QuestionSetError`` for a file that cannot
    be used, and for any bad row unless ``skip_invalid`` (then bad rows are left out and
    listed in ``problems``). A set left with no question at all always raises.
    """
    source = Path(path)
    root = Path(os.path.abspath(dataset_root if dataset_root is not None else source.parent))
    try:
        return _load(source, root, skip_invalid, None if work_dir is None else Path(work_dir))
    except FileProblem as exc:
        problems = [Problem(None, None, column, cause) for column, cause in exc.faults]
        raise QuestionSetError(file_report(source, problems), problems) from None
    except PermissionError:
        problem = Problem(None, None, None, "permission denied (cannot read the file)")
        raise QuestionSetError(file_report(source, [problem]), [problem]) from None


def _load(source: Path, root: Path, skip_invalid: bool, work_dir: Path | None) -> QuestionSet:
    suffix = source.suffix.lower()
    if not source.is_file():
        raise FileProblem([(None, "no such file")])
    if suffix not in PARQUET_SUFFIXES | TSV_SUFFIXES:
        known = ", ".join(sorted(PARQUET_SUFFIXES | TSV_SUFFIXES))
        raise FileProblem([(None, f"unknown format {suffix!r} ({known})")])
    if not root.is_dir():
        raise FileProblem([(None, f"dataset root {root} is not a folder")])
    opener = open_parquet if suffix in PARQUET_SUFFIXES else open_tsv
    columns, types, rows = opener(source)
    layout = detect_layout(source, columns)
    faults: list[FileFault] = check_columns(columns, layout) + check_types(columns, types, layout)
    if faults:
        rows.close()
        raise FileProblem(faults)

    reader = _Reader(root, layout, columns, work_dir)
    pending: list[_Pending] = []
    qid_rows: dict[str, list[int]] = {}
    total = 0
    for total, values in enumerate(rows, start=1):
        item = reader.row(total, values)
        if item is not None:
            pending.append(item)
        qid = _qid_of(values, layout)
        if qid is not None:
            qid_rows.setdefault(qid, []).append(total)
    if total == 0:
        raise FileProblem([(None, "the file has no rows")])
    problems = reader.problems
    problems += _duplicates(qid_rows, "qid" if layout == SEED_LAYOUT else "index")
    pending = _resolve_refs(pending, problems, reader.images_by_id)
    pending = _check_images(pending, problems)
    bad_rows = {p.row for p in problems}
    questions = [_question(p) for p in pending if p.row not in bad_rows and p.fields is not None]
    problems.sort(key=lambda p: (p.row or 0, str(p.column)))

    if problems and not skip_invalid:
        raise QuestionSetError(row_report(source, problems, total, len(questions)), problems)
    if not questions:
        raise QuestionSetError(row_report(source, problems, total, 0, suggest=False), problems)
    if problems:
        logger.warning(
            "%s: left out %d of %d rows (%d problems); first: %s",
            source,
            len(bad_rows),
            total,
            len(problems),
            problems[0],
        )
    logger.info(
        "%s: %d questions (%s layout, %d embedded images decoded)",
        source,
        len(questions),
        layout,
        reader.cells.embedded_count,
    )
    return QuestionSet(questions, problems, source, dataset_root=root, layout=layout)


def _qid_of(values: Mapping[str, Any], layout: str) -> str | None:
    try:
        qid = cell_text(values, "qid" if layout == SEED_LAYOUT else "index", integer_ok=True)
    except CellProblem:
        return None
    return None if qid is None else qid.strip()


def _duplicates(qid_rows: Mapping[str, list[int]], column: str) -> list[Problem]:
    problems = []
    for qid, rows in qid_rows.items():
        if len(rows) > 1:
            listed = ", ".join(map(str, rows))
            for row in rows:
                problems.append(
                    Problem(
                        row,
                        qid,
                        column,
                        f"duplicate {column}: {qid!r} is used by rows {listed} "
                        "(each question needs its own id)",
                    )
                )
    return problems


def _resolve_refs(
    pending: list[_Pending], problems: list[Problem], by_id: Mapping[str, list[RowImage]]
) -> list[_Pending]:
    """Replace VLMEvalKit image references by the images of the rows they name."""
    kept = []
    for p in pending:
        images: list[RowImage | ImageRef] = []
        for image in p.images:
            if isinstance(image, RowImage):
                images.append(image)
                continue
            own = by_id.get(image.index)
            if not own:
                problems.append(
                    Problem(
                        p.row,
                        p.qid,
                        "image",
                        f"the image cell {image.index!r} is too short for base64 and names "
                        "no row (index) with a usable image",
                    )
                )
                break
            images.extend(own)
        else:
            kept.append(_Pending(p.row, p.qid, p.fields, images))
    return kept


def _check_images(pending: list[_Pending], problems: list[Problem]) -> list[_Pending]:
    """Check every image file once (in threads); rows with a bad image get a problem."""
    causes = check_images(
        i.path for p in pending for i in p.images if isinstance(i, RowImage) and i.check
    )
    kept = []
    for p in pending:
        bad = False
        for image in p.images:
            cause = causes.get(image.path) if isinstance(image, RowImage) and image.check else None
            if cause is not None:
                assert isinstance(image, RowImage)
                problems.append(
                    Problem(p.row, p.qid, image.column, f"image {image.key!r}: {cause}")
                )
                bad = True
        if not bad:
            kept.append(p)
    return kept


def _question(p: _Pending) -> Question:
    images = [i for i in p.images if isinstance(i, RowImage)]
    f = p.fields
    assert f is not None and p.qid is not None
    return Question(
        qid=p.qid,
        question=f["question"],
        choices=f["choices"],
        answer=f["answer"],
        raw_answer=f["raw_answer"],
        images=tuple(i.path for i in images),
        image_keys=tuple(i.key for i in images),
        category=f["category"],
        source=f["source"],
        hint=f["hint"],
        row=p.row,
        l2_category=f["l2_category"],
    )
