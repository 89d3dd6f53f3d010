"""Multiple-choice visual-QA question sets: read them, and check them before any inference.

Two layouts are read, from parquet (with pyarrow) or TSV (with the ``csv`` module):

* **The seed layout**: columns ``qid``, ``question``, ``answer``, ``image`` and optionally
  ``category``, ``source``, ``hint``. The question text holds its choices, one per line
  (``A. red`` / ``(B) blue`` / ``C) green`` / ``D: grey``) or inline
  (``Which colour? A. red B. blue C. green``). ``image`` is one path, a list of paths (a
  parquet ``list<string>`` column; in TSV a JSON list), or Hugging Face's image struct
  (``{"bytes": ..., "path": ...}``, embedded bytes).
* **VLMEvalKit's multiple-choice TSV**: columns ``index``, ``question``, option columns
  ``A`` .. ``J`` (an empty or ``nan`` cell is an absent option), ``answer``, ``category`` and
  optionally ``l2-category``, ``hint``, ``source``. Images come from ``image`` (base64; a JSON
  or Python-literal list of base64 strings for several images; or, as VLMEvalKit writes to
  share an image, a short value naming the ``index`` of the row that holds it) or, when
  ``image`` is absent or empty, from ``image_path`` (paths, as in the seed layout).

The layout follows the columns (``qid`` -> seed, ``index`` -> VLMEvalKit), else the suffix
(``.parquet`` -> seed, ``.tsv`` -> VLMEvalKit). The ground truth may be written ``\\boxed{A}``,
``A``, ``(A)``, ``A.``, ``A. red`` or as the exact text of one option; it becomes the letter.

Embedded images (base64, or bytes in parquet) are decoded to files, because the pipeline loads
images from paths (``vlmcap.media.images.load_image``): they go to ``<work_dir>/qa_images/``,
named by a hash of their bytes (so a rerun or a shared image writes nothing new), and their
``image_keys`` entry is that file name.

Path policy: image paths are relative to the dataset root. An absolute path, a path whose
``..`` leaves the root, or one that resolves outside the root through a symbolic link is
refused; symbolic links are followed only when their target stays inside the (resolved) root.

Everything is checked before a question is returned: required columns and their types, empty
questions, missing choices, an answer that is none of the choices, duplicate qids, and that
every image is a readable image (header and, where the format has them, checksums, through
Pillow's ``verify``; pixels are not decoded). Problems of the file as a whole always raise
``QuestionSetError``; problems of rows raise it too, as one report, unless ``skip_invalid``,
in which case the bad rows are left out and listed in ``QuestionSet.problems``. Every row
of a duplicated qid is a bad row (which one holds the right ground truth is unknown). Rows are
numbered from 1, the header not counted.
"""

from __future__ import annotations

import ast
import base64
import binascii
import csv
import hashlib
import io
import json
import logging
import math
import os
import re
import struct
from collections.abc import Generator, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from vlmcap.media.images import DEFAULT_MAX_PIXELS, MediaError, check_file, display_name
from vlmcap.qa.choices import LETTERS

logger = logging.getLogger(__name__)

SEED_LAYOUT = "seed"
VLMEVAL_LAYOUT = "vlmeval"
PARQUET_SUFFIXES = frozenset({".parquet", ".pq"})
TSV_SUFFIXES = frozenset({".tsv"})
#: Required columns of each layout (VLMEvalKit's also needs ``image`` or ``image_path``).
REQUIRED_COLUMNS = {
    SEED_LAYOUT: ("qid", "question", "answer", "image"),
    VLMEVAL_LAYOUT: ("index", "question", "answer"),
}
#: Folder under ``work_dir`` that embedded images are decoded into.
EMBEDDED_DIR_NAME = "qa_images"
#: A VLMEvalKit ``image`` cell this short is the ``index`` of the row holding the image.
IMAGE_REF_MAX_CHARS = 64
#: The error report lists at most this many problems, then counts the rest.
REPORT_MAX_LINES = 50
#: Threads checking image files (I/O bound: network file systems gain the most).
IMAGE_CHECK_WORKERS = 8
#: Rows per parquet batch read.
PARQUET_BATCH_ROWS = 512
#: Largest TSV cell accepted (base64 images are far above the ``csv`` default of 128 KiB).
TSV_FIELD_LIMIT = 1 << 30
#: Cells meaning "no value" in a TSV (pandas writes NaN as an empty cell or ``nan``).
_TSV_NULLS = frozenset({"", "nan", "NaN"})
#: Pillow format -> suffix of a decoded embedded image.
_IMAGE_SUFFIXES = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp"}
_SHORT_VALUE = 60  # characters of a bad value quoted in a message
_HASH_CHARS = 24  # hex digits of the sha256 naming a decoded image

