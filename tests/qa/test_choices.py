import pytest

from vlmcap.qa.choices import extract_choice

SHAPES = ["star", "circle", "square", "cross"]
MOTION = ["left", "not moving", "up", "down"]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("circle", "B"),
        ("Circle.", "B"),
        ("B", "B"),
        ("(C)", "C"),
        ("D. cross", "D"),
        ("circle (B)", "B"),
        ("The answer is square", "C"),
        ("The answer is (D).", "D"),
        ("<think>A or B?</think>\n\\boxed{A}", "A"),
        ("not moving", "B"),
        ("It is moving up", "C"),
    ],
)
def test_reads_letters_and_option_texts(answer, expected):
    options = MOTION if answer in ("not moving", "It is moving up") else SHAPES
    assert extract_choice(answer, options) == expected


@pytest.mark.parametrize("answer", ["", None, "triangle", "star or circle", "A or B", "E"])
def test_no_single_choice_is_none(answer):
    assert extract_choice(answer, SHAPES) is None


def test_an_option_inside_another_counts_once():
    assert extract_choice("it is dark red", ["red", "dark red", "blue", "green"]) == "B"


def test_lowercase_article_is_not_a_letter():
    assert extract_choice("a star", SHAPES) == "A"  # the option text, not the article
    assert extract_choice("a circle", SHAPES) == "B"


def test_too_many_options_for_the_letters():
    with pytest.raises(ValueError, match="letters"):
        extract_choice("x", ["a", "b", "c"], letters="AB")
