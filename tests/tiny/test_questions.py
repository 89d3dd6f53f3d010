import random

import pytest

from vlmcap.qa.choices import extract_choice
from vlmcap.tiny.model import DIRECTIONS
from vlmcap.tiny.questions import (
    ANSWER_INSTRUCTION,
    LETTERS,
    PAIR_OPTIONS,
    make_pair_question,
    make_picture_question,
    make_question,
    random_pair,
)
from vlmcap.tiny.synthetic import SceneSpec, random_scene


def test_questions_have_four_distinct_options_and_the_right_letter():
    rng = random.Random(0)
    letters, categories = set(), set()
    for _ in range(300):
        spec = random_scene(rng)
        q = make_question(spec, rng)
        assert len(q["options"]) == 4 and len(set(q["options"])) == 4
        assert q["options"][LETTERS.index(q["answer"])] == q["answer_text"]
        truth = {
            "colour": spec.colour,
            "shape": spec.shape,
            "count": ("one", "two", "three")[spec.count - 1],
            "direction": "not moving" if spec.direction == "still" else spec.direction,
        }[q["category"]]
        assert q["answer_text"] == truth
        assert q["prompt"].startswith(q["question"]) and f"{q['answer']}. {truth}" in q["prompt"]
        letters.add(q["answer"])
        categories.add(q["category"])
    assert letters == set(LETTERS)
    assert categories == {"colour", "shape", "count", "direction"}
    image_q = make_question(SceneSpec("red", "circle"), rng, categories=("colour", "shape"))
    assert image_q["category"] in ("colour", "shape")
    words = {"not moving" if d == "still" else d for d in DIRECTIONS}
    moving_q = make_question(SceneSpec("red", "circle", "left"), rng, ("direction",))
    assert moving_q["answer_text"] == "left" and set(moving_q["options"]) <= words


def test_every_question_reads_back_through_extract_choice():
    rng = random.Random(1)
    for _ in range(100):
        first, second = random_pair(rng)
        for q in (
            make_question(first, rng),
            make_pair_question(first, second, rng),
            make_picture_question(first, second, rng),
        ):
            assert q["prompt"].endswith(ANSWER_INSTRUCTION)
            assert extract_choice(q["answer_text"], q["options"]) == q["answer"]
            assert extract_choice(q["answer"], q["options"]) == q["answer"]


def test_which_image_question_names_one_of_the_two():
    rng = random.Random(2)
    first, second = SceneSpec("red", "circle"), SceneSpec("blue", "star", count=2)
    q = make_pair_question(first, second, rng, target=1)
    assert q["question"] == "Which image shows two blue stars?"
    assert q["options"] == list(PAIR_OPTIONS) and q["answer"] == "B"
    with pytest.raises(ValueError, match="both images"):
        make_pair_question(first, first, rng)


def test_picture_questions_ask_about_the_named_picture():
    rng = random.Random(3)
    first, second = SceneSpec("red", "circle"), SceneSpec("blue", "star", count=2)
    q = make_picture_question(first, second, rng, picture=2, attribute="colour")
    assert q["question"] == "What colour are the objects in picture 2?"
    assert q["answer_text"] == "blue" and q["category"] == "picture"
    q = make_picture_question(first, second, rng, picture=1, attribute="shape")
    assert q["question"] == "What shape is the object in picture 1?"
    assert q["answer_text"] == "circle"
    with pytest.raises(ValueError, match="picture must be 1 or 2"):
        make_picture_question(first, second, rng, picture=3)
    with pytest.raises(ValueError, match="attribute"):
        make_picture_question(first, second, rng, attribute="count")


@pytest.mark.parametrize("differ", ["colour", "shape", "count"])
def test_pairs_that_differ_in_one_attribute(differ):
    rng = random.Random(4)
    for _ in range(20):
        first, second = random_pair(rng, differ)
        changed = [
            name
            for name in ("colour", "shape", "count")
            if getattr(first, name) != getattr(second, name)
        ]
        assert changed == [differ]
