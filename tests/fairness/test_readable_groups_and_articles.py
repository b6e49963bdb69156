"""Counterfactual texts keep their article grammatical; group labels of different slots stay distinct."""
from __future__ import annotations

import pandas as pd
import pytest

from raikit.fairness.classifier import SwapList, _group_column, counterfactuals
from raikit.fairness.templates import indefinite_article

RACE = SwapList(axis="race", groups=("asian", "caucasian"), tuples=(("Asian", "Caucasian"),))


@pytest.mark.parametrize("text,expected", [
    ("An Asian person said hi.", "A Caucasian person said hi."),
    ("a Caucasian person and an Asian one", "an Asian person and a Caucasian one"),
    ("She is Asian.", "She is Caucasian."),  # no article: the word alone changes
    ("The data says Asian.", "The data says Caucasian."),  # "a" inside a word is no article
])
def test_swaps_rechoose_the_article(text, expected):
    assert [c["counterfactual"] for c in counterfactuals(text, [RACE])] == [expected]


def test_indefinite_article_follows_the_sound():
    words = ("Asian", "Caucasian", "hour", "unicorn", "umbrella", "European", "Ukrainian", "Indian", "old", "one")
    assert [indefinite_article(w) for w in words] == ["an", "a", "an", "a", "an", "a", "a", "an", "an", "a"]


def test_groups_of_different_slots_that_look_alike_are_named_with_their_slot():
    frame = pd.DataFrame({"person_group": ["male", "female", None, None],
                          "identity_group": [None, None, "gender_male", "disability_disabled"]})
    assert _group_column(frame).tolist() == ["person_male", "female", "gender_male", "disability_disabled"]
    same = pd.DataFrame({"a_group": ["x", None], "b_group": [None, "x"]})
    assert _group_column(same).tolist() == ["a_x", "b_x"]
    alone = pd.DataFrame({"person_group": ["male", "female"]})  # one slot: names unchanged
    assert _group_column(alone).tolist() == ["male", "female"]
