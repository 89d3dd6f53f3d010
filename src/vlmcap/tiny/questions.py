"""Multiple-choice questions about synthetic scenes, with known answers.

One scene: its colour, shape, count or motion (four options, chance 25 %). Two scenes shown in
one prompt: which of them shows a description (two options), or what the shape in picture 1 or
2 looks like (four options), so that images given in the wrong order get wrong answers.

    q = make_question(SceneSpec("red", "circle"), random.Random(0), ("shape",))
    q["prompt"]  # "What shape is the red object?\nA. star\nB. circle\n..."
    q["answer"], q["answer_text"]  # "B", "circle"
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from vlmcap.tiny.model import COLOURS, DIRECTIONS, SHAPES
from vlmcap.tiny.synthetic import COUNT_WORDS, SceneSpec, random_scene

CATEGORIES = ("colour", "shape", "count", "direction")
LETTERS = "ABCD"
#: The last line of every question prompt: a model may answer with the letter, the option's text
#: or both (``vlmcap.qa.choices.extract_choice`` reads any of them).
ANSWER_INSTRUCTION = "Answer with the correct option."


def make_question(
    spec: SceneSpec, rng: random.Random, categories: Sequence[str] = CATEGORIES
) -> dict[str, Any]:
    """A four-option multiple-choice question about ``spec`` (so chance is 25%).

    Returns ``question``, ``options`` (four distinct strings, in A-D order), ``answer`` (the
    letter), ``answer_text``, ``category`` and ``prompt`` (question, lettered options and the
    instruction, ready for a model). Leave ``direction`` out of ``categories`` for images.
    """
    category = rng.choice(list(categories))
    be = "is" if spec.count == 1 else "are"
    pool: Sequence[str]
    if category == "colour":
        question, answer, pool = f"What colour {be} the {spec.noun()}?", spec.colour, COLOURS
    elif category == "shape":
        thing = "object" if spec.count == 1 else "objects"
        question, answer, pool = f"What shape {be} the {spec.colour} {thing}?", spec.shape, SHAPES
    elif category == "count":
        question, answer = "How many shapes are there?", COUNT_WORDS[spec.count - 1]
        pool = COUNT_WORDS  # four words: the options are all of them
    elif category == "direction":
        words = tuple("not moving" if d == "still" else d for d in DIRECTIONS)
        answer = "not moving" if spec.direction == "still" else spec.direction
        question, pool = f"Which way {be} the {spec.colour} {spec.noun()} moving?", words
    else:
        raise ValueError(f"category must be one of {CATEGORIES}, got {category!r}")
    return _four_options(question, answer, pool, category, rng)


def _four_options(
    question: str, answer: str, pool: Sequence[str], category: str, rng: random.Random
) -> dict[str, Any]:
    options = [answer, *rng.sample([p for p in pool if p != answer], 3)]
    rng.shuffle(options)
    letter = LETTERS[options.index(answer)]
    lines = [question, *(f"{k}. {o}" for k, o in zip(LETTERS, options, strict=True))]
    lines.append(ANSWER_INSTRUCTION)
    return {
        "question": question,
        "options": options,
        "answer": letter,
        "answer_text": answer,
        "category": category,
        "prompt": "\n".join(lines),
    }


PAIR_OPTIONS = ("the first image", "the second image")


def random_pair(
    rng: random.Random, differ: str | None = None, **scene_kwargs: Any
) -> tuple[SceneSpec, SceneSpec]:
    """Two still scenes whose descriptions differ (so "which one shows X" has one answer).

    ``differ`` ("colour", "shape" or "count") makes the second scene the first with only that
    attribute changed (and its own placement), so telling them apart needs that attribute.
    """
    first = random_scene(rng, video=False, **scene_kwargs)
    if differ is not None:
        if differ not in ("colour", "shape", "count"):
            raise ValueError(f"differ must be colour, shape or count, got {differ!r}")
        pool: Sequence[Any] = {"colour": COLOURS, "shape": SHAPES, "count": (1, 2, 3)}[differ]
        value = rng.choice([v for v in pool if v != getattr(first, differ)])
        return first, replace(first, **{differ: value, "seed": rng.randrange(2**31)})
    while True:
        second = random_scene(rng, video=False, **scene_kwargs)
        if second.description() != first.description():
            return first, second


def make_pair_question(
    first: SceneSpec, second: SceneSpec, rng: random.Random, target: int | None = None
) -> dict[str, Any]:
    """A two-option question over two images shown in one prompt: which one shows X?

    X is the full description of one of them (``target``: 0 or 1, random when ``None``), so the
    images must differ in colour, shape or count. Returns the same keys as ``make_question``
    (``category`` is ``"pair"``); the answer is ``A`` for the first image, ``B`` for the second.
    """
    if first.description() == second.description():
        raise ValueError(f"both images show {first.description()!r}; the question needs two")
    index = rng.randrange(2) if target is None else target
    if index not in (0, 1):
        raise ValueError(f"target must be 0 or 1, got {target}")
    shown = (first, second)[index].description()
    question = f"Which image shows {shown}?"
    lines = [question, *(f"{k}. {o}" for k, o in zip(LETTERS, PAIR_OPTIONS, strict=False))]
    lines.append(ANSWER_INSTRUCTION)
    return {
        "question": question,
        "options": list(PAIR_OPTIONS),
        "answer": LETTERS[index],
        "answer_text": PAIR_OPTIONS[index],
        "category": "pair",
        "prompt": "\n".join(lines),
    }


PICTURE_CATEGORIES = ("colour", "shape")


def make_picture_question(
    first: SceneSpec,
    second: SceneSpec,
    rng: random.Random,
    picture: int | None = None,
    attribute: str | None = None,
) -> dict[str, Any]:
    """A four-option question about one of two images shown in one prompt: "What colour is
    the shape in picture 2?" (``picture``: 1 or 2; ``attribute``: colour or shape; random when
    ``None``). The prompt's images are labelled "Picture 1", "Picture 2" by the chat template;
    sent in the wrong order, the question is answered about the other image. ``category`` is
    ``"picture"``."""
    index = rng.choice((1, 2)) if picture is None else picture
    if index not in (1, 2):
        raise ValueError(f"picture must be 1 or 2, got {picture}")
    attribute = rng.choice(PICTURE_CATEGORIES) if attribute is None else attribute
    spec = (first, second)[index - 1]
    pool: Sequence[str]
    be, thing = ("is", "object") if spec.count == 1 else ("are", "objects")
    if attribute == "colour":
        answer, pool = spec.colour, COLOURS
    elif attribute == "shape":
        answer, pool = spec.shape, SHAPES
    else:
        raise ValueError(f"attribute must be one of {PICTURE_CATEGORIES}, got {attribute!r}")
    question = f"What {attribute} {be} the {thing} in picture {index}?"
    return _four_options(question, answer, pool, "picture", rng)
