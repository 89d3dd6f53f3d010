"""Parquet copy of a task's rows, with the schema derived from its row type.

The parquet file is derived from the records JSONL (the source of truth): it holds the final
state, one row per key (the last JSONL row of each key), sorted by key, and is rewritten whole
and atomically (temp + rename). The columns are the row type's fields (``vlmcap.rows``), each
with a fixed type and nullable, so an empty file and a full one have the same schema and readers
never have to guess. Fields the row type does not know, and values of the wrong type, are kept
as JSON in the ``extra`` column.

pyarrow is imported only when a parquet file is written.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from vlmcap.rows import CaptionRow, Row, base_type, coerce, is_mismatch
from vlmcap.sinks.files import atomic_path
from vlmcap.sinks.resume import ReadStats, iter_rows

logger = logging.getLogger(__name__)

EXTRA_COLUMN = "extra"


def _arrow_type(kind: Any) -> Any:
    import pyarrow as pa

    kind = base_type(kind)
    simple = {str: pa.string(), float: pa.float64(), int: pa.int64(), bool: pa.bool_()}
    if kind in simple:
        return simple[kind]
    if getattr(kind, "__origin__", None) is list:
        return pa.list_(_arrow_type(kind.__args__[0]))
    raise TypeError(f"no parquet type for row field type {kind!r}")


def parquet_schema(row_type: type[Row] = CaptionRow) -> Any:
    """The ``pyarrow.Schema`` of ``row_type``'s parquet files (its fields, then ``extra``)."""
    import pyarrow as pa

    fields = [pa.field(name, _arrow_type(kind), nullable=True) for name, kind in row_type.columns()]
    fields.append(pa.field(EXTRA_COLUMN, pa.string(), nullable=True))
    return pa.schema(fields)


def rows_to_columns(
    rows: Iterable[Mapping[str, Any]], row_type: type[Row] = CaptionRow
) -> dict[str, list[Any]]:
    """Column lists in schema order (``extra`` included) for JSONL objects ``rows``."""
    names = [name for name, _ in row_type.columns()]
    columns: dict[str, list[Any]] = {name: [] for name in [*names, EXTRA_COLUMN]}
    for row in rows:
        extra: dict[str, Any] = {k: v for k, v in row.items() if k not in columns}
        for name, kind in row_type.columns():
            value = coerce(row.get(name), kind)
            if is_mismatch(value):
                extra[name] = row[name]
                value = None
            columns[name].append(value)
        columns[EXTRA_COLUMN].append(
            json.dumps(extra, ensure_ascii=False, sort_keys=True) if extra else None
        )
    return columns


def write_parquet(
    rows: Iterable[Mapping[str, Any]], path: Path, row_type: type[Row] = CaptionRow
) -> int:
    """Write ``rows`` to ``path`` atomically with ``row_type``'s schema; returns the row count."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = rows_to_columns(rows, row_type)
    table = pa.Table.from_pydict(columns, schema=parquet_schema(row_type))
    # The file is ours to close: on a failed write (a full disk) it is closed at once, not
    # whenever the writer that the error's traceback keeps alive is collected.
    with atomic_path(path) as tmp, pa.OSFile(str(tmp), "wb") as sink:
        pq.write_table(table, sink)
    logger.debug("wrote %d record(s) to %s", table.num_rows, path)
    return int(table.num_rows)


def final_rows_for(
    jsonl: Path, *, model: str | None = None, style: str | None = None
) -> list[dict[str, Any]]:
    """Last row per key of ``jsonl`` (only ``model``/``style``'s rows when given), by key."""
    latest: dict[str, dict[str, Any]] = {}
    for row in iter_rows(jsonl, ReadStats()):
        if model is not None and row.get("model", model) != model:
            continue
        if style is not None and row.get("prompt_style", style) != style:
            continue
        latest[row["key"]] = row
    return [latest[key] for key in sorted(latest)]


def write_parquet_from_jsonl(
    jsonl: Path,
    path: Path,
    *,
    model: str | None = None,
    style: str | None = None,
    row_type: type[Row] = CaptionRow,
) -> int:
    """Rewrite ``path`` from the final state of ``jsonl``; returns the row count."""
    return write_parquet(final_rows_for(jsonl, model=model, style=style), path, row_type)
