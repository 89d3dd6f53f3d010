"""Which option a model's free-text answer to a multiple-choice question picks, and why.

A visual-QA score is only as good as the parser behind it. Common harnesses lose or invent
accuracy in the parser: reading the first capital letter of "The answer is (B)" as ``T``,
counting the article in "A red circle is shown" as option A, taking the last letter-like token
in a long explanation, or drawing a random option when nothing parses. ``extract_choice``
never guesses; it returns an ``Extraction`` naming the rule that decided (``method``) and the
substring it read (``evidence`` at ``span``), so every score can be audited.

    extract_choice("The answer is (B).", ["star", "circle", "square", "cross"])
    # Extraction(letter='B', method=<Method.EXPLICIT: 'explicit'>, evidence='answer is (B)',
    #            span=(4, 17))

What is read
    Reasoning is set aside first: every ``<think>...</think>`` block, everything before a
    ``</think>`` that has no opening tag (chat templates often put the opening tag in the
    prompt) and everything after a ``<think>`` that is never closed (a truncated reasoning has
    no answer yet). When an ``<answer>...</answer>`` block remains, only the last one is read.
    ``*``, backticks and ``$`` (Markdown and inline-math decoration) read as spaces.

Rules, first that decides wins
    1. ``boxed``: ``\\boxed{B}``, ``\\boxed{\\text{B}}``, ``$\\boxed{(B) circle}$`` or boxed
       option text. A box is the strongest declaration a model makes, so it outranks all
       else; boxes naming different options are ``ambiguous``. A box with nothing readable
       (``\\boxed{42}``) is passed over.
    2. ``explicit``: "answer is B", "Answer: b", "**Answer:** C", "the correct option is (D)",
       "I choose B", "it's option (B)", "B is the correct answer", "答案：B"; and, weaker,
       "I think B", "It's (C).", "I'd say D" (only a standalone letter among the choices
       counts after these). The LAST readable declaration wins, since models revise
       themselves ("Answer: A ... on reflection, the answer is C").
       A negated one ("the answer is not A") is no declaration. One naming several letters
       ("the answer is A or B") is ``ambiguous``.
    3. ``lone_letter``: the whole answer is a letter, bracketed or not, with an optional
       period or colon, or "Option" before it ("B", "(c)", "Option D."), or its last line is
       (a conclusion after unmarked reasoning); different lone-letter lines are ``ambiguous``.
    4. ``option_text``: the answer is exactly one option's text (case and punctuation aside).
       Before rule 5 so that an option such as "A dog" reads as itself, not as letter A.
    5. ``leading_letter``: the answer starts with a marked letter: "D.", "(C) ...", "B) ...",
       "B, because", "A - red". Starting with two letters ("B or C") is ``ambiguous``; so is an
       answer that starts like a list of options ("A. red" and "B. blue" on the next line).
    6. ``refusal``: "I cannot determine ...", "I'm unable to see the image", "none of the
       options", "not enough information" (unless the phrase is an option's own text).
       After the letter rules, since a model may hedge and still answer ("I can't be sure,
       but the answer is B"); before rule 8, so that a refusal that mentions an option
       ("I cannot tell whether it is a circle") picks nothing.
    7. ``ambiguous``: two valid letters offered as alternatives anywhere ("A or B", "(A)/(C)").
    8. ``option_text``: exactly one option's text appears in the answer. An option inside a
       longer one that also appears counts once ("dark red" is not also "red"); two options
       named is ``ambiguous``.
    Then ``invalid`` when the answer started with a letter that is not a choice ("E. none"
    with four options) and ``none`` otherwise. A letter outside the choices is never an
    answer: it reads as ``invalid`` where a rule above would have taken it (a lone "E", an
    "Answer: E", a ``\\boxed{E}``), and ``letter`` is ``None``.

Letters and articles
    A letter counts only as a standalone token: not part of a word ("B12", "X-ray", "U.S.",
    "I'm"), and either bracketed, at the end of a line, or followed by punctuation (``.``
    ``)`` ``,`` ``;`` ``-``; ``:`` only after an explicit cue or "Option"). A letter followed
    by a word is a choice only after one of the strong cues of rule 2 and only for letters that
    are not English words: "Answer: B circle" is B, but "Answer: A red circle" reads "A" as the
    article (and then the option text decides). Anywhere, a letter followed by "because",
    "since", "as" or "or" counts ("A because ..."), as no article or pronoun is followed by
    those. Lowercase letters count when standalone in the same way ("answer: b", "(c)"), so
    the article in "a circle" never does, while an answer that is only "a" is letter A; a
    bare "a" or "i" that ends the text ("the answer is a") may be cut short and is not read.
    A letter merely mentioned in a sentence ("Option A is wrong") is never read; the answer
    has to declare it.
    With ``choices=None`` every letter A-Z is valid, so nothing rules out a stray "X."; pass
    the options (or at least their letters, ``"ABCD"``) when they are known.

Case-insensitive throughout, except where case is the only thing telling a letter from a word
(a bare uppercase letter in "A or B" and "B is correct").

This module holds the rules; what a box, a cue or a lone letter declares is read in
``vlmcap.qa.answer_reads``, and how letters and option texts are found in the answer is in
``vlmcap.qa.answer_text``.
"""

