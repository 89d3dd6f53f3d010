"""Which option a free-text answer to a multiple-choice question picks.

Models answer multiple choice in many shapes: ``B``, ``(B)``, ``B. circle``, ``circle (B)`` or just
``circle``. ``extract_choice`` reads all of them: an answer that is exactly one option's text, then
a standalone option letter, then the one option whose text the answer contains. An answer that
names several options or none picks nothing (``None``), which scores as wrong.

    extract_choice("circle", ["star", "circle", "square", "cross"])  # "B"
    extract_choice("(C)", ["star", "circle", "square", "cross"])  # "C"
"""

from __future__ import annotations

import re
from collections.abc import Sequence

LETTERS = "ABCDEFGHIJ"
_PUNCT = re.compile(r"[^\w\s]")


def _normal(text: str) -> str:
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


def extract_choice(
    answer: str | None, options: Sequence[str], letters: str = LETTERS
) -> str | None:
    """The letter of the option ``answer`` picks among ``options`` (lettered from ``letters``
    in order), or ``None`` when it picks none or more than one."""
    if not answer or not options:
        return None
    if len(options) > len(letters):
        raise ValueError(f"{len(options)} options but only {len(letters)} letters")
    used = letters[: len(options)]
    normal = _normal(answer)
    texts = [_normal(o) for o in options]
    if normal in texts and texts.count(normal) == 1:
        return used[texts.index(normal)]
    found = set(re.findall(rf"\b([{used}])\b", answer))
    if len(found) == 1:
        return found.pop()
    if found:
        return None
    padded = f" {normal} "
    named = [i for i, t in enumerate(texts) if t and f" {t} " in padded]
    # "not moving" contains no other option, but an option may contain another ("red" in
    # "dark red"): keep only the options no other named one contains.
    named = [i for i in named if not any(i != j and texts[i] in texts[j] for j in named)]
    return used[named[0]] if len(named) == 1 else None
