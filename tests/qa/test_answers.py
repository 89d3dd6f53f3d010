"""Reading multiple-choice answers: every rule on its known forms, the classic parser failures,
and properties over generated option sets and answers."""

from __future__ import annotations

import string
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import vlmcap.qa
from vlmcap.qa.answers import ALPHABET, Extraction, Method, extract_choice, normalize_choices

SHAPES = ["star", "circle", "square", "cross"]
COLOURS = {"A": "red", "B": "dark red", "C": "blue", "D": "None of the above"}
MOTION = ["left", "not moving", "up", "down"]
NINE = [f"shape {w}" for w in ("one", "two", "three", "four", "five", "six", "seven", "eight")]
NINE.append("shape nine")

BOXED, EXPLICIT = Method.BOXED, Method.EXPLICIT
LONE, LEADING, TEXT = Method.LONE_LETTER, Method.LEADING_LETTER, Method.OPTION_TEXT
REFUSAL, AMBIGUOUS, INVALID, NONE = Method.REFUSAL, Method.AMBIGUOUS, Method.INVALID, Method.NONE

CASES = [
    # boxed
    (r"\boxed{A}", SHAPES, "A", BOXED),
    (r"\boxed{\text{B}}", SHAPES, "B", BOXED),
    (r"The final answer is $\boxed{C}$.", SHAPES, "C", BOXED),
    (r"\boxed{circle}", SHAPES, "B", BOXED),
    (r"\boxed{(D) cross}", SHAPES, "D", BOXED),
    (r"\boxed{\textbf{b}}", SHAPES, "B", BOXED),
    (r"Answer: A, but to be exact \boxed{D}", SHAPES, "D", BOXED),
    (r"\boxed{B} ... so \boxed{B}", SHAPES, "B", BOXED),
    (r"\boxed{A} or maybe \boxed{B}", SHAPES, None, AMBIGUOUS),
    (r"\boxed{A, C}", SHAPES, None, AMBIGUOUS),
    (r"\boxed{E}", SHAPES, None, INVALID),
    ("$\\boxed{42}$\nAnswer: C", SHAPES, "C", EXPLICIT),  # a box holding no option is passed over
    # explicit
    ("The answer is (B).", SHAPES, "B", EXPLICIT),  # first-capital parsers read "T"
    ("Answer: b", SHAPES, "B", EXPLICIT),
    ("**Answer:** C", SHAPES, "C", EXPLICIT),
    ("The correct option is (D).", SHAPES, "D", EXPLICIT),
    ("The correct answer is: **B. circle**", SHAPES, "B", EXPLICIT),
    ("Answer: A ... on reflection, the answer is C", SHAPES, "C", EXPLICIT),
    ("The answer is A. Wait, no: the answer is B.", SHAPES, "B", EXPLICIT),
    ("I'd go with B.", SHAPES, "B", EXPLICIT),
    ("I choose (c) because the corners are sharp.", SHAPES, "C", EXPLICIT),
    ("My choice is D.", SHAPES, "D", EXPLICIT),
    ("The best option would be A.", SHAPES, "A", EXPLICIT),
    ("It's option (B).", SHAPES, "B", EXPLICIT),
    ("B is the correct answer.", SHAPES, "B", EXPLICIT),
    ("Looking again, (C) is correct.", SHAPES, "C", EXPLICIT),
    ("Answer - D", SHAPES, "D", EXPLICIT),
    ("The answer is likely (C).", SHAPES, "C", EXPLICIT),
    ("the answer is: option b", SHAPES, "B", EXPLICIT),
    ("The answer is square", SHAPES, "C", EXPLICIT),
    ("The answer is a red circle", SHAPES, "B", EXPLICIT),  # "a" is the article
    ("The answer is a", SHAPES, None, NONE),  # cut short before the noun, maybe
    ("The answer is a.", SHAPES, "A", EXPLICIT),
    ("The answer is A red circle.", ["red circle", "blue star"], "A", EXPLICIT),
    ("The answer is A red circle.", ["blue star", "red circle"], "B", EXPLICIT),
    ("Answer: B circle", SHAPES, "B", EXPLICIT),
    ("The answer is A because it has five points.", SHAPES, "A", EXPLICIT),
    ("The answer is not A; the answer is D.", SHAPES, "D", EXPLICIT),
    ("Final answer: none of the above", COLOURS, "D", EXPLICIT),
    ("答案：B", SHAPES, "B", EXPLICIT),
    ("answer: c square", SHAPES, "C", EXPLICIT),
    ("I think B.", SHAPES, "B", EXPLICIT),
    ("I'd say D, since it has four arms.", SHAPES, "D", EXPLICIT),
    ("So it's (C).", SHAPES, "C", EXPLICIT),
    ("It is V shaped.", SHAPES, None, NONE),  # after a weak cue only a marked letter counts
    ("The answer is I.", NINE, "I", EXPLICIT),
    ("The answer is A or B.", SHAPES, None, AMBIGUOUS),
    ("Answer: B, C", SHAPES, None, AMBIGUOUS),
    ("Answer: E", SHAPES, None, INVALID),
    ("The answer is Z.", None, "Z", EXPLICIT),
    # reasoning and answer blocks
    ("<think>Maybe A. Answer: A</think>The answer is B", SHAPES, "B", EXPLICIT),
    ("<think>It could be C or D.</think>\n\n(B)", SHAPES, "B", LONE),
    ("The shape has corners.</think>D", SHAPES, "D", LONE),
    ("<think>The star has points, so the answer is A", SHAPES, None, NONE),  # cut short
    ("<think>hmm</think><answer>C</answer>", SHAPES, "C", LONE),
    ("Answer: A. <answer>square</answer>", SHAPES, "C", TEXT),
    ("<answer>The answer is (D)</answer>", SHAPES, "D", EXPLICIT),
    # lone letter
    ("B", SHAPES, "B", LONE),
    ("(c)", SHAPES, "C", LONE),
    ("D.", SHAPES, "D", LONE),
    ("B:", SHAPES, "B", LONE),
    ("[A]", SHAPES, "A", LONE),
    ("Option D.", SHAPES, "D", LONE),
    ("a", SHAPES, "A", LONE),  # only a letter: not an article
    ("**B**", SHAPES, "B", LONE),
    ("The object has four equal sides and corners.\n\nC", SHAPES, "C", LONE),
    ("A\nB\nC", SHAPES, None, AMBIGUOUS),
    ("E", SHAPES, None, INVALID),
    ("E", None, "E", LONE),
    ("I", SHAPES, None, INVALID),
    # option text
    ("circle", SHAPES, "B", TEXT),
    ("Circle.", SHAPES, "B", TEXT),
    ("not moving", MOTION, "B", TEXT),
    ("None of the above", COLOURS, "D", TEXT),  # an option's own text, not a refusal
    ("A dog", ["A dog", "a cat"], "A", TEXT),
    ("a cat", ["A dog", "a cat"], "B", TEXT),
    ("A red circle is shown.", SHAPES, "B", TEXT),  # the article is not choice A
    ("A red circle is shown.", None, None, NONE),
    ("a star", SHAPES, "A", TEXT),
    ("circle (B)", SHAPES, "B", TEXT),
    ("It is moving up", MOTION, "C", TEXT),
    ("it is dark red", COLOURS, "B", TEXT),  # "red" inside "dark red" counts once
    ("I think none of the above fits", COLOURS, "D", TEXT),
    ("It is not a star, it's a circle", SHAPES, None, AMBIGUOUS),
    ("star or circle", SHAPES, None, AMBIGUOUS),
    # leading letter
    ("D. cross", SHAPES, "D", LEADING),
    ("(C) The shape with four equal sides.", SHAPES, "C", LEADING),
    ("b) circle", SHAPES, "B", LEADING),
    ("A because it has five points.", SHAPES, "A", LEADING),
    ("B, since it is round.", SHAPES, "B", LEADING),
    ("A - the one with points", SHAPES, "A", LEADING),
    ("Option C: square", SHAPES, "C", LEADING),
    ("B or C", SHAPES, None, AMBIGUOUS),
    ("A. star\nB. circle\nC. square", SHAPES, None, AMBIGUOUS),  # the options read back
    ("E. none of these", SHAPES, None, INVALID),
    # refusal
    ("I cannot determine the shape from this image.", SHAPES, None, REFUSAL),
    ("I'm unable to see the image.", SHAPES, None, REFUSAL),
    ("None of the options match.", SHAPES, None, REFUSAL),
    ("I can't tell whether it is a circle or a square.", SHAPES, None, REFUSAL),
    ("There is not enough information to answer.", SHAPES, None, REFUSAL),
    ("I cannot be sure, but the answer is B.", SHAPES, "B", EXPLICIT),
    # alternatives
    ("It is either A or C.", SHAPES, None, AMBIGUOUS),
    ("Probably (A)/(C).", SHAPES, None, AMBIGUOUS),
    # nothing to read, and what must not be read
    ("triangle", SHAPES, None, NONE),
    ("", SHAPES, None, NONE),
    (None, SHAPES, None, NONE),
    ("Option A is wrong because it has points.", SHAPES, None, NONE),  # a mention, not a pick
    ("I think it is obvious.", SHAPES, None, NONE),  # the pronoun "I" is no choice
    ("I see it.", NINE, None, NONE),
    ("An X-ray of the U.S. flag", SHAPES, None, NONE),
    ("Vitamin B12 is shown", None, None, NONE),
    ("The answer is", SHAPES, None, NONE),
    ("The answer is not A.", SHAPES, None, NONE),
    ("Q: what shape? A: B", SHAPES, None, NONE),  # "A:" could be the option or the answer
]