from __future__ import annotations

import bisect
import enum
import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass

from vlmcap.qa.answer_reads import (
    LINE,
    Read,
    boxes,
    declarations,
    from_hits,
    from_tokens,
    lone_letter,
)
from vlmcap.qa.answer_text import (
    ALPHABET,
    Choices,
    Options,
    chain,
    normalize_choices,
    options_of,
    read_token,
    reading,
)

__all__ = ["ALPHABET", "Choices", "Extraction", "Method", "extract_choice", "normalize_choices"]


class Method(enum.StrEnum):
    """The rule that decided an extraction (see the module docstring for their order)."""

    BOXED = "boxed"
    EXPLICIT = "explicit"
    LONE_LETTER = "lone_letter"
    LEADING_LETTER = "leading_letter"
    OPTION_TEXT = "option_text"
    REFUSAL = "refusal"
    AMBIGUOUS = "ambiguous"
    INVALID = "invalid"
    NONE = "none"


@dataclass(frozen=True)
class Extraction:
    """The option an answer picks (``letter``, ``None`` when none) and why.

    ``evidence`` is the substring of the answer that decided (empty for ``none``) and ``span``
    its ``(start, end)`` offsets in the text given to ``extract_choice``.
    """

    letter: str | None
    method: Method
    evidence: str = ""
    span: tuple[int, int] | None = None

    @property
    def answered(self) -> bool:
        """Whether the answer picks a valid option."""
        return self.letter is not None


#: "B. ..." or "(B) ..." at the start of a later line: the answer lists the options.
_LIST_ITEM = re.compile(r"^[ \t]*[(\[]?(?P<letter>[A-Za-z])[.)\]](?=[ \t])", re.MULTILINE)
_LEADING_PREFIX = re.compile(r"\s*(?:(?:option|choice)[ \t]+)?", re.IGNORECASE)

_REFUSAL = re.compile(
    r"(?<![^\W_])(?:"
    r"(?:can\s*not|can't|can’t|could\s*not|couldn't|couldn’t|unable\s+to|not\s+able\s+to"
    r"|impossible\s+to|not\s+possible\s+to)\s+(?:be\s+)?(?:determined?|tell|told|answer(?:ed)?"
    r"|identif(?:y|ied)|see|seen|view(?:ed)?|decide|access|make\s+out|infer(?:red)?|read)"
    r"|none\s+of\s+the\s+(?:above|options|choices|answers|(?:given|provided|listed)\s+options)"
    r"|no\s+(?:image|picture|video|photo)\s+(?:is\s+|was\s+|has\s+been\s+)?"
    r"(?:provided|attached|shown|given|available|visible)"
    r"|there\s+is\s+no\s+(?:image|picture|video|photo|correct\s+(?:answer|option|choice))"
    r"|(?:not\s+enough|insufficient)\s+(?:visual\s+)?(?:information|detail|context)"
    r"|I\s+(?:do\s+not|don't|don’t)\s+know"
    r")(?![^\W_])",
    re.IGNORECASE,
)
_ALTERNATIVES = re.compile(
    r"(?<![^\W_'’])(?:[(\[](?P<a>[A-Za-z])[)\]]|(?P<b>[A-Z]))"
    r"(?:(?:[ \t]*,[ \t]*|[ \t]+)or[ \t]+|[ \t]*/[ \t]*)"
    r"(?:[(\[](?P<c>[A-Za-z])[)\]]|(?P<d>[A-Z]))(?![^\W_'’])"
)


# -- the rules -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Decision:
    letter: str | None
    method: Method
    start: int
    end: int


def _settle(read: Read, method: Method, valid: Iterable[str]) -> _Decision:
    """``method`` when ``read`` names one valid letter; else ``ambiguous`` or ``invalid``."""
    letters = set(read.letters)
    if len(letters) > 1:
        return _Decision(None, Method.AMBIGUOUS, read.start, read.end)
    letter = read.letters[0]
    if letter not in set(valid):
        return _Decision(None, Method.INVALID, read.start, read.end)
    return _Decision(letter, method, read.start, read.end)


