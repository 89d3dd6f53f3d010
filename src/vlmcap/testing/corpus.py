"""A corpus of broken and hostile inputs, each with the outcome a job must give for it.

``write_corpus(root)`` writes one folder of media files (``root/media``), one manifest with bad
rows (``root/manifest``) and a set of QA question files each broken one way (``root/qa``), and
returns a ``Case`` per kind: what it is, where it is, and what vlmcap must make of it:

    ok        the item is captioned (a row with status ``ok``)
    failed    a ``failed`` row whose error names the item and contains ``cause``
    problem   found while listing the inputs: reported (naming it, with ``cause``), no row
    absent    not an input at all (hidden files, other extensions): no row, no problem
    invalid   a data file the loader refuses as a whole, with a message containing ``cause``

None of them may crash or hang the job. ``python -m vlmcap.testing.corpus OUT`` writes the
corpus for a manual try (``vlmcap caption OUT/media ...``) and prints the table of cases.
"""

from __future__ import annotations

import struct
import sys
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

Expect = Literal["ok", "failed", "problem", "absent", "invalid"]

#: Side of the ordinary test pictures and clip frames.
SIDE = 64
#: Frames per second of the test clips.
CLIP_FPS = 8
#: A PNG header claiming this many pixels a side (a decompression bomb: tiny file, huge image).
BOMB_SIDE = 20_000
#: Bytes overwritten in the middle of a "garbage in the middle" file, and their seed.
GARBAGE_BYTES = 256
GARBAGE_SEED = 7
#: Characters of the very long file name (most file systems allow 255 bytes).
LONG_NAME_CHARS = 200


@dataclass(frozen=True)
class Case:
    """One kind of bad input: where it is (relative to its area's folder) and what it gives."""

    kind: str
    area: Literal["media", "manifest", "qa"]
    name: str
    expect: Expect
    cause: str = ""


def _picture(
    path: Path, mode: str = "RGB", size: tuple[int, int] = (SIDE, SIDE), fmt: str | None = None
) -> Path:
    rng = np.random.default_rng(len(path.name))
    rgb = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    image = rgb.convert("L").convert("I;16") if mode == "I;16" else rgb.convert(mode)
    image.save(path, format=fmt)
    return path