@pytest.mark.parametrize(("text", "choices", "letter", "method"), CASES)
def test_reads_each_form(text, choices, letter, method):
    got = extract_choice(text, choices)
    assert (got.letter, got.method) == (letter, method), got
    if got.span is not None:
        assert text is not None and text[got.span[0] : got.span[1]] == got.evidence


def test_every_method_has_examples():
    by_method = {m: sum(case[3] is m for case in CASES) for m in Method}
    assert min(by_method.values()) >= 3, by_method
    assert len(CASES) >= 40


def test_evidence_shows_what_decided():
    text = "The circle is round. Answer: A... no, the answer is (B)."
    got = extract_choice(text, SHAPES)
    assert got == Extraction("B", EXPLICIT, "answer is (B)", (42, 55))
    assert text[42:55] == "answer is (B)"
    assert got.answered
    assert extract_choice("I'm unable to see the image.", SHAPES).evidence == "unable to see"
    assert extract_choice("triangle", SHAPES) == Extraction(None, NONE, "", None)
    boxed = extract_choice(r"so $\boxed{\text{C}}$", SHAPES)
    assert boxed.evidence == r"\boxed{\text{C}}" and not extract_choice("E", SHAPES).answered


def test_methods_are_plain_strings():
    assert [str(m) for m in Method] == [
        "boxed",
        "explicit",
        "lone_letter",
        "leading_letter",
        "option_text",
        "refusal",
        "ambiguous",
        "invalid",
        "none",
    ]
    assert Method("lone_letter") is LONE


