"""What an answer declares: the letters a box, a cue ("the answer is", "Answer:", "B is
correct") or a lone letter names, and where (``Read``). ``vlmcap.qa.answers`` decides from
these which option the answer picks; finding letters and option texts in the answer is
``vlmcap.qa.answer_text``'s.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from vlmcap.qa.answer_text import Options, Token, blank, chain, read_token


@dataclass(frozen=True)
class Read:
    """Letters a declaration names (uppercase, valid or not) and where."""

    letters: tuple[str, ...]
    start: int
    end: int

    def shifted(self, by: int) -> Read:
        return Read(self.letters, self.start + by, self.end + by)


def from_tokens(tokens: Sequence[Token]) -> Read:
    return Read(tuple(t.letter for t in tokens), tokens[0].start, tokens[-1].end)


def from_hits(hits: Sequence[tuple[str, int, int]]) -> Read | None:
    if not hits:
        return None
    letters = tuple(dict.fromkeys(h[0] for h in hits))
    return Read(letters, hits[0][1], hits[-1][2] if len(letters) > 1 else hits[0][2])


#: An answer that is only a letter: "B", "(b)", "B.", "Option D", "choice: (C)".
_LONE = re.compile(
    r"(?:(?i:option|choice|letter)[ \t]*(?:[:：#][ \t]*)?)?(?:[(\[{<（【「\"'“‘][ \t]*)?"
    r"(?P<letter>[A-Za-z])[ \t]*(?:[)\]}>）】」\"'”’][ \t]*)?[.。!:：]?"
)


def lone_letter(s: str) -> Read | None:
    """The letter ``s`` is, when it is only a letter (surrounding whitespace aside)."""
    stripped = s.strip()
    m = _LONE.fullmatch(stripped)
    if not m:
        return None
    lead = len(s) - len(s.lstrip())
    return Read((m.group("letter").upper(),), lead, lead + len(stripped))


def _boxed_content(content: str, options: Options) -> Read | None:
    """What a box holds (LaTeX commands and braces already blanked)."""
    alone = lone_letter(content)
    if alone is not None:
        return alone
    start = len(content) - len(content.lstrip())
    token = read_token(content, start, declared=True)
    if token is not None:
        return from_tokens(chain(content, token, declared=True))
    letter = options.exact(content)
    if letter is not None:
        return Read((letter,), start, len(content.rstrip()))
    return from_hits(options.hits(content))


#: Boxes holding more characters than this are derivations, not answers, and are passed over.
BOX_LIMIT = 500
_BOX = re.compile(r"\\(?:boxed|fbox)[ \t]*\{")
_LATEX = re.compile(r"\\[A-Za-z]+|\\.|[{}]")


def boxes(s: str, options: Options) -> list[Read]:
    """What each ``\\boxed{...}`` in ``s`` reads, spans covering the whole box."""
    closing: dict[int, int] = {}
    stack: list[int] = []
    for i, char in enumerate(s):
        if char == "{":
            stack.append(i)
        elif char == "}" and stack:
            closing[stack.pop()] = i
    reads: list[Read] = []
    for m in _BOX.finditer(s):
        close = closing.get(m.end() - 1)
        if close is None or close - m.end() > BOX_LIMIT:
            continue
        content = _LATEX.sub(blank, s[m.end() : close])
        read = _boxed_content(content, options)
        if read is not None:
            reads.append(Read(read.letters, m.start(), close + 1))
    return reads


_VERB = (
    r"(?:is|was|would\s+be|should\s+be|will\s+be|must\s+be|has\s+to\s+be|seems\s+to\s+be"
    r"|appears\s+to\s+be)"
)
#: Cues after which the answer follows ("answer is", "Answer:", "the correct option is").
_CUE = re.compile(
    r"(?:(?<![^\W_])(?:"
    rf"answer\s*(?:\(s\)\s*)?(?:{_VERB}\b\s*[:：]?|[:：=]|-(?=\s))"
    r"|(?:correct|right|best|final|most\s+likely)\s+(?:option|choice|letter|response|pick|one)\s*"
    rf"(?:{_VERB}\b\s*[:：]?|[:：=])"
    r"|my\s+(?:choice|pick|selection)\s*(?:" + _VERB + r"\b\s*[:：]?|[:：=])"
    r"|I(?:\s+would|\s+will|'d|’d)?\s+(?:choose|pick|select|go\s+with)\b\s*[:：]?"
    r"|(?:it's|it’s|it\s+is)\s+(?=(?:option|choice|letter)\b)"
    r")|答案\s*(?:是|为|為|[:：]))",
    re.IGNORECASE,
)
#: Cues that declare only a standalone valid letter ("I think B.", "It's (C)", "I'd say D").
_WEAK_CUE = re.compile(
    r"(?<![^\W_])(?:"
    r"I\s+(?:think|believe|guess)(?:\s+(?:it's|it’s|it\s+is|that's|that\s+is))?"
    r"|I(?:'d|’d|\s+would)\s+say(?:\s+(?:it's|it’s|it\s+is))?"
    r"|it's|it’s|it\s+is|that's|that\s+is"
    r")(?![^\W_])",
    re.IGNORECASE,
)
#: Cues after the letter: "B is correct", "(C) is the right answer", "Option D is the answer".
_POSTFIX_CUE = re.compile(
    r"(?<![^\W_'’])(?:(?i:option|choice|letter)\s+)?(?P<token>[(\[][A-Za-z][)\]]|[A-Z])"
    r"\s+(?i:is|would\s+be|seems\s+to\s+be)\s+(?i:the\s+)?"
    r"(?i:(?:correct|right|best|most\s+likely)(?![^\W_])(?:\s+(?:answer|option|choice))?"
    r"|answer(?![^\W_]))"
)
#: Skipped between a cue and what it declares: space, punctuation, hedges, "option".
_TARGET_SKIP = re.compile(
    r"(?:\s+|[:：=>\-–—]+|(?:most\s+)?(?:likely|probably|clearly|definitely|certainly|actually"
    r"|indeed|simply|then|therefore|thus|hence)(?![^\W_])"
    r"|(?:the\s+)?(?:option|choice|letter)(?![^\W_])(?:\s*[:：#])?)*",
    re.IGNORECASE,
)
_NEGATION = re.compile(r"(?:not|never|neither|nor)(?![^\W_])", re.IGNORECASE)
#: Characters after a cue searched for an option's text (to the sentence's end at most).
TARGET_WINDOW = 300
_SENTENCE_END = re.compile(r"[.!?;。](?=\s|$)|\n")
LINE = re.compile(r"[^\n]+")


def _declared(s: str, pos: int, options: Options) -> Read | None:
    """What the declaration whose cue ends at ``s[pos]`` names, if anything."""
    start = _TARGET_SKIP.match(s, pos)
    at = start.end() if start else pos
    if _NEGATION.match(s, at):
        return None
    token = read_token(s, at, declared=True, after_word_ok=True)
    if token is not None:
        return from_tokens(chain(s, token, declared=True))
    limit = min(len(s), at + TARGET_WINDOW)
    end = _SENTENCE_END.search(s, at, limit)
    return from_hits(options.hits(s, at, end.start() if end else limit))


def declarations(s: str, options: Options) -> list[Read]:
    """Every readable explicit declaration in ``s``, in order; spans include the cue."""
    found: list[tuple[int, Read]] = []
    for cue in _CUE.finditer(s):
        read = _declared(s, cue.end(), options)
        if read is not None:
            found.append((read.start, Read(read.letters, cue.start(), read.end)))
    for cue in _WEAK_CUE.finditer(s):
        skip = _TARGET_SKIP.match(s, cue.end())
        token = read_token(s, skip.end() if skip else cue.end(), declared=False)
        if token is not None and token.letter in options.letters:
            read = from_tokens(chain(s, token, declared=False))
            found.append((read.start, Read(read.letters, cue.start(), read.end)))
    for cue in _POSTFIX_CUE.finditer(s):
        letter = cue.group("token").strip("()[]").upper()
        found.append((cue.start("token"), Read((letter,), cue.start(), cue.end())))
    found.sort(key=lambda f: f[0])
    return [read for _, read in found]