_Rows = Generator[dict[str, Any], None, None]
# What Pillow raises for damaged files, besides OSError and its subclasses.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, KeyError)

# An option marker: "A." "A)" "A:" or "(A)", at the start of the text or after a space or a
# separator ("Options:A. red"), so letters inside words ("U.S.A.") are not markers.
_MARKER = re.compile(
    rf"(?:^|(?<=[\s:;,]))(?:\((?P<paren>[{LETTERS}])\)|(?P<bare>[{LETTERS}])[.):：])"
)
_LINE_START = re.compile(r"(?:^|\n)[ \t]*$")
# "Options:" before the choices (on its own line the colon may be left out).
_OPTIONS_LABEL = re.compile(
    r"(?:(?:^|\n)[ \t]*(?:options|choices)[ \t]*[:：]?|(?<=\s)(?:options|choices)[ \t]*[:：])"
    r"[ \t]*$",
    re.IGNORECASE,
)
_BOXED = re.compile(r"\$?\s*\\boxed\{(.*)\}\s*\$?", re.DOTALL)
_LETTER_ONLY = re.compile(r"\(?([A-Za-z])\)?[.):：]?")
_LETTER_AND_TEXT = re.compile(r"(?:\(([A-Z])\)|([A-Z])[.):：])\s*(.+)", re.DOTALL)
_TRAILING_PUNCT = re.compile(r"[\s.。!?;,]+$")


