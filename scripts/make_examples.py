"""Regenerate the demo media in ``examples/`` from the synthetic shapes world.

Every file is named after its ground truth, so a caption can be checked by eye, and the scenes
are fixed (spec and seed), so rerunning gives the same bytes. The whole folder stays far below
300 KB: small frames, plain or block-noise backgrounds, a few seconds at 8 fps.

    python scripts/make_examples.py [--out examples]
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from vlmcap.tiny.qa_set import scene_questions, write_rows
from vlmcap.tiny.synthetic import SceneSpec, write_image, write_video

IMAGE_SIZE = (224, 224)
VIDEO_SIZE = (160, 120)
SECONDS, FPS = 3.0, 8
#: The bundled question set: questions over the example images (paths relative to examples/).
QUESTIONS = "qa_questions.parquet"
QUESTIONS_SEED = 5

IMAGES = (
    (SceneSpec("red", "circle", size=56, seed=1), "png"),
    (SceneSpec("green", "triangle", count=2, size=48, seed=2), "png"),
    (SceneSpec("yellow", "star", background="noise", size=64, seed=3), "jpg"),
)
VIDEOS = (
    SceneSpec("blue", "square", direction="right", size=48, seed=4),
    SceneSpec("orange", "cross", direction="up", background="noise", size=44, seed=5),
)


def slug(spec: SceneSpec) -> str:
    """``a blue square moving right`` -> ``blue_square_moving_right``."""
    words = spec.description().split()
    return "_".join(words[1:] if words[0] in ("a", "an") else words)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default = Path(__file__).resolve().parents[1] / "examples"
    parser.add_argument("--out", type=Path, default=default, help="folder to write (examples/)")
    out: Path = parser.parse_args().out
    rows: list[tuple[Path, str, str]] = []
    for spec, ext in IMAGES:
        path = write_image(out / "images" / f"{slug(spec)}.{ext}", spec, IMAGE_SIZE)
        rows.append((path, spec.description(), f"image {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]}"))
    for spec in VIDEOS:
        path = out / "videos" / f"{slug(spec)}.mp4"
        write_video(path, spec, SECONDS, FPS, size=VIDEO_SIZE)
        w, h, n = *VIDEO_SIZE, round(SECONDS * FPS)
        geometry = f"video {w}x{h}, {SECONDS:g} s, {FPS} fps, {n} frames"
        rows.append((path, spec.description(), geometry))

    images = [(f"images/{slug(spec)}.{ext}", spec) for spec, ext in IMAGES]
    pair = (*images[0], *images[2])  # red circle and yellow star: different colour and shape
    questions = scene_questions(images, [pair], random.Random(QUESTIONS_SEED))
    write_rows(questions, out / QUESTIONS)

    lines = [
        "# Example media",
        "",
        "Synthetic scenes from `vlmcap.tiny.synthetic`, each named after what it shows, for the",
        "demo and for trying vlmcap without data of your own. Regenerate them (same bytes) with",
        "`python scripts/make_examples.py`.",
        "",
        "| File | Ground truth | Media | Size |",
        "| --- | --- | --- | --- |",
    ]
    for path, truth, geometry in rows:
        rel = path.relative_to(out).as_posix()
        lines.append(f"| `{rel}` | {truth} | {geometry} | {path.stat().st_size / 1024:.1f} KB |")
    lines += [
        "",
        f"`{QUESTIONS}`: {len(questions)} multiple-choice questions over the images (one per "
        "image, two over the red circle and the yellow star shown together), for "
        "`vlmcap qa --questions examples/qa_questions.parquet`; `python -m vlmcap.tiny.qa_set "
        "DIR` writes bigger sets.",
    ]
    (out / "README.md").write_text("\n".join(lines) + "\n")
    for path, truth, _ in rows:
        print(f"{path.stat().st_size:>7} B  {path.relative_to(out)}  ({truth})")


if __name__ == "__main__":
    main()
