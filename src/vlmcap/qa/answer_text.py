"""What of a model's answer is read, and how letters and option texts are found in it.

``reading`` sets reasoning aside and finds the part of the answer that is read (see
``vlmcap.qa.answers`` for what that is); ``read_token`` and ``chain`` find standalone choice
letters ("Letters and articles" there); ``Options`` finds the options' texts. The rules that
decide which option an answer picks are in ``vlmcap.qa.answers``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "ALPHABET",
    "Choices",
    "Options",
    "Token",
    "blank",
    "chain",
    "normalize_choices",
    "options_of",
    "read_token",
    "reading",
]

#: Letters an option can have, in order; ``choices=None`` accepts all of them.
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

#: What ``extract_choice`` takes as the options: letter -> text, texts lettered A, B, ...,
#: a string of letters (``"ABCD"``: those letters, no texts) or ``None`` (any letter).
Choices = Mapping[str, str] | Sequence[str] | None

# -- what is read ----------------------------------------------------------------------------

_THINK_TAG = re.compile(r"<(?P<close>/?)think>", re.IGNORECASE)
_ANSWER_OPEN = re.compile(r"<answer>", re.IGNORECASE)
_ANSWER_CLOSE = re.compile(r"</answer>", re.IGNORECASE)
_ANSWER_TAG = re.compile(r"</?answer>", re.IGNORECASE)
#: Markdown emphasis, code marks and inline-math dollars: decoration, read as spaces.
_DECORATION = re.compile(r"[*`$]")


def blank(match: re.Match[str]) -> str:
    return " " * len(match.group())


def reading(text: str) -> tuple[str, int, int]:
    """``text`` with reasoning and decoration blanked (same length, so offsets stay valid)
    and the bounds of the part that is read."""
    reasoning: list[tuple[int, int]] = []
    opened: int | None = None
    for tag in _THINK_TAG.finditer(text):
        if not tag.group("close"):
            opened = tag.start() if opened is None else opened
        elif opened is not None:  # a block: up to its first closing tag
            reasoning.append((opened, tag.end()))
            opened = None
        else:  # no opening tag (the prompt had it): everything before is reasoning
            reasoning.append((0, tag.end()))
    if opened is not None:  # never closed: the rest is reasoning cut short
        reasoning.append((opened, len(text)))
    chars = list(_DECORATION.sub(blank, text))
    for start, end in reasoning:
        chars[start:end] = " " * (end - start)
    view = "".join(chars)
    lo, hi = 0, len(view)
    answers = list(_ANSWER_OPEN.finditer(view))
    if answers:
        lo = answers[-1].end()
        close = _ANSWER_CLOSE.search(view, lo)
        hi = close.start() if close else len(view)
    return _ANSWER_TAG.sub(blank, view), lo, hi


# -- letters ---------------------------------------------------------------------------------

#: Letters that are also English words: never a choice when followed by a word, except by
#: one of ``_CONNECTIVES``.
_WORD_LETTERS = frozenset("AI")
#: The same as the words they are: at the very end of an answer they may be cut short.
_LOWER_WORD_LETTERS = frozenset("ai")
#: Words no article or pronoun is followed by: a letter before one of them is a choice.
_CONNECTIVES = frozenset({"because", "since", "as", "or"})
_APOSTROPHES = "'’"
_WORD = re.compile(r"[^\W_]+")
_TOKEN = re.compile(
    r"(?P<open>[(\[{<（【「\"'“‘])?(?P<letter>[A-Za-z])(?P<close>[)\]}>）】」\"'”’])?"
)
#: Between two letters offered together: "A or B", "A/B", "A, C", "A and C".
_JOIN = re.compile(
    r"[ \t]*(?:,[ \t]*(?:(?:or|and)[ \t]+)?|[/|&][ \t]*|(?<=[ \t])(?:or|and)[ \t]+)"
    r"(?:(?:perhaps|maybe|possibly)[ \t]+)?(?:(?:option|choice)[ \t]+)?",
    re.IGNORECASE,
)


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


@dataclass(frozen=True)
class Token:
    letter: str  # uppercase
    start: int
    end: int


def _standalone(s: str, i: int, letter: str, closed: bool, declared: bool) -> bool:
    """Whether a letter just before ``s[i]`` stands alone (see "Letters and articles")."""
    nxt = s[i : i + 1]
    if not closed and letter in _LOWER_WORD_LETTERS and not s[i:].strip(" \t"):
        return False  # "the answer is a" may be cut short before its noun
    if not nxt:
        return True
    if _is_word_char(nxt) or nxt in _APOSTROPHES:
        return False
    if closed or nxt in "\r\n":
        return True
    if nxt in ".-–—":  # "B." and "B -" but not "U.S." or "X-ray"
        return not _is_word_char(s[i + 1 : i + 2])
    if nxt in ":：":
        return declared
    if nxt in " \t":
        j = i
        while j < len(s) and s[j] in " \t":
            j += 1
        if j == len(s) or s[j] in "\r\n":
            return True
        if not _is_word_char(s[j]):
            return s[j] in "-–—([{"
        word = _WORD.match(s, j)
        following = word.group().casefold() if word else ""
        if declared and letter.upper() not in _WORD_LETTERS:
            return True
        return following in _CONNECTIVES
    return True  # , ; ! ? ) / and the like


def read_token(s: str, pos: int, *, declared: bool, after_word_ok: bool = False) -> Token | None:
    """The letter token starting at ``s[pos]``, if one stands alone there."""
    if pos > 0 and not after_word_ok and (_is_word_char(s[pos - 1]) or s[pos - 1] in "'’"):
        return None
    m = _TOKEN.match(s, pos)
    if not m:
        return None
    closed = m.group("close") is not None
    end = m.end() if closed else m.end("letter")
    if not _standalone(s, end, m.group("letter"), closed, declared):
        return None
    return Token(m.group("letter").upper(), m.start(), end)


def chain(s: str, first: Token, *, declared: bool) -> list[Token]:
    """``first`` and the letters joined to it ("A or B", "A, C")."""
    tokens = [first]
    while True:
        join = _JOIN.match(s, tokens[-1].end)
        if not join:
            return tokens
        nxt = read_token(s, join.end(), declared=declared, after_word_ok=True)
        if nxt is None:
            return tokens
        tokens.append(nxt)


# -- options ---------------------------------------------------------------------------------


def _words(text: str) -> tuple[str, ...]:
    return tuple(w.casefold() for w in _WORD.findall(text))


@functools.lru_cache(maxsize=1024)
def _option_pattern(text: str) -> re.Pattern[str] | None:
    words = _WORD.findall(text)
    if not words:
        return None
    body = r"[\W_]+".join(re.escape(w) for w in words)
    return re.compile(rf"(?<![^\W_]){body}(?![^\W_])", re.IGNORECASE)


@dataclass(frozen=True)
class Options:
    letters: tuple[str, ...]  # valid letters, in order
    texts: tuple[tuple[str, str], ...]  # (letter, text) of options with readable text

    def hits(self, s: str, lo: int = 0, hi: int | None = None) -> list[tuple[str, int, int]]:
        """(letter, start, end) of each option text in ``s[lo:hi]``, less those inside a
        longer option's text that is there too."""
        end = len(s) if hi is None else hi
        found: list[tuple[str, int, int]] = []
        for letter, text in self.texts:
            pattern = _option_pattern(text)
            if pattern is not None:
                found.extend((letter, m.start(), m.end()) for m in pattern.finditer(s, lo, end))
        found.sort(key=lambda h: (h[1], -h[2]))
        kept: list[tuple[str, int, int]] = []
        reach_start, reach_end = -1, -1
        for hit in found:
            inside = reach_end > hit[2] or (reach_end == hit[2] and reach_start < hit[1])
            if not inside:
                kept.append(hit)
            if hit[2] > reach_end:
                reach_start, reach_end = hit[1], hit[2]
        return kept

    def exact(self, text: str) -> str | None:
        """The letter of the one option whose text ``text`` is, case and punctuation aside."""
        words = _words(text)
        if not words:
            return None
        same = [letter for letter, option in self.texts if _words(option) == words]
        return same[0] if len(same) == 1 else None