class QuestionSetError(ValueError):
    """A question set that cannot be used; the message is one report of every problem."""

    def __init__(self, message: str, problems: Sequence[Problem] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


@dataclass(frozen=True)
class Problem:
    """One thing wrong: ``row`` (1-based data row, the header not counted) and ``qid`` are
    ``None`` for a problem of the whole file; ``column`` names the column at fault."""

    row: int | None
    qid: str | None
    column: str | None
    cause: str

    def __str__(self) -> str:
        where = [] if self.row is None else [f"row {self.row}"]
        if self.qid is not None:
            where.append(f"(qid {self.qid!r})")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        return f"{' '.join(where)}: {self.cause}" if where else self.cause


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
# Choices and answers


def parse_choices(text: str) -> tuple[str, dict[str, str]]:
    """Split a question into its stem and its choices (``{}`` when it lists fewer than two).

    Choices are ``A. x``, ``(A) x``, ``A) x`` or ``A: x``, with consecutive letters from
    ``A``, one per line or inline. Among several candidate runs the longest wins, then one
    whose markers all start lines, then the last (a stem may mention "A." itself). Inline
    choices may be separated by "," or ";", which are not part of their text. Lines after
    the last choice's line (an instruction such as "Answer with the letter") stay in the stem;
    a trailing "Options:" label is dropped from it.
    """
    markers = []
    for m in _MARKER.finditer(text):
        at_line_start = bool(_LINE_START.search(text, 0, m.start()))
        follows = text[m.end() : m.end() + 1]
        if m.group("bare") and not at_line_start and follows and not follows.isspace():
            continue  # "A.b" inside a line is not a marker
        markers.append((m.start(), m.end(), m.group("paren") or m.group("bare"), at_line_start))
    best: list[tuple[int, int, str, bool]] = []
    best_key: tuple[int, bool, int] = (0, False, -1)
    for i, first in enumerate(markers):
        if first[2] != LETTERS[0]:
            continue
        chain = [first]
        for marker in markers[i + 1 :]:
            wanted = LETTERS[len(chain)] if len(chain) < len(LETTERS) else None
            if marker[2] == wanted and marker[0] >= chain[-1][1]:
                chain.append(marker)
        key = (len(chain), all(m[3] for m in chain), first[0])
        if len(chain) >= 2 and key > best_key:
            best, best_key = chain, key
    if not best:
        return text.strip(), {}
    choices: dict[str, str] = {}
    for (_, end, letter, _), nxt in zip(best, [*best[1:], None], strict=True):
        if nxt is not None:  # inline choices may be separated by "," or ";"
            choices[letter] = " ".join(text[end : nxt[0]].split()).rstrip(",;").rstrip()
    last_end = best[-1][1]
    line_end = text.find("\n", last_end)
    line_end = len(text) if line_end < 0 else line_end
    choices[best[-1][2]] = " ".join(text[last_end:line_end].split())
    stem = _OPTIONS_LABEL.sub("", text[: best[0][0]].rstrip()).strip()
    trailing = text[line_end:].strip()
    return "\n".join(part for part in (stem, trailing) if part), choices


def _plain(text: str) -> str:
    return _TRAILING_PUNCT.sub("", " ".join(text.split())).casefold()


def answer_letter(raw: str, choices: Mapping[str, str]) -> str:
    """The letter of ``choices`` that the ground truth ``raw`` names.

    Accepts ``\\boxed{A}``, ``A``, ``a``, ``(A)``, ``A.``, ``A)``, ``A. red`` (whose text must
    be option A's) and the exact text of one option (case, spacing and final punctuation
    aside). Raises ``ValueError`` with the cause otherwise.
    """
    letters = ", ".join(choices)
    text = raw.strip()
    boxed = _BOXED.fullmatch(text)
    if boxed:
        text = boxed.group(1).strip()
    if not text:
        raise ValueError("the answer is empty")
    only = _LETTER_ONLY.fullmatch(text)
    if only and only.group(1).upper() in choices:
        return only.group(1).upper()
    with_text = _LETTER_AND_TEXT.fullmatch(text)
    if with_text:
        letter = with_text.group(1) or with_text.group(2)
        if letter not in choices:
            raise ValueError(f"answer {raw!r} names option {letter}, not one of {letters}")
        if _plain(with_text.group(3)) != _plain(choices[letter]):
            raise ValueError(
                f"answer {raw!r} names option {letter}, but option {letter} is "
                f"{choices[letter]!r}; fix the answer or the choice"
            )
        return letter
    same = [letter for letter, t in choices.items() if _plain(t) == _plain(text)]
    if len(same) == 1:
        return same[0]
    if same:
        raise ValueError(f"answer {raw!r} is the text of several options ({', '.join(same)})")
    raise ValueError(
        f"answer {raw!r} is not one of the choices {letters} (give a letter, e.g. 'A', "
        "or the exact text of one option)"
    )


# ---------------------------------------------------------------------------------------------
# Image values and paths


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
        return [_scalar(v) for v in value.tolist()]
    if isinstance(value, list | tuple):
        return [_scalar(v) for v in value]
    if isinstance(value, dict):
        return [value]
    raise ValueError(f"holds {_type_name(value)}, expected a path or a list of paths")


def _scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


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

    ``root`` is made absolute and resolved here. Raises ``ValueError`` with the cause for a
    path that is absolute, leaves the root through ``..``, or resolves outside it through a
    symbolic link.
    """
    if "\x00" in value:
        raise ValueError("the path contains a NUL character")
    if "://" in value:
        raise ValueError("URLs are not supported; download the images and give relative paths")
    if PurePosixPath(value).is_absolute() or PureWindowsPath(value).is_absolute():
        raise ValueError("absolute paths are refused; write it relative to the dataset root")
    base = Path(os.path.abspath(root))
    real_base = Path(os.path.realpath(base))
    joined = Path(os.path.normpath(base / value))
    if joined == base:
        raise ValueError("names the dataset root itself, not an image file")
    if base not in joined.parents:
        raise ValueError("'..' leads outside the dataset root; refused")
    real = Path(os.path.realpath(joined))
    if real_base not in real.parents:
        raise ValueError(
            f"resolves through a symbolic link to {display_name(real)}, outside the dataset "
            "root; refused (links are followed only when they stay inside the root)"
        )
    return real


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


# ---------------------------------------------------------------------------------------------
# Reading the file


@dataclass(frozen=True)
class _Image:
    """One image of a row: a file to check (``check``) or one already decoded and verified."""

    key: str
    path: Path
    check: bool
    column: str


@dataclass(frozen=True)
class _ImageRef:
    """A VLMEvalKit image cell naming the ``index`` of the row that holds the image."""

    index: str


@dataclass
class _Pending:
    """A row whose images are to be checked; ``fields`` is ``None`` when the rest of the row
    is already known to be bad (its images are still checked, to report every problem)."""

    row: int
    qid: str | None
    fields: dict[str, Any] | None
    images: list[_Image | _ImageRef]


class _FileProblem(Exception):
    """A problem of the whole file; raised as ``QuestionSetError`` by ``load_questions``."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(map(str, problems)))
        self.problems = problems


class _RowProblem(Exception):
    def __init__(self, column: str | None, cause: str) -> None:
        super().__init__(cause)
        self.column = column
        self.cause = cause


def _type_name(value: Any) -> str:
    text = repr(value)
    text = text if len(text) <= _SHORT_VALUE else text[:_SHORT_VALUE] + "..."
    return f"{type(value).__name__} {text}"


def _open_parquet(path: Path) -> tuple[list[str], dict[str, Any], _Rows]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        schema = pf.schema_arrow
    except (pa.ArrowException, OSError) as exc:
        if isinstance(exc, PermissionError):
            raise
        raise _FileProblem(
            [Problem(None, None, None, f"not a readable parquet file ({exc})")]
        ) from None
    types = {name: schema.field(name).type for name in schema.names}

    def rows() -> _Rows:
        try:
            for batch in pf.iter_batches(batch_size=PARQUET_BATCH_ROWS):
                yield from batch.to_pylist()
        except (pa.ArrowException, OSError) as exc:
            raise _FileProblem(
                [Problem(None, None, None, f"parquet file is damaged ({exc})")]
            ) from None

    return list(schema.names), types, rows()


def _open_tsv(path: Path) -> tuple[list[str], dict[str, Any], _Rows]:
    csv.field_size_limit(max(csv.field_size_limit(), TSV_FIELD_LIMIT))

    def bad(exc: Exception) -> _FileProblem:
        if isinstance(exc, UnicodeDecodeError):
            cause = f"not UTF-8 text ({exc.reason} at byte {exc.start})"
        else:
            cause = f"not a readable TSV file ({exc})"
        return _FileProblem([Problem(None, None, None, cause)])

    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            names = next(csv.reader(f, delimiter="\t"), [])
    except (UnicodeDecodeError, csv.Error) as exc:
        raise bad(exc) from None

    def rows() -> _Rows:
        with path.open(encoding="utf-8-sig", newline="") as f:
            try:
                for raw in csv.DictReader(f, delimiter="\t"):
                    yield {
                        k: None if v is None or v in _TSV_NULLS else v
                        for k, v in raw.items()
                        if isinstance(k, str)  # cells past the header (key None) are dropped
                    }
            except (UnicodeDecodeError, csv.Error) as exc:
                raise bad(exc) from None

    return names, {}, rows()


def _is_text_type(t: Any) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        return _is_text_type(t.value_type)
    return bool(
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or getattr(pa.types, "is_string_view", lambda _t: False)(t)
        or pa.types.is_null(t)
    )


def _is_image_type(t: Any, layout: str) -> bool:
    import pyarrow as pa

    if _is_text_type(t):
        return True
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return _is_image_type(t.value_type, layout)
    if pa.types.is_struct(t) and layout == SEED_LAYOUT:
        return t.get_field_index("bytes") >= 0 or t.get_field_index("path") >= 0
    return False


def _check_types(columns: Sequence[str], types: Mapping[str, Any], layout: str) -> list[Problem]:
    import pyarrow as pa

    problems = []
    for name in columns:
        t = types.get(name)
        if t is None:
            continue
        if name in ("qid", "index"):
            ok = _is_text_type(t) or pa.types.is_integer(t)
            expected = "text or integer"
        elif name in ("image", "image_path"):
            ok = _is_image_type(t, layout)
            expected = "text or a list of text" + (
                " (or image structs with bytes/path)" if layout == SEED_LAYOUT else ""
            )
        elif name in _text_columns(layout):
            ok, expected = _is_text_type(t), "text"
        else:
            continue
        if not ok:
            problems.append(Problem(None, None, name, f"has type {t}; expected {expected}"))
    return problems


def _text_columns(layout: str) -> tuple[str, ...]:
    common = ("question", "answer", "category", "source", "hint")
    return (*common, "l2-category", *LETTERS) if layout == VLMEVAL_LAYOUT else common


def _text(values: Mapping[str, Any], column: str, *, integer_ok: bool = False) -> str | None:
    """The cell as text, ``None`` when null or empty; raises ``_RowProblem`` for other types."""
    value = _scalar(values.get(column))
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str):
        return value if value.strip() else None
    if integer_ok and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise _RowProblem(column, f"holds {_type_name(value)}, expected text")


