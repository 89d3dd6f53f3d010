"""Question sets over the synthetic world, in the seed parquet format ``vlmcap qa`` reads.

    python -m vlmcap.tiny.qa_set OUT_DIR [--images 60] [--pairs 20] [--seed 7]

writes ``OUT_DIR/images/*.png``, ``OUT_DIR/pairs/*.png`` and ``OUT_DIR/questions.parquet``
(``qid``, ``question`` with its lettered choices, ``answer`` as ``\\boxed{X}``, ``image`` as a
list of paths relative to ``OUT_DIR``, ``category``, ``source``). One question per image
(colour, shape or count) and two per pair of images (which image shows X; what is in picture
N), made by ``vlmcap.tiny.questions``, so the trained tiny model's own evaluation and
``vlmcap qa`` ask exactly the same questions.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vlmcap.tiny.questions import (
    CATEGORIES,
    make_pair_question,
    make_picture_question,
    make_question,
    random_pair,
)
from vlmcap.tiny.synthetic import SceneSpec, make_dataset, write_image

#: ``source`` of the generated questions.
SOURCE = "tiny-synthetic"
QUESTIONS_NAME = "questions.parquet"
DEFAULT_SEED = 7


def _row(qid: str, q: dict[str, Any], images: list[str]) -> dict[str, Any]:
    lines = [q["question"], *(f"{k}. {o}" for k, o in zip("ABCD", q["options"], strict=False))]
    return {
        "qid": qid,
        "question": "\n".join(lines),
        "answer": f"\\boxed{{{q['answer']}}}",
        "image": images,
        "category": q["category"],
        "source": SOURCE,
    }


def scene_questions(
    images: Sequence[tuple[str, SceneSpec]],
    pairs: Sequence[tuple[str, SceneSpec, str, SceneSpec]],
    rng: random.Random,
) -> list[dict[str, Any]]:
    """Question rows about scenes already written: one per image (colour, shape or count),
    two per pair of images (which image shows X; what is in picture N)."""
    rows: list[dict[str, Any]] = []
    for rel, spec in images:
        rows.append(_row(f"img{len(rows):04d}", make_question(spec, rng, CATEGORIES[:3]), [rel]))
    for i, (rel1, first, rel2, second) in enumerate(pairs):
        paths = [rel1, rel2]
        rows.append(_row(f"pair{i:04d}-which", make_pair_question(first, second, rng), paths))
        rows.append(_row(f"pair{i:04d}-picture", make_picture_question(first, second, rng), paths))
    return rows


def question_rows(
    root: Path, *, n_images: int, n_pairs: int, seed: int = DEFAULT_SEED
) -> list[dict[str, Any]]:
    """Write fresh images under ``root``; the question rows (image paths relative to it)."""
    rng = random.Random(seed)
    images = [
        (entry["path"], SceneSpec.from_dict(entry))
        for entry in make_dataset(root, n_images=n_images, n_videos=0, seed=seed)
    ]
    pairs = []
    for i in range(n_pairs):
        first, second = random_pair(rng)
        rel1, rel2 = f"pairs/pair_{i:04d}_0.png", f"pairs/pair_{i:04d}_1.png"
        write_image(root / rel1, first)
        write_image(root / rel2, second)
        pairs.append((rel1, first, rel2, second))
    return scene_questions(images, pairs, rng)


def write_rows(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Question rows as a seed-format parquet file (``image``: a list of paths)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("qid", pa.string()),
            ("question", pa.string()),
            ("answer", pa.string()),
            ("image", pa.list_(pa.string())),
            ("category", pa.string()),
            ("source", pa.string()),
        ]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(list(rows), schema=schema), str(path))
    return path


def write_question_set(
    root: Path | str, *, n_images: int = 60, n_pairs: int = 20, seed: int = DEFAULT_SEED
) -> Path:
    """Write a question set under ``root``; the path of its parquet file."""
    root = Path(root)
    rows = question_rows(root, n_images=n_images, n_pairs=n_pairs, seed=seed)
    return write_rows(rows, root / QUESTIONS_NAME)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--images", type=int, default=60, help="questions on single images")
    parser.add_argument("--pairs", type=int, default=20, help="image pairs (2 questions each)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    path = write_question_set(
        args.out_dir, n_images=args.images, n_pairs=args.pairs, seed=args.seed
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
