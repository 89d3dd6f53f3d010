"""Small question-set files for the dataset tests: Pillow-made PNGs, parquet and TSV tables."""

from __future__ import annotations

import base64
import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
IMAGE_SIZE = (12, 8)

SEED_SCHEMA = pa.schema(
    [
        ("qid", pa.string()),
        ("question", pa.string()),
        ("answer", pa.string()),
        ("image", pa.list_(pa.string())),
        ("category", pa.string()),
        ("source", pa.string()),
    ]
)


def png_bytes(color: tuple[int, int, int] = RED, size: tuple[int, int] = IMAGE_SIZE) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def png(path: Path, color: tuple[int, int, int] = RED) -> Path:
    """A small PNG at ``path`` (parents made)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(color))
    return path


def b64_png(color: tuple[int, int, int] = RED) -> str:
    return base64.b64encode(png_bytes(color)).decode("ascii")


def seed_row(qid: str, image: Any = "img/a.png", **fields: Any) -> dict[str, Any]:
    """A valid seed-layout row (answer A of red/blue/green) with ``fields`` replaced."""
    row: dict[str, Any] = {
        "qid": qid,
        "question": "What colour is the square?\nA. red\nB. blue\nC. green",
        "answer": "A",
        "image": image,
        "category": "colour",
        "source": "synthetic",
    }
    row.update(fields)
    return row


def write_parquet(
    path: Path, rows: Sequence[Mapping[str, Any]], schema: pa.Schema | None = None
) -> Path:
    """``rows`` as a parquet file; ``schema`` fixes the column types (else pyarrow infers)."""
    if schema is not None:
        table = pa.Table.from_pylist([dict(r) for r in rows], schema=schema)
    else:
        table = pa.Table.from_pylist([dict(r) for r in rows])
    pq.write_table(table, path)
    return path


def write_tsv(path: Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> Path:
    """``rows`` as a tab-separated file with ``columns`` (missing cells empty, as pandas writes
    NaN)."""
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), delimiter="\t")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in columns})
    return path