def _layout(path: Path, columns: Sequence[str]) -> str:
    if "qid" in columns:
        return SEED_LAYOUT
    if "index" in columns:
        return VLMEVAL_LAYOUT
    return VLMEVAL_LAYOUT if path.suffix.lower() in TSV_SUFFIXES else SEED_LAYOUT


class _Reader:
    """Turns rows into pending questions, collecting every row problem."""

    def __init__(self, root: Path, layout: str, columns: Sequence[str], work_dir: Path | None):
        self.root = root
        self.layout = layout
        self.columns = set(columns)
        self.option_columns = [c for c in LETTERS if c in self.columns]
        self.work_dir = work_dir
        self.problems: list[Problem] = []
        self.embedded_count = 0
        #: Each row's own images by id, for VLMEvalKit cells that name another row's index.
        self.images_by_id: dict[str, list[_Image]] = {}

    def row(self, row: int, values: Mapping[str, Any]) -> _Pending | None:
        problems: list[Problem] = []
        id_column = "qid" if self.layout == SEED_LAYOUT else "index"
        try:
            qid = _text(values, id_column, integer_ok=True)
        except _RowProblem as exc:
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
            except _RowProblem as exc:
                problems.append(Problem(row, qid, exc.column, exc.cause))
                return None

        fields = attempt(self._fields, values)
        images = attempt(self._images, values)
        if qid is not None and images and all(isinstance(i, _Image) for i in images):
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
        question = _text(values, "question")
        if question is None:
            raise _RowProblem("question", "the question is empty")
        choices: dict[str, str] = {}
        column = "question"
        if self.option_columns:
            for letter in self.option_columns:
                text = _text(values, letter)
                if text is not None:
                    choices[letter] = text.strip()
            column = "/".join(self.option_columns)
        stem = question.strip()
        if not choices:
            stem, choices = parse_choices(question)
            if len(choices) < 2:
                where = f"option columns {column} are empty and " if self.option_columns else ""
                raise _RowProblem(
                    "question",
                    f"no choices found: {where}the question text lists none (write them as "
                    "lines 'A. red' / '(B) blue' / 'C) green', or inline 'A. red B. blue')",
                )
        elif len(choices) < 2:
            raise _RowProblem(column, f"only one option ({', '.join(choices)}) is filled")
        raw = _text(values, "answer")
        if raw is None:
            raise _RowProblem("answer", "the answer is empty")
        try:
            letter = answer_letter(raw, choices)
        except ValueError as exc:
            raise _RowProblem("answer", str(exc)) from None
        return {
            "question": stem,
            "choices": choices,
            "answer": letter,
            "raw_answer": raw,
            "category": _stripped(_text(values, "category")),
            "source": _stripped(_text(values, "source")),
            "hint": _stripped(_text(values, "hint")),
            "l2_category": _stripped(_text(values, "l2-category")),
        }

    def _images(self, values: Mapping[str, Any]) -> list[_Image | _ImageRef]:
        if self.layout == VLMEVAL_LAYOUT and values.get("image") is not None:
            return self._base64_images(values["image"])
        column = "image" if self.layout == SEED_LAYOUT else "image_path"
        try:
            entries = image_values(values.get(column))
        except ValueError as exc:
            raise _RowProblem(column, str(exc)) from None
        out: list[_Image | _ImageRef] = []
        for i, entry in enumerate(entries, start=1):
            label = f"image {i}" if len(entries) > 1 else "the image"
            if isinstance(entry, dict) and self.layout == SEED_LAYOUT:
                out.append(self._struct_image(column, label, entry))
                continue
            text = _scalar(entry)
            if not isinstance(text, str):
                raise _RowProblem(column, f"{label} holds {_type_name(text)}, expected a path")
            if not text.strip():
                raise _RowProblem(column, f"{label} is an empty path")
            try:
                out.append(_Image(text, resolve_in_root(self.root, text), True, column))
            except ValueError as exc:
                raise _RowProblem(column, f"image path {text!r}: {exc}") from None
        return out

    def _struct_image(self, column: str, label: str, entry: Mapping[str, Any]) -> _Image:
        data, name = entry.get("bytes"), entry.get("path")
        if isinstance(data, bytes | bytearray) and data:
            return self._store(column, label, bytes(data), name if isinstance(name, str) else None)
        if isinstance(name, str) and name.strip():
            try:
                return _Image(name, resolve_in_root(self.root, name), True, column)
            except ValueError as exc:
                raise _RowProblem(column, f"image path {name!r}: {exc}") from None
        raise _RowProblem(column, f"{label} has neither bytes nor a path")

    def _base64_images(self, value: Any) -> list[_Image | _ImageRef]:
        if not isinstance(value, str):
            try:
                entries = image_values(value)
            except ValueError as exc:
                raise _RowProblem("image", str(exc)) from None
        else:
            text = value.strip()
            if len(text) <= IMAGE_REF_MAX_CHARS and not text.startswith("["):
                return [_ImageRef(text)]
            try:
                entries = _text_list(text) if text.startswith("[") else [text]
            except ValueError as exc:
                raise _RowProblem("image", str(exc)) from None
        out: list[_Image | _ImageRef] = []
        for i, entry in enumerate(entries, start=1):
            label = f"image {i}" if len(entries) > 1 else "the image"
            if not isinstance(entry, str) or not entry.strip():
                raise _RowProblem("image", f"{label} is not a base64 string")
            compact = "".join(entry.split())
            try:
                data = base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
            except (binascii.Error, ValueError):
                raise _RowProblem("image", f"{label} is not valid base64") from None
            out.append(self._store("image", label, data, None))
        return out

    def _store(self, column: str, label: str, data: bytes, name: str | None) -> _Image:
        """Verify embedded image bytes and write them (once) to the work folder."""
        if self.work_dir is None:
            raise _FileProblem(
                [
                    Problem(
                        None,
                        None,
                        column,
                        "holds embedded images; give a work folder (work_dir) to decode them into",
                    )
                ]
            )
        fmt, cause = _inspect_image(io.BytesIO(data), DEFAULT_MAX_PIXELS)
        if cause is not None:
            raise _RowProblem(column, f"{label}: {cause}")
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
        return _Image(target.name, target, False, column)


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
    except _FileProblem as exc:
        raise QuestionSetError(_file_report(source, exc.problems), exc.problems) from None
    except PermissionError:
        problem = Problem(None, None, None, "permission denied (cannot read the file)")
        raise QuestionSetError(_file_report(source, [problem]), [problem]) from None