def test_choice_forms_agree():
    text = "I would say it is the circle."
    as_list = extract_choice(text, SHAPES)
    as_map = extract_choice(text, {"a": "star", "b": "circle", "c": "square", "d": "cross"})
    assert as_list == as_map and as_list.letter == "B"
    assert extract_choice("Answer: D", "ABCD").letter == "D"
    assert extract_choice("Answer: D", "ABC").method is INVALID
    assert extract_choice("Answer: D", "A B C D").letter == "D"
    assert extract_choice("Answer: Q", None).letter == "Q"
    assert extract_choice("B", {"A": "yes", "B": "no"}).letter == "B"
    assert normalize_choices(["x", "y"]) == (("A", "x"), ("B", "y"))
    assert vlmcap.qa.extract_choice is extract_choice


@pytest.mark.parametrize(
    ("choices", "match"),
    [
        ({"AB": "x"}, "not one of A-Z"),
        ({"1": "x"}, "not one of A-Z"),
        ({"a": "x", "A": "y"}, "twice"),
        (["x"] * 27, "27 options"),
    ],
)
def test_choices_that_cannot_be_lettered(choices, match):
    with pytest.raises(ValueError, match=match):
        extract_choice("A", choices)


def test_pathological_text_reads_fast():
    texts = [
        "the answer is " * 10_000,
        "B" + " " * 100_000 + "x",
        "<think>" * 10_000,
        "\\boxed{" * 20_000,
        "A or " * 20_000,
        "star circle " * 20_000,
        "(" * 50_000 + "A" + ")" * 50_000,
        "{" * 5_000 + "\\boxed{A}" + "}" * 5_000,
    ]
    start = time.perf_counter()
    for text in texts:
        extract_choice(text, SHAPES)
    assert time.perf_counter() - start < 20


