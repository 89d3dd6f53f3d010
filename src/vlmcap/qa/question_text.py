"""The text of a multiple-choice question: its choices, and the letter its ground truth names.

A question set often writes the choices inside the question text rather than in columns of
their own: one per line (``A. red`` / ``(B) blue`` / ``C) green`` / ``D: grey``) or inline
(``Which colour? A. red B. blue C. green``). ``parse_choices`` splits such a text into its stem
and its choices without taking letters inside words ("U.S.A.") for markers.

The ground truth may be written ``\\boxed{A}``, ``A``, ``(A)``, ``A.``, ``A. red`` or as the
exact text of one option; ``answer_letter`` turns every form into the letter, and says why
when the answer names no option (or one whose text is another's).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from vlmcap.qa.choices import LETTERS

# An option marker: "A." "A)" "A:" or "(A)", at the start of the text or after a space or a
# separator ("Options:A. red"), so letters inside words ("U.S.A.") are not markers.
_MARKER = re.compile(
    rf"(?:^|(?<=[\s:;,]))(?:\((?P<paren>[{LETTERS}])\)|(?P<bare>[{LETTERS}])[.):：])"
)
_LINE_START = re.compile(r"(?:^|\n)[ \t]*$")
# "Options:" before the choices (on its own line the colon may be left out).
_OPTIONS_LABEL = re.compile(
    r"(?:(?:^|\n)[ \t]*(?:options|choices)[ \t]*[:：]?|(?<=\s)(?:options|choices)[ \t]*[:：])"
    r"[ \t]*$",
    re.IGNORECASE,
)
_BOXED = re.compile(r"\$?\s*\\boxed\{(.*)\}\s*\$?", re.DOTALL)
_LETTER_ONLY = re.compile(r"\(?([A-Za-z])\)?[.):：]?")
_LETTER_AND_TEXT = re.compile(r"(?:\(([A-Z])\)|([A-Z])[.):：])\s*(.+)", re.DOTALL)
_TRAILING_PUNCT = re.compile(r"[\s.。!?;,]+$")


def parse_choices(text: str) -> tuple[str, dict[str, str]]:
    """Split a question into its stem and its choices (``{}`` when it lists fewer than two).

    Choices are ``A. x``, ``(A) x``, ``A) x`` or ``A: x``, with consecutive letters from
    ``A``, one per line or inline. Among several candidate runs the longest wins, then one
    whose markers all start lines, then the last (a stem may mention "A." itself). Inline
    choices may be separated by "," or ";", which are not part of their text. Lines after
    the last choice's line (an instruction such as "Answer with the letter") stay in the stem;
    a trailing "Options:" label is dropped from it.
    """
    markers = []
    for m in _MARKER.finditer(text):
        at_line_start = bool(_LINE_START.search(text, 0, m.start()))
        follows = text[m.end() : m.end() + 1]
        if m.group("bare") and not at_line_start and follows and not follows.isspace():
            continue  # "A.b" inside a line is not a marker
        markers.append((m.start(), m.end(), m.group("paren") or m.group("bare"), at_line_start))
    best: list[tuple[int, int, str, bool]] = []
    best_key: tuple[int, bool, int] = (0, False, -1)
    for i, first in enumerate(markers):
        if first[2] != LETTERS[0]:
            continue
        chain = [first]
        for marker in markers[i + 1 :]:
            wanted = LETTERS[len(chain)] if len(chain) < len(LETTERS) else None
            if marker[2] == wanted and marker[0] >= chain[-1][1]:
                chain.append(marker)
        key = (len(chain), all(m[3] for m in chain), first[0])
        if len(chain) >= 2 and key > best_key:
            best, best_key = chain, key
    if not best:
        return text.strip(), {}
    choices: dict[str, str] = {}
    for (_, end, letter, _), nxt in zip(best, [*best[1:], None], strict=True):
        if nxt is not None:  # inline choices may be separated by "," or ";"
            choices[letter] = " ".join(text[end : nxt[0]].split()).rstrip(",;").rstrip()
    last_end = best[-1][1]
    line_end = text.find("\n", last_end)
    line_end = len(text) if line_end < 0 else line_end
    choices[best[-1][2]] = " ".join(text[last_end:line_end].split())
    stem = _OPTIONS_LABEL.sub("", text[: best[0][0]].rstrip()).strip()
    trailing = text[line_end:].strip()
    return "\n".join(part for part in (stem, trailing) if part), choices


def _plain(text: str) -> str:
    return _TRAILING_PUNCT.sub("", " ".join(text.split())).casefold()


def answer_letter(raw: str, choices: Mapping[str, str]) -> str:
    """The letter of ``choices`` that the ground truth ``raw`` names.

    Accepts ``\\boxed{A}``, ``A``, ``a``, ``(A)``, ``A.``, ``A)``, ``A. red`` (whose text must
    be option A's) and the exact text of one option (case, spacing and final punctuation
    aside). Raises ``ValueError`` with the cause otherwise.
    """
    letters = ", ".join(choices)
    text = raw.strip()
    boxed = _BOXED.fullmatch(text)
    if boxed:
        text = boxed.group(1).strip()
    if not text:
        raise ValueError("the answer is empty")
    only = _LETTER_ONLY.fullmatch(text)
    if only and only.group(1).upper() in choices:
        return only.group(1).upper()
    with_text = _LETTER_AND_TEXT.fullmatch(text)
    if with_text:
        letter = with_text.group(1) or with_text.group(2)
        if letter not in choices:
            raise ValueError(f"answer {raw!r} names option {letter}, not one of {letters}")
        if _plain(with_text.group(3)) != _plain(choices[letter]):
            raise ValueError(
                f"answer {raw!r} names option {letter}, but option {letter} is "
                f"{choices[letter]!r}; fix the answer or the choice"
            )
        return letter
    same = [letter for letter, t in choices.items() if _plain(t) == _plain(text)]
    if len(same) == 1:
        return same[0]
    if same:
        raise ValueError(f"answer {raw!r} is the text of several options ({', '.join(same)})")
    raise ValueError(
        f"answer {raw!r} is not one of the choices {letters} (give a letter, e.g. 'A', "
        "or the exact text of one option)"
    )