def _load(source: Path, root: Path, skip_invalid: bool, work_dir: Path | None) -> QuestionSet:
    suffix = source.suffix.lower()
    if not source.is_file():
        raise _FileProblem([Problem(None, None, None, "no such file")])
    if suffix not in PARQUET_SUFFIXES | TSV_SUFFIXES:
        known = ", ".join(sorted(PARQUET_SUFFIXES | TSV_SUFFIXES))
        raise _FileProblem([Problem(None, None, None, f"unknown format {suffix!r} ({known})")])
    if not root.is_dir():
        raise _FileProblem([Problem(None, None, None, f"dataset root {root} is not a folder")])
    opener = _open_parquet if suffix in PARQUET_SUFFIXES else _open_tsv
    columns, types, rows = opener(source)
    layout = _layout(source, columns)
    file_problems = _check_columns(columns, layout) + _check_types(columns, types, layout)
    if file_problems:
        rows.close()
        raise _FileProblem(file_problems)

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
        raise _FileProblem([Problem(None, None, None, "the file has no rows")])
    problems = reader.problems
    problems += _duplicates(qid_rows, "qid" if layout == SEED_LAYOUT else "index")
    pending = _resolve_refs(pending, problems, reader.images_by_id)
    pending = _check_images(pending, problems)
    bad_rows = {p.row for p in problems}
    questions = [_question(p) for p in pending if p.row not in bad_rows and p.fields is not None]
    problems.sort(key=lambda p: (p.row or 0, str(p.column)))

    if problems and not skip_invalid:
        raise QuestionSetError(_row_report(source, problems, total, len(questions)), problems)
    if not questions:
        raise QuestionSetError(_row_report(source, problems, total, 0, suggest=False), problems)
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
        reader.embedded_count,
    )
    return QuestionSet(questions, problems, source, dataset_root=root, layout=layout)