def normalize_choices(choices: Choices) -> tuple[tuple[str, str], ...]:
    """``choices`` as (letter, text) pairs in order; text is empty where unknown.

    Raises ``ValueError`` for keys that are not single letters, repeated letters or more
    options than letters."""
    if choices is None:
        return tuple((letter, "") for letter in ALPHABET)
    if isinstance(choices, str):
        pairs = [(c.upper(), "") for c in choices if not c.isspace()]
    elif isinstance(choices, Mapping):
        pairs = [(str(k).strip().upper(), str(v)) for k, v in choices.items()]
    else:
        if len(choices) > len(ALPHABET):
            raise ValueError(f"{len(choices)} options but only {len(ALPHABET)} letters")
        pairs = [(ALPHABET[i], str(text)) for i, text in enumerate(choices)]
    for letter, _ in pairs:
        if len(letter) != 1 or letter not in ALPHABET:
            raise ValueError(f"choice letter {letter!r} is not one of A-Z")
    if len({letter for letter, _ in pairs}) != len(pairs):
        raise ValueError("a choice letter is given twice")
    return tuple(pairs)


@functools.lru_cache(maxsize=256)
def options_of(pairs: tuple[tuple[str, str], ...]) -> Options:
    return Options(
        letters=tuple(letter for letter, _ in pairs),
        texts=tuple((letter, text) for letter, text in pairs if _WORD.search(text)),
    )