# -- properties ------------------------------------------------------------------------------

#: Words of option texts: none is a letter, a cue, a refusal or a connective.
VOCAB = [
    "red", "blue", "green", "yellow", "circle", "square", "star", "cross", "triangle", "left",
    "right", "up", "down", "one", "two", "three", "dog", "cat", "car", "tree", "large", "small",
    "moving", "still", "first", "second", "image", "picture", "bright", "dark", "striped",
]  # fmt: skip
#: Words of answers that name no option: no letters, cues, refusals or vocabulary words.
FILLER = [
    "the", "shape", "seems", "quite", "clear", "here", "looks", "like", "something", "object",
    "visible", "maybe", "hmm", "well", "colour", "is", "in", "this", "scene", "it", "has",
]  # fmt: skip
#: Pieces that stress the parser: letters, cues, brackets, tags, boxes, refusals.
FRAGMENTS = [
    "A", "B", "E", "I", "Z", "a", "(C)", "[D]", "Answer:", "the answer is", "is correct",
    "or", "/", "\\boxed{", "}", "<answer>", "</answer>", "<think>", "</think>", "\n", " ",
    ".", ",", "cannot determine", "none of the options", "red", "circle", "not", "**", "$",
]  # fmt: skip

#: Generated cases run on shared machines: no per-example deadline.
UNTIMED = settings(deadline=None)
option_text = st.lists(st.sampled_from(VOCAB), min_size=1, max_size=3).map(" ".join)
option_lists = st.lists(option_text, min_size=2, max_size=10, unique=True)


@st.composite
def options_and_letter(draw: st.DrawFn) -> tuple[list[str], str]:
    options = draw(option_lists)
    return options, draw(st.sampled_from(ALPHABET[: len(options)]))


#: Every declared form an answer takes; {L} the letter, {l} lowercase, {T} its option's text.
FORMS = [
    "{L}", "{l}", "({L})", "({l})", "{L}.", "[{L}]", "Option {L}", "**{L}**",
    "\\boxed{{{L}}}", "$\\boxed{{\\text{{{L}}}}}$", "\\boxed{{{T}}}", "\\boxed{{({L}) {T}}}",
    "Answer: {L}", "answer: {l}.", "Answer: ({l})", "**Answer:** {L}", "The answer is ({L}).",
    "The answer is {l}.",
    "The correct option is {L}.", "The correct answer is {L}. {T}", "Final answer: {L}",
    "I choose {L}.", "{L} is the correct answer.", "It's option ({L}).", "答案：{L}",
    "{L}. {T}", "({L}) {T}", "{l}) {T}", "{L} because of the {T}",
    "Looking at the image carefully.\n\n{L}", "<answer>{L}</answer>", "<answer>{T}</answer>",
    "The answer is {T}.", "{T}", "Answer: A ... on reflection, the answer is {L}",
]  # fmt: skip


TEN = [" ".join(pair) for pair in zip(VOCAB[:10], VOCAB[10:20], strict=True)]


@pytest.mark.parametrize("form", FORMS)
def test_each_form_reads_every_letter(form):
    for count in (2, 4, 10):
        options = TEN[:count]
        for index, letter in enumerate(ALPHABET[:count]):
            text = form.format(L=letter, l=letter.lower(), T=options[index])
            assert extract_choice(text, options).letter == letter, text
            if "{T}" not in form:
                assert extract_choice(text, ALPHABET[:count]).letter == letter, text


