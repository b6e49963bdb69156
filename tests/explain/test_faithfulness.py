"""Comprehensiveness, sufficiency, AOPC and agreement against hand computations."""
from __future__ import annotations

import numpy as np
import pytest

from raikit.explain import Explanation, agreement, bootstrap_ci, faithfulness, remove_words, top_k_for, word_spans

WEIGHTS = {"good": 0.4, "fine": 0.3, "nice": 0.1}


def predict(texts):
    """p(positive) = 0.1 + the weights of the words present: a hand-computable classifier."""
    out = []
    for t in texts:
        words = set(t.split())
        p = 0.1 + sum(w for word, w in WEIGHTS.items() if word in words)
        out.append([1 - p, p])
    return np.array(out)


def _explanation(text, scores, method="hand"):
    spans = word_spans(text)
    probs = predict([text])[0]
    attributions = np.stack([-np.asarray(scores, float), np.asarray(scores, float)], axis=1)
    return Explanation(text=text, words=tuple(text[s:e] for s, e in spans), spans=tuple(spans),
                       attributions=attributions, predicted=int(probs.argmax()), probabilities=probs,
                       labels=("negative", "positive"), method=method)


def test_top_k_bins():
    assert [top_k_for(q, 4) for q in (0.01, 0.05, 0.1, 0.2, 0.5)] == [1, 1, 1, 1, 2]
    assert [top_k_for(q / 10, 4) for q in range(1, 11)] == [1, 1, 2, 2, 2, 3, 3, 4, 4, 4]
    assert top_k_for(0.5, 1) == 1 and top_k_for(1.0, 7) == 7


def test_remove_words():
    text = "good,  fine ok nice"
    spans = word_spans(text)
    assert remove_words(text, spans, [1]) == "good fine ok nice"
    assert remove_words(text, spans, [0, 1, 2]) == "ok nice"
    assert remove_words(text, spans, range(5)) == ""


def test_faithfulness_hand_computation():
    # ranking: good (3) > fine (2) > nice (1) > ok (0); full p(positive) = 0.9
    e = _explanation("good fine ok nice", [3, 2, 0, 1])
    assert e.predicted == 1
    [f] = faithfulness([e], predict)
    # ERASER bins with 4 words: k = 1, 1, 1, 1, 2; each distinct k once: {1, 2}
    # comprehensiveness: remove good -> 0.5 (0.4); remove good, fine -> 0.2 (0.7)
    assert f.ks == (1, 2)
    assert f.comprehensiveness_curve == pytest.approx([0.4, 0.7])
    assert f.comprehensiveness == pytest.approx((0.4 + 0.7) / 2)
    # sufficiency: keep good -> 0.5 (0.4); keep good, fine -> 0.8 (0.1)
    assert f.sufficiency == pytest.approx((0.4 + 0.1) / 2)
    # ERASER's AOPC is comprehensiveness over the same bins
    assert f.aopc == pytest.approx(f.comprehensiveness)
    # deletion curve 10..100%: k = 1,1,2,2,2,3,3,4,4,4 -> distinct {1, 2, 3, 4}: drops 0.4, 0.7, 0.8, 0.8
    assert f.deletion_ks == (1, 2, 3, 4)
    assert f.deletion_area == pytest.approx((0.4 + 0.7 + 0.8 + 0.8) / 4)


def test_better_explanations_score_better():
    good = _explanation("good fine ok nice", [3, 2, 0, 1])
    bad = _explanation("good fine ok nice", [0, 1, 3, 2])
    fg, fb = faithfulness([good, bad], predict)
    assert fg.comprehensiveness > fb.comprehensiveness
    assert fg.sufficiency < fb.sufficiency
    assert fg.aopc > fb.aopc and fg.deletion_area > fb.deletion_area


def test_agreement_hand_computation():
    a = _explanation("good fine ok nice", [3, 2, 1, 0])
    b = _explanation("good fine ok nice", [0, 1, 2, 3])
    c = _explanation("good fine ok nice", [30, 20, 10, 0])
    taus, overlaps = agreement([a, a], [b, c], top_k=2)
    np.testing.assert_allclose(taus, [-1.0, 1.0])
    np.testing.assert_allclose(overlaps, [0.0, 1.0])
    taus, _ = agreement([a], [b], top_k=2, on="magnitude")
    np.testing.assert_allclose(taus, [-1.0])
    flat = _explanation("good fine ok nice", [1, 1, 1, 1])
    taus, _ = agreement([a], [flat], top_k=2)
    assert np.isnan(taus[0])


def test_bootstrap_ci():
    assert bootstrap_ci([0.5]) is None
    assert bootstrap_ci([0.2, 0.2, 0.2]) == (0.2, 0.2)
    low, high = bootstrap_ci(np.linspace(0, 1, 50), seed=0)
    assert low < 0.5 < high and high - low < 0.4
