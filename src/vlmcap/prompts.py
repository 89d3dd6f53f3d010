"""Caption prompt styles shared by every model plugin.

The image styles use the exact wording common caption scripts in this field use, so captions
made here can be compared with theirs. ``default`` lets the plugin choose by media kind: its
``video`` prompt for clips, its ``image`` prompt for pictures. A plugin may override any style
or add its own in ``VLMPlugin.prompts``.
"""

from __future__ import annotations

from pathlib import Path

SIMPLE = "Describe this image in detail."
SHORT = "Write a very short caption for the given image."
LONG = (
    "Write a very long and detailed caption describing the given image as comprehensively as "
    "possible."
)
VIDEO = "Describe this video in detail."
VIDEO_SHORT = "Summarize what happens in this video in one sentence."
VIDEO_LONG = (
    "Write a very long and detailed description of this video: the scene, the objects and "
    "people, what they do, how they move, the camera motion, and how the scene changes over time."
)

#: Style name -> prompt text. ``default`` is resolved per media kind (``prompt_for``).
STYLES: dict[str, str] = {
    "simple": SIMPLE,
    "short": SHORT,
    "long": LONG,
    "video": VIDEO,
    "video-short": VIDEO_SHORT,
    "video-long": VIDEO_LONG,
    "image": SIMPLE,
    "default": VIDEO,
}

#: Largest prompt file read with ``--prompt-file`` (a prompt, not a document).
MAX_PROMPT_FILE_BYTES = 64 * 1024


def read_prompt_file(path: str | Path) -> str:
    """Prompt text from a UTF-8 file, stripped; errors name the file and the problem."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ValueError(f"prompt file {p}: cannot read it ({exc.strerror or exc})") from None
    if len(data) > MAX_PROMPT_FILE_BYTES:
        raise ValueError(f"prompt file {p}: {len(data):,} bytes, more than a prompt should be")
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise ValueError(f"prompt file {p}: not UTF-8 text ({exc.reason})") from None
    if not text:
        raise ValueError(f"prompt file {p}: empty")
    return text