@UNTIMED
@given(options_and_letter(), st.sampled_from(FORMS))
def test_each_declared_form_reads_its_letter(case, form):
    options, letter = case
    text = form.format(L=letter, l=letter.lower(), T=options[ALPHABET.index(letter)])
    assert extract_choice(text, options).letter == letter, text
    if "{T}" not in form:  # without option texts the letter alone decides
        assert extract_choice(text, ALPHABET[: len(options)]).letter == letter, text


@UNTIMED
@given(options_and_letter(), st.sampled_from([str, str.upper, str.title]), st.sampled_from("!. "))
def test_an_answer_that_is_an_option_text_picks_it(case, casing, end):
    options, letter = case
    text = casing(options[ALPHABET.index(letter)]) + end
    got = extract_choice(text, options)
    assert (got.letter, got.method) == (letter, TEXT), text


@UNTIMED
@given(option_lists, st.text(st.characters(exclude_categories=("L",))))
def test_text_without_letters_reads_nothing(options, text):
    assert extract_choice(text, options).method is NONE
    assert extract_choice(text, None).method is NONE


@UNTIMED
@given(option_lists, st.lists(st.sampled_from(FILLER), max_size=12), st.sampled_from(".?\n "))
def test_sentences_naming_no_option_read_nothing(options, words, end):
    text = " ".join(words) + end
    if not set(words) & {w for option in options for w in option.split()}:
        assert extract_choice(text, options).method is NONE, text


@UNTIMED
@given(st.integers(1, 26), st.lists(st.sampled_from(FRAGMENTS + VOCAB), max_size=30), st.text())
def test_never_a_letter_outside_the_choices(count, pieces, noise):
    valid = ALPHABET[:count]
    for text in (" ".join(pieces), "".join(pieces), noise + " ".join(pieces)):
        letter = extract_choice(text, valid).letter
        assert letter is None or letter in valid, text


think_noise = st.lists(
    st.sampled_from([f for f in FRAGMENTS if "<" not in f] + ["A or B", "the answer is D"]),
    max_size=20,
).map(" ".join)
answers = st.one_of(
    st.tuples(options_and_letter(), st.sampled_from(FORMS)).map(
        lambda c: c[1].format(L=c[0][1], l=c[0][1].lower(), T=c[0][0][ALPHABET.index(c[0][1])])
    ),
    st.lists(st.sampled_from(FRAGMENTS + VOCAB), max_size=20).map(" ".join),
    st.text(),
).filter(lambda text: "think" not in text.lower())


@UNTIMED
@given(option_lists, think_noise, answers)
def test_reasoning_before_the_answer_changes_nothing(options, noise, answer):
    alone = extract_choice(answer, options)
    after = extract_choice(f"<think>{noise}</think>\n{answer}", options)
    assert (after.letter, after.method, after.evidence) == (
        alone.letter,
        alone.method,
        alone.evidence,
    )


@given(
    st.text(),
    st.one_of(st.none(), st.lists(st.text(), max_size=8), st.text(string.ascii_letters)),
)
@settings(max_examples=300, deadline=None)
def test_never_raises_and_evidence_is_the_span(text, choices):
    try:
        pairs = normalize_choices(choices)
    except ValueError:
        return
    got = extract_choice(text, choices)
    assert isinstance(got, Extraction)
    if got.span is None:
        assert got.method is NONE and got.evidence == ""
    else:
        assert text[got.span[0] : got.span[1]] == got.evidence
    deciding = {BOXED, EXPLICIT, LONE, LEADING, TEXT}
    assert (got.letter is not None) == (got.method in deciding)
    assert got.letter is None or got.letter in {letter for letter, _ in pairs}


@UNTIMED
@given(options_and_letter(), options_and_letter())
def test_the_last_declaration_wins(first, last):
    options, early = first
    late = last[1] if last[1] in ALPHABET[: len(options)] else "A"
    text = f"Answer: {early}. Looking again at the image, the correct answer is ({late})."
    assert extract_choice(text, options).letter == late


@UNTIMED
@given(st.sampled_from(VOCAB), st.sampled_from(VOCAB), st.sampled_from(["is shown.", "moves."]))
def test_an_article_is_not_choice_a(first, second, rest):
    text = f"A {first} {second} {rest}"
    assert extract_choice(text, "ABCD").letter is None
    assert extract_choice(f"The answer is a {first} {second}.", "ABCD").letter is None
