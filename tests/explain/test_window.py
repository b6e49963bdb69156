"""Texts longer than the model's token window (issue 15): the words it never reads are counted and reported."""
from __future__ import annotations

from conftest import FILLER, PLANTED

from raikit.audits.sections import RunContext
from raikit.explain import SECTION, ExplainOptions


def test_words_beyond_the_window_are_counted_per_text_and_noted(planted_classifier):
    assert planted_classifier.max_length == 128  # [CLS] + 126 words + [SEP] with this whole-word tokenizer
    long_text = " ".join(FILLER[i % len(FILLER)] for i in range(299)) + f" {PLANTED}"
    short_text = f"the cat sat on the {PLANTED} mat"
    options = ExplainOptions(methods=["attention"], texts=[long_text, short_text], random_baseline=False)
    result = SECTION.run(planted_classifier, options, RunContext(progress=False))
    long_entry, short_entry = result.details["texts"]
    assert len(long_entry["words"]) == 300
    assert long_entry["words_beyond_window"] == 300 - 126 and long_entry["window_tokens"] == 128
    assert short_entry["words_beyond_window"] == 0
    assert [n for n in result.notes if "beyond" in n] == [
        "text 0: 174 of 300 words lie beyond the model's 128-token window; the model never reads them, "
        "so they get no attribution."]
