"""The files a question set comes in: reading their rows, and checking their columns.

Two layouts are read, from parquet (with pyarrow) or TSV (with the ``csv`` module):

* **The seed layout**: columns ``qid``, ``question``, ``answer``, ``image`` and optionally
  ``category``, ``source``, ``hint``. The choices are in the question text
  (``vlmcap.qa.question_text``).
* **VLMEvalKit's multiple-choice TSV**: columns ``index``, ``question``, option columns
  ``A`` .. ``J`` (an empty or ``nan`` cell is an absent option), ``answer``, ``category`` and
  optionally ``l2-category``, ``hint``, ``source``, and the images in ``image`` or
  ``image_path`` (what those cells may hold: ``vlmcap.qa.question_images``).

The layout follows the columns (``qid`` -> seed, ``index`` -> VLMEvalKit), else the suffix
(``.parquet`` -> seed, ``.tsv`` -> VLMEvalKit). Before any row is read, the required columns
of the layout and, in parquet, the type of each known column are checked, so that a file of
the wrong shape is refused with every column at fault named at once.

Both readers yield rows as dicts of column -> value, ``None`` for a null cell (in TSV an empty
or ``nan`` cell, as pandas writes NaN), and read the file lazily: a large set with embedded
images is never held whole in memory.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Generator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vlmcap.qa.choices import LETTERS

SEED_LAYOUT = "seed"
VLMEVAL_LAYOUT = "vlmeval"
PARQUET_SUFFIXES = frozenset({".parquet", ".pq"})
TSV_SUFFIXES = frozenset({".tsv"})
#: Required columns of each layout (VLMEvalKit's also needs ``image`` or ``image_path``).
REQUIRED_COLUMNS = {
    SEED_LAYOUT: ("qid", "question", "answer", "image"),
    VLMEVAL_LAYOUT: ("index", "question", "answer"),
}
#: Rows per parquet batch read.
PARQUET_BATCH_ROWS = 512
#: Largest TSV cell accepted (base64 images are far above the ``csv`` default of 128 KiB).
TSV_FIELD_LIMIT = 1 << 30
#: Cells meaning "no value" in a TSV (pandas writes NaN as an empty cell or ``nan``).
_TSV_NULLS = frozenset({"", "nan", "NaN"})
_SHORT_VALUE = 60  # characters of a bad value quoted in a message

Rows = Generator[dict[str, Any], None, None]
#: A problem of the whole file: the column at fault (``None`` for none in particular), the cause.
FileFault = tuple[str | None, str]


class FileProblem(Exception):
    """Problems of the whole file; ``load_questions`` raises them as ``QuestionSetError``."""

    def __init__(self, faults: Sequence[FileFault]) -> None:
        self.faults = list(faults)
        super().__init__("; ".join(cause for _, cause in self.faults))


class CellProblem(Exception):
    """A cell of a row that cannot be used: the column and the cause."""

    def __init__(self, column: str | None, cause: str) -> None:
        super().__init__(cause)
        self.column = column
        self.cause = cause


def scalar(value: Any) -> Any:
    """``value`` as a plain Python value (numpy scalars, as pyarrow may give, unwrapped)."""
    return value.item() if isinstance(value, np.generic) else value


def type_name(value: Any) -> str:
    """The type of a bad value and the start of its ``repr``, for a message."""
    text = repr(value)
    text = text if len(text) <= _SHORT_VALUE else text[:_SHORT_VALUE] + "..."
    return f"{type(value).__name__} {text}"


def cell_text(values: Mapping[str, Any], column: str, *, integer_ok: bool = False) -> str | None:
    """The cell as text, ``None`` when null or empty; raises ``CellProblem`` for other types."""
    value = scalar(values.get(column))
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str):
        return value if value.strip() else None
    if integer_ok and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise CellProblem(column, f"holds {type_name(value)}, expected text")


def open_parquet(path: Path) -> tuple[list[str], dict[str, Any], Rows]:
    """The columns of the parquet file at ``path``, their arrow types, and its rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        schema = pf.schema_arrow
    except (pa.ArrowException, OSError) as exc:
        if isinstance(exc, PermissionError):
            raise
        raise FileProblem([(None, f"not a readable parquet file ({exc})")]) from None
    types = {name: schema.field(name).type for name in schema.names}

    def rows() -> Rows:
        try:
            for batch in pf.iter_batches(batch_size=PARQUET_BATCH_ROWS):
                yield from batch.to_pylist()
        except (pa.ArrowException, OSError) as exc:
            raise FileProblem([(None, f"parquet file is damaged ({exc})")]) from None

    return list(schema.names), types, rows()


def open_tsv(path: Path) -> tuple[list[str], dict[str, Any], Rows]:
    """The columns of the TSV file at ``path``, no types (TSV has none), and its rows."""
    csv.field_size_limit(max(csv.field_size_limit(), TSV_FIELD_LIMIT))

    def bad(exc: Exception) -> FileProblem:
        if isinstance(exc, UnicodeDecodeError):
            cause = f"not UTF-8 text ({exc.reason} at byte {exc.start})"
        else:
            cause = f"not a readable TSV file ({exc})"
        return FileProblem([(None, cause)])

    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            names = next(csv.reader(f, delimiter="\t"), [])
    except (UnicodeDecodeError, csv.Error) as exc:
        raise bad(exc) from None

    def rows() -> Rows:
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


def detect_layout(path: Path, columns: Sequence[str]) -> str:
    """The layout of the file at ``path`` with these ``columns`` (see the module docstring)."""
    if "qid" in columns:
        return SEED_LAYOUT
    if "index" in columns:
        return VLMEVAL_LAYOUT
    return VLMEVAL_LAYOUT if path.suffix.lower() in TSV_SUFFIXES else SEED_LAYOUT


def check_columns(columns: Sequence[str], layout: str) -> list[FileFault]:
    """The required columns of ``layout`` that the file lacks, as one fault (or none)."""
    missing = [c for c in REQUIRED_COLUMNS[layout] if c not in columns]
    if layout == VLMEVAL_LAYOUT and "image" not in columns and "image_path" not in columns:
        missing.append("image or image_path")
    if not missing:
        return []
    found = ", ".join(columns) or "none"
    kind = "seed layout" if layout == SEED_LAYOUT else "VLMEvalKit layout"
    return [
        (
            None,
            f"missing required columns for the {kind}: {', '.join(missing)} "
            f"(columns found: {found})",
        )
    ]


def check_types(columns: Sequence[str], types: Mapping[str, Any], layout: str) -> list[FileFault]:
    """Each known column whose arrow type cannot hold what the layout puts there."""
    import pyarrow as pa

    faults: list[FileFault] = []
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
            faults.append((name, f"has type {t}; expected {expected}"))
    return faults


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


def _text_columns(layout: str) -> tuple[str, ...]:
    common = ("question", "answer", "category", "source", "hint")
    return (*common, "l2-category", *LETTERS) if layout == VLMEVAL_LAYOUT else common