def _check_columns(columns: Sequence[str], layout: str) -> list[Problem]:
    missing = [c for c in REQUIRED_COLUMNS[layout] if c not in columns]
    if layout == VLMEVAL_LAYOUT and "image" not in columns and "image_path" not in columns:
        missing.append("image or image_path")
    if not missing:
        return []
    found = ", ".join(columns) or "none"
    kind = "seed layout" if layout == SEED_LAYOUT else "VLMEvalKit layout"
    return [
        Problem(
            None,
            None,
            None,
            f"missing required columns for the {kind}: {', '.join(missing)} "
            f"(columns found: {found})",
        )
    ]


def _qid_of(values: Mapping[str, Any], layout: str) -> str | None:
    try:
        qid = _text(values, "qid" if layout == SEED_LAYOUT else "index", integer_ok=True)
    except _RowProblem:
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
    pending: list[_Pending], problems: list[Problem], by_id: Mapping[str, list[_Image]]
) -> list[_Pending]:
    """Replace VLMEvalKit image references by the images of the rows they name."""
    kept = []
    for p in pending:
        images: list[_Image | _ImageRef] = []
        for image in p.images:
            if isinstance(image, _Image):
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
    paths = sorted({i.path for p in pending for i in p.images if isinstance(i, _Image) and i.check})
    causes: dict[Path, str | None] = {}
    if paths:
        workers = min(IMAGE_CHECK_WORKERS, len(paths))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="qa-check") as pool:
            causes = dict(zip(paths, pool.map(check_image, paths), strict=True))
    kept = []
    for p in pending:
        bad = False
        for image in p.images:
            cause = causes.get(image.path) if isinstance(image, _Image) and image.check else None
            if cause is not None:
                assert isinstance(image, _Image)
                problems.append(
                    Problem(p.row, p.qid, image.column, f"image {image.key!r}: {cause}")
                )
                bad = True
        if not bad:
            kept.append(p)
    return kept


def _question(p: _Pending) -> Question:
    images = [i for i in p.images if isinstance(i, _Image)]
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


# ---------------------------------------------------------------------------------------------
# Reports


def format_problems(problems: Sequence[Problem], limit: int = REPORT_MAX_LINES) -> str:
    """The problems one per indented line, at most ``limit`` of them, then a count of the rest."""
    lines = [f"  {p}" for p in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"  ... and {len(problems) - limit} more problems")
    return "\n".join(lines)


def _file_report(source: Path, problems: Sequence[Problem]) -> str:
    return f"{display_name(source)}: cannot be used as a question set:\n{format_problems(problems)}"


def _row_report(
    source: Path, problems: Sequence[Problem], total: int, valid: int, *, suggest: bool = True
) -> str:
    rows = len({p.row for p in problems})
    head = (
        f"{display_name(source)}: {len(problems)} problem{'s' * (len(problems) != 1)} in "
        f"{rows} of {total} rows:"
    )
    if suggest:
        tail = (
            f"Fix these rows, or pass --skip-invalid to leave them out and go on with the "
            f"{valid} valid question{'s' * (valid != 1)}."
        )
    else:
        tail = "No question is usable; nothing to run."
    return f"{head}\n{format_problems(problems)}\n{tail}"