def _clip(path: Path, frames: int = 2 * CLIP_FPS, size: tuple[int, int] = (SIDE, SIDE)) -> Path:
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(CLIP_FPS))
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(frames):
            pixels = np.full((size[1], size[0], 3), (40 * i) % 256, np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def _audio_only(path: Path) -> Path:
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=16000)
        for i in range(8):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = 16000, i * 1024
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def _bomb(path: Path) -> Path:
    """A PNG whose header says BOMB_SIDE x BOMB_SIDE grey pixels, in a few hundred kB."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", BOMB_SIDE, BOMB_SIDE, 8, 0, 0, 0, 0)
    row = b"\x00" + b"\x00" * BOMB_SIDE
    data = zlib.compress(row * 64, 9)  # a few rows are enough: the header is what is judged
    body = chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


def _damaged(path: Path, make: Callable[[Path], Path], how: str) -> Path:
    data = bytearray(make(path).read_bytes())
    if how == "truncate":
        data = data[: len(data) // 3]
    elif how == "garbage-middle":
        middle = len(data) // 2
        garbage = np.random.default_rng(GARBAGE_SEED).integers(0, 256, GARBAGE_BYTES, np.uint8)
        data[middle : middle + GARBAGE_BYTES] = garbage.tobytes()
    elif how == "header":
        data[: min(32, len(data))] = b"\xff" * min(32, len(data))
    path.write_bytes(bytes(data))
    return path


class _Cases(list[Case]):
    """The cases of one area, added as their files are written."""

    def __init__(self, area: Literal["media", "manifest", "qa"]) -> None:
        super().__init__()
        self.area = area

    def add(self, kind: str, name: str, expect: Expect, cause: str = "") -> None:
        self.append(Case(kind, self.area, name, expect, cause))


def _broken_files(m: Path, cases: _Cases) -> None:
    _picture(m / "good.png")
    cases.add("a plain picture (control)", "good.png", "ok")
    _clip(m / "good.mp4")
    cases.add("a plain clip (control)", "good.mp4", "ok")
    (m / "zero.png").write_bytes(b"")
    cases.add("zero-byte picture", "zero.png", "failed", "file is empty (0 bytes)")
    (m / "zero.mp4").write_bytes(b"")
    cases.add("zero-byte clip", "zero.mp4", "failed", "file is empty (0 bytes)")
    _damaged(m / "truncated.png", _picture, "truncate")
    cases.add("truncated PNG", "truncated.png", "failed", "damaged or truncated")
    _damaged(m / "truncated.mp4", _clip, "truncate")
    cases.add("truncated MP4 (index lost)", "truncated.mp4", "failed", "damaged or truncated")
    _damaged(m / "garbage.jpg", lambda p: _picture(p, fmt="JPEG"), "garbage-middle")
    cases.add("JPEG with garbage in the middle", "garbage.jpg", "failed", "damaged or truncated")
    _damaged(m / "badheader.png", _picture, "header")
    cases.add("PNG with a corrupt header", "badheader.png", "failed", "not a readable image")
    _damaged(m / "badheader.mp4", _clip, "header")
    cases.add("MP4 with a corrupt header", "badheader.mp4", "failed", "not a video file")
    (m / "notes.png").write_text("these are notes, not a picture\n")
    cases.add("text named .png", "notes.png", "failed", "not a readable image")
    (m / "notes.mp4").write_text("these are notes, not a clip\n")
    cases.add("text named .mp4", "notes.mp4", "failed", "not a video file")
    _picture(m / "really_png.jpg", fmt="PNG")
    cases.add("PNG data named .jpg", "really_png.jpg", "ok")
    _picture(m / "picture_as.mp4", fmt="PNG")
    cases.add("a picture named .mp4 (read as a one-frame clip)", "picture_as.mp4", "ok")
    _audio_only(m / "audio_only.mp4")
    cases.add("no video stream (audio only)", "audio_only.mp4", "failed", "no video stream")
    good = (m / "good.mp4").read_bytes()
    (m / "unknown_codec.mp4").write_bytes(good.replace(b"avc1", b"qqq1"))
    cases.add("unknown video codec", "unknown_codec.mp4", "failed", "unsupported video codec")
    _clip(m / "one_frame.mp4", frames=1)
    cases.add("a one-frame clip (frame repeated)", "one_frame.mp4", "ok")
    _bomb(m / "bomb.png")
    cases.add("decompression bomb PNG", "bomb.png", "failed", "image too large")


def _odd_pictures(m: Path, cases: _Cases) -> None:
    for mode, name in (
        ("CMYK", "cmyk.jpg"),
        ("I;16", "sixteen_bit.png"),
        ("P", "palette.png"),
        ("RGBA", "alpha.png"),
        ("LA", "grey_alpha.png"),
        ("1", "one_bit.png"),
        ("L", "grey.webp"),
    ):
        _picture(m / name, mode)
        cases.add(f"{mode} picture", name, "ok")
    _picture(m / "tiny.png", size=(1, 1))
    cases.add("a 1 x 1 picture", "tiny.png", "ok")
    _picture(m / "strip.png", size=(2000, 4))
    cases.add("a 500:1 strip", "strip.png", "failed", "aspect ratio")
    gif = [Image.new("RGB", (SIDE, SIDE), (40 * i, 0, 0)) for i in range(4)]
    gif[0].save(m / "animated.gif", save_all=True, append_images=gif[1:], duration=100)
    cases.add("animated GIF", "animated.gif", "ok")


def _odd_names(m: Path, cases: _Cases) -> None:
    _picture(m / "UPPER.PNG")
    cases.add("upper-case extension", "UPPER.PNG", "ok")
    for name in ("über_ñ.png", "日本語 画像.png", "emoji 🎞.png", "quote'\"name.png"):
        _picture(m / name)
        cases.add("unicode or quotes in the name", name, "ok")
    long_name = "x" * LONG_NAME_CHARS + ".png"
    _picture(m / long_name)
    cases.add("a 200-character file name", long_name, "ok")
    _picture(m / "new\nline.png")
    cases.add("a newline in the file name", "new\nline.png", "ok")
    _picture(m / ".hidden.png")
    cases.add("hidden file", ".hidden.png", "absent")
    (m / "readme.txt").write_text("not media\n")
    cases.add("other extension", "readme.txt", "absent")
    (m / "folder.mp4").mkdir()
    cases.add("a folder named like a clip", "folder.mp4", "absent")


def _links(m: Path, cases: _Cases) -> None:
    (m / "loop").mkdir()
    (m / "loop" / "back").symlink_to(m)
    cases.add("symbolic link loop", "loop/back", "problem", "symbolic link loop")
    (m / "broken.png").symlink_to(m / "missing.png")
    cases.add("broken symbolic link", "broken.png", "problem", "broken symbolic link")
    outside = m.parent / "outside"
    outside.mkdir(exist_ok=True)
    _picture(outside / "elsewhere.png")
    (m / "linked_out.png").symlink_to(outside / "elsewhere.png")
    cases.add("symbolic link out of the folder (followed)", "linked_out.png", "ok")


def _media_cases(root: Path) -> list[Case]:
    """Write the media area (a folder a user would caption); its cases."""
    cases = _Cases("media")
    for write in (_broken_files, _odd_pictures, _odd_names, _links):
        write(root, cases)
    return list(cases)


def _manifest_cases(root: Path, media: Path) -> list[Case]:
    """A parquet manifest beside links to the media area; each bad row is a problem."""
    _picture(root / "good.png")
    (root / "link_out.png").symlink_to(media / "good.png")
    rows: list[tuple[str | None, Expect, str, str]] = [
        ("good.png", "ok", "a good row (control)", ""),
        ("link_out.png", "problem", "a symbolic link out of the folder", "symbolic link"),
        ("../media/good.png", "problem", "a .. path out of the folder", "outside the manifest"),
        (str(media / "good.png"), "problem", "an absolute path elsewhere", "outside the manifest"),
        ("https://example.com/a.png", "problem", "a URL", "URLs are not supported"),
        ("nul\x00byte.png", "problem", "a NUL character in the path", "NUL character"),
        ("missing.png", "problem", "a file that does not exist", "file not found"),
        ("", "problem", "an empty path", "empty path"),
        (None, "problem", "a null path", "empty path"),
        ("good.png", "problem", "a duplicate row", "listed before"),
        ("sub/../good.png", "problem", "the same file by another name", "listed before"),
        ("readme.txt", "problem", "a file that is not media", "not an image or video"),
    ]
    (root / "readme.txt").write_text("not media\n")
    table = pa.table({"path": [r[0] for r in rows], "id": list(range(len(rows)))})
    pq.write_table(table, root / "manifest.parquet")
    cases = [  # a row is named by its number (from 1), as discovery reports it
        Case(f"{kind}: {value!r}", "manifest", f"row {i}", expect, cause)
        for i, (value, expect, kind, cause) in enumerate(rows, start=1)
    ]
    pq.write_table(pa.table({"path": [1, 2, 3]}), root / "int_paths.parquet")
    cases.append(
        Case("a path column of integers", "manifest", "int_paths.parquet", "problem", "not text")
    )
    pq.write_table(pa.table({"file": ["good.png"]}), root / "no_path_column.parquet")
    cases.append(Case("no path column", "manifest", "no_path_column.parquet", "invalid", "path"))
    return cases


def _qa_cases(root: Path, media: Path) -> list[Case]:
    """QA sets in VLMEvalKit's TSV layout, each broken one way, beside their picture and a
    link out of their folder."""
    _picture(root / "good.png")
    (root / "link_out.png").symlink_to(media / "good.png")
    header = ("index", "question", "A", "B", "answer", "category", "image_path")

    def row(**cells: str) -> dict[str, str]:
        base = {
            "index": "1",
            "question": "What colour is it?",
            "A": "red",
            "B": "blue",
            "answer": "A",
            "category": "colour",
            "image_path": "good.png",
        }
        base.update(cells)
        return base

    sets: list[tuple[str, list[dict[str, str]], Expect, str, str]] = [
        ("good.tsv", [row(), row(index="2")], "ok", "a good set (control)", ""),
        ("no_choices.tsv", [row(A="", B="")], "invalid", "a question with no choices", "choice"),
        ("dup_ids.tsv", [row(), row()], "invalid", "duplicate question ids", "duplicate"),
        ("no_image.tsv", [row(image_path="")], "invalid", "a question with no image", "image"),
        ("escape.tsv", [row(image_path="../x.png")], "invalid", "an image path out of the set", ""),
        (
            "link_out.tsv",
            [row(image_path="link_out.png")],
            "invalid",
            "an image linked from out of the set",
            "symbolic link",
        ),
        ("bad_answer.tsv", [row(answer="E")], "invalid", "an answer not among the choices", ""),
        ("empty_q.tsv", [row(question="")], "invalid", "an empty question", "question"),
        (
            "control.tsv",
            [row(question="What\x07 colour\x1b[31m is it?")],
            "ok",
            "control characters in a question",
            "",
        ),
    ]
    cases = []
    for name, rows, expect, kind, cause in sets:
        lines = ["\t".join(header)] + ["\t".join(r[c] for c in header) for r in rows]
        (root / name).write_text("\n".join(lines) + "\n")
        cases.append(Case(kind, "qa", name, expect, cause))
    (root / "no_answer_column.tsv").write_text("index\tquestion\tA\n1\tq\tx\n")
    cases.append(Case("no answer column", "qa", "no_answer_column.tsv", "invalid", "answer"))
    return cases


def media_outcome(
    case: Case, rows: Mapping[str, Mapping[str, Any]], problems: Mapping[str, str]
) -> str:
    """What the job made of a media ``case``: ``ok``, ``failed``, ``problem``, ``absent``, or
    ``wrong: ...`` when it is not what the case expects (the cause missing from the error,
    say). ``rows``: the records by key; ``problems``: discovery's causes by key."""
    row = rows.get(case.name)
    if row is not None:
        got = str(row.get("status"))
        if got == "failed" and case.cause not in str(row.get("error")):
            return f"wrong: failed without {case.cause!r}: {row.get('error')}"
    elif case.name in problems:
        got = "problem"
        if case.cause not in problems[case.name]:
            return f"wrong: problem without {case.cause!r}: {problems[case.name]}"
    else:
        got = "absent"
    return got if got == case.expect else f"wrong: {got}, expected {case.expect}"


def write_corpus(root: Path) -> list[Case]:
    """Write every kind under ``root`` (``media/``, ``manifest/``, ``qa/``); their cases."""
    media, manifest, qa = root / "media", root / "manifest", root / "qa"
    for folder in (media, manifest, qa):
        folder.mkdir(parents=True, exist_ok=True)
    return _media_cases(media) + _manifest_cases(manifest, media) + _qa_cases(qa, media)


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "bad-inputs")
    for case in write_corpus(out):
        print(f"{case.area:9} {case.expect:8} {case.kind:45} {case.name!r}")
