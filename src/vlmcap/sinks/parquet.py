"""Parquet copy of the caption records, with one fixed schema.

The parquet file is derived from the records JSONL (the source of truth): it holds the final
state, one row per key (the last JSONL row of each key), sorted by key, and is rewritten whole
and atomically (temp + rename). Every column has a fixed type and is nullable, so an empty file
and a full one have the same schema and readers never have to guess. Row fields the schema does
not name, and values of the wrong type, are kept as JSON in the ``extra`` column.

pyarrow is imported only when a parquet file is written.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from vlmcap.sinks.files import atomic_path
from vlmcap.sinks.resume import ReadStats, Row, iter_rows

logger = logging.getLogger(__name__)

ColumnKind = Literal["string", "float", "int", "bool"]

#: The parquet columns, in order. ``extra`` (JSON text) comes last and holds everything else.
COLUMNS: tuple[tuple[str, ColumnKind], ...] = (
    ("key", "string"),
    ("path", "string"),
    ("window_start", "float"),
    ("window_end", "float"),
    ("status", "string"),
    ("caption", "string"),
    ("error", "string"),
    ("model", "string"),
    ("prompt_style", "string"),
    ("kind", "string"),
    ("request_id", "string"),
    ("prompt", "string"),
    ("stage1_caption", "string"),
    ("stage2_prompt", "string"),
    ("finish_reason", "string"),
    ("stage1_finish_reason", "string"),
    ("truncated", "bool"),
    ("prompt_tokens", "int"),
    ("output_tokens", "int"),
    ("queued_at", "float"),
    ("first_token_at", "float"),
    ("finished_at", "float"),
    ("latency_s", "float"),
    ("ttft_s", "float"),
    ("duration", "float"),
    ("frames", "int"),
)
EXTRA_COLUMN = "extra"

_MISMATCH = object()


def record_schema() -> Any:
    """The ``pyarrow.Schema`` of records parquet files."""
    import pyarrow as pa

    types = {"string": pa.string(), "float": pa.float64(), "int": pa.int64(), "bool": pa.bool_()}
    fields = [pa.field(name, types[kind], nullable=True) for name, kind in COLUMNS]
    fields.append(pa.field(EXTRA_COLUMN, pa.string(), nullable=True))
    return pa.schema(fields)


def _coerce(value: Any, kind: ColumnKind) -> Any:
    """``value`` as a ``kind`` column value, ``None`` for null, ``_MISMATCH`` if it does not fit."""
    if value is None:
        return None
    if kind == "string":
        return value if isinstance(value, str) else _MISMATCH
    if kind == "bool":
        return value if isinstance(value, bool) else _MISMATCH
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _MISMATCH
    if kind == "float":
        return float(value)
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else _MISMATCH
    return value


def rows_to_columns(rows: Iterable[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """Column lists in schema order (``extra`` included) for ``rows``."""
    names = [name for name, _ in COLUMNS]
    columns: dict[str, list[Any]] = {name: [] for name in [*names, EXTRA_COLUMN]}
    for row in rows:
        extra: dict[str, Any] = {k: v for k, v in row.items() if k not in columns}
        for name, kind in COLUMNS:
            value = _coerce(row.get(name), kind)
            if value is _MISMATCH:
                extra[name] = row[name]
                value = None
            columns[name].append(value)
        columns[EXTRA_COLUMN].append(
            json.dumps(extra, ensure_ascii=False, sort_keys=True) if extra else None
        )
    return columns


def write_parquet(rows: Iterable[Mapping[str, Any]], path: Path) -> int:
    """Write ``rows`` to ``path`` atomically with :func:`record_schema`; returns the row count."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = rows_to_columns(rows)
    table = pa.Table.from_pydict(columns, schema=record_schema())
    with atomic_path(path) as tmp:
        pq.write_table(table, str(tmp))
    logger.debug("wrote %d record(s) to %s", table.num_rows, path)
    return int(table.num_rows)


def final_rows_for(jsonl: Path, *, model: str | None = None, style: str | None = None) -> list[Row]:
    """Last row per key of ``jsonl`` (only ``model``/``style``'s rows when given), by key."""
    latest: dict[str, Row] = {}
    for row in iter_rows(jsonl, ReadStats()):
        if model is not None and row.get("model", model) != model:
            continue
        if style is not None and row.get("prompt_style", style) != style:
            continue
        latest[row["key"]] = row
    return [latest[key] for key in sorted(latest)]


def write_parquet_from_jsonl(
    jsonl: Path, path: Path, *, model: str | None = None, style: str | None = None
) -> int:
    """Rewrite ``path`` from the final state of ``jsonl``; returns the row count."""
    return write_parquet(final_rows_for(jsonl, model=model, style=style), path)
