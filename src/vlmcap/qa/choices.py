"""The letter a free-text answer to a multiple-choice question picks: the short form.

``extract_choice(answer, options)`` is ``vlmcap.qa.extract_choice`` (``vlmcap.qa.answers``,
where the rules and their order are documented) reduced to the letter, for callers that score
and need no provenance. Options are lettered from ``letters`` in order; an answer that picks
no option, several, or a letter that is not one of them gives ``None``, which scores as wrong.

    extract_choice("circle", ["star", "circle", "square", "cross"])  # "B"
    extract_choice("The answer is (C).", ["star", "circle", "square", "cross"])  # "C"
"""

from __future__ import annotations

from collections.abc import Sequence

from vlmcap.qa.answers import extract_choice as extract

#: Letters of the options, in order, unless the caller names others.
LETTERS = "ABCDEFGHIJ"


def extract_choice(
    answer: str | None, options: Sequence[str], letters: str = LETTERS
) -> str | None:
    """The letter of the option ``answer`` picks among ``options`` (lettered from ``letters``
    in order), or ``None`` when it picks none or more than one."""
    if not answer or not options:
        return None
    if len(options) > len(letters):
        raise ValueError(f"{len(options)} options but only {len(letters)} letters")
    return extract(answer, dict(zip(letters, options, strict=False))).letter