def _by_box(s: str, options: Options) -> _Decision | None:
    reads = boxes(s, options)
    if not reads:
        return None
    decisions = [_settle(r, Method.BOXED, options.letters) for r in reads]
    if len({(d.letter, d.method) for d in decisions}) == 1:
        return _settle(reads[-1], Method.BOXED, options.letters)
    return _Decision(None, Method.AMBIGUOUS, reads[0].start, reads[-1].end)


def _by_declaration(s: str, options: Options) -> _Decision | None:
    reads = declarations(s, options)
    return _settle(reads[-1], Method.EXPLICIT, options.letters) if reads else None


def _by_lone_letter(s: str, options: Options) -> _Decision | None:
    whole = lone_letter(s)
    if whole is not None:
        return _settle(whole, Method.LONE_LETTER, options.letters)
    lines = [(m.start(), lone_letter(m.group())) for m in LINE.finditer(s) if m.group().strip()]
    if not lines or lines[-1][1] is None:
        return None
    reads = [read.shifted(at) for at, read in lines if read is not None]
    letters = tuple(dict.fromkeys(r.letters[0] for r in reads))
    if len(letters) > 1:  # "A" on one line, "B" on another: a list, not an answer
        return _Decision(None, Method.AMBIGUOUS, reads[0].start, reads[-1].end)
    return _settle(reads[-1], Method.LONE_LETTER, options.letters)


def _by_exact_text(s: str, options: Options) -> _Decision | None:
    letter = options.exact(s)
    if letter is None:
        return None
    lead = len(s) - len(s.lstrip())
    return _Decision(letter, Method.OPTION_TEXT, lead, len(s.rstrip()))


def _by_leading_letter(s: str, options: Options) -> tuple[_Decision | None, _Decision | None]:
    """The leading-letter decision, or else an ``invalid`` one kept for the end."""
    prefix = _LEADING_PREFIX.match(s)
    at = prefix.end() if prefix else 0
    token = read_token(s, at, declared=bool(prefix and prefix.group().strip()))
    if token is None:
        return None, None
    read = from_tokens(chain(s, token, declared=False))
    decision = _settle(read, Method.LEADING_LETTER, options.letters)
    if decision.method is Method.INVALID:
        return None, decision
    if decision.letter is not None:
        line_end = s.find("\n", read.end)
        if line_end >= 0:
            for item in _LIST_ITEM.finditer(s, line_end):
                other = item.group("letter").upper()
                if other != decision.letter and other in options.letters:
                    return _Decision(None, Method.AMBIGUOUS, read.start, item.end()), None
    return decision, None


def _by_refusal(s: str, options: Options) -> _Decision | None:
    hits = options.hits(s)  # sorted by start
    starts = [h[1] for h in hits]
    reach = list(itertools.accumulate((h[2] for h in hits), max))
    for m in _REFUSAL.finditer(s):
        before = bisect.bisect_left(starts, m.end())  # hits starting before the phrase ends
        if before == 0 or reach[before - 1] <= m.start():  # none reaches into it
            return _Decision(None, Method.REFUSAL, m.start(), m.end())
    return None


def _by_alternatives(s: str, options: Options) -> _Decision | None:
    for m in _ALTERNATIVES.finditer(s):
        first = (m.group("a") or m.group("b")).upper()
        second = (m.group("c") or m.group("d")).upper()
        if first != second and first in options.letters and second in options.letters:
            return _Decision(None, Method.AMBIGUOUS, m.start(), m.end())
    return None


def _by_contained_text(s: str, options: Options) -> _Decision | None:
    read = from_hits(options.hits(s))
    return _settle(read, Method.OPTION_TEXT, options.letters) if read else None


def extract_choice(text: str | None, choices: Choices = None) -> Extraction:
    """Which of ``choices`` the answer ``text`` picks, and the rule and substring that decided.

    ``choices`` maps letters to option texts (``{"A": "star", "B": "circle"}``), or is the
    option texts in order (lettered A, B, ...), a string of the valid letters (``"ABCD"``) or
    ``None`` (any letter A-Z, no texts). Never raises on any text; raises ``ValueError`` for
    choices that cannot be lettered (see ``normalize_choices``).
    """
    options = options_of(normalize_choices(choices))
    if not text:
        return Extraction(None, Method.NONE)
    view, lo, hi = reading(text)
    s = view[lo:hi]
    pending: _Decision | None = None
    decision = _by_box(s, options) or _by_declaration(s, options)
    decision = decision or _by_lone_letter(s, options) or _by_exact_text(s, options)
    if decision is None:
        decision, pending = _by_leading_letter(s, options)
    decision = (
        decision
        or _by_refusal(s, options)
        or _by_alternatives(s, options)
        or _by_contained_text(s, options)
        or pending
    )
    if decision is None:
        return Extraction(None, Method.NONE)
    start, end = lo + decision.start, lo + decision.end
    return Extraction(decision.letter, decision.method, text[start:end], (start, end))
