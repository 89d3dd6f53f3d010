"""The QA task's own logic: rotations of circular mode and the plan of what is left to ask."""

from __future__ import annotations

from pathlib import Path

from vlmcap.qa.dataset import Question
from vlmcap.tasks.qa import original_letter, pass_key, rotated


def question(n: int = 4) -> Question:
    letters = "ABCD"[:n]
    return Question(
        qid="q",
        question="Which?",
        choices={letter: f"opt{letter}" for letter in letters},
        answer="B",
        raw_answer="B",
        images=(Path("a.png"),),
        image_keys=("a.png",),
        category=None,
        source=None,
        hint=None,
        row=1,
    )


def test_every_pass_shows_every_option_once_in_a_new_place():
    q = question()
    shown = [rotated(q, k) for k in range(4)]
    assert shown[0] == q.choices
    for letter in "ABCD":
        assert sorted(s[letter] for s in shown) == sorted(q.choices.values())
    assert [s["A"] for s in shown] == ["optA", "optB", "optC", "optD"]


def test_a_letter_read_in_a_pass_maps_back_to_the_options_own_letter():
    q = question()
    for k in range(4):
        shown = rotated(q, k)
        for letter, text in shown.items():
            back = original_letter(q, letter, k)
            assert q.choices[back] == text  # the same option, whatever place it was shown in


def test_pass_keys_name_the_question_and_the_pass():
    assert [pass_key("q7", k) for k in range(2)] == ["q7#0", "q7#1"]
