"""SHAP efficiency, the planted-word known answer, lockstep batching and rollout."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import PLANTED

from raikit.explain import (
    EXPLAINERS, ExplainSettings, explain, faithfulness, rollout, shap_token_values,
)
from raikit.explain._batching import run_in_lockstep

SETTINGS = ExplainSettings(shap_max_evals=200, lime_num_samples=300, seed=0)


def test_registry_names():
    assert {"shap", "lime", "attention", "rollout", "random"} <= set(EXPLAINERS.names())


def test_shap_efficiency_on_real_outputs(planted_classifier, planted_test_texts):
    """base value + sum of word attributions == model probability, for every class (tolerance 1e-5)."""
    texts = planted_test_texts[0][:6]
    explanations = explain(planted_classifier, texts, method="shap", settings=SETTINGS)
    probs = planted_classifier.predict_proba(texts)
    for e, p in zip(explanations, probs):
        assert e.base_values is not None
        np.testing.assert_allclose(e.base_values + e.attributions.sum(axis=0), p, atol=1e-5)
        np.testing.assert_allclose(e.probabilities, p)
    # the attributions are far from trivial: the planted texts move the probability a lot
    assert max(np.abs(e.attributions).max() for e in explanations) > 0.3


def test_planted_word_ranks_first(planted_classifier, planted_test_texts):
    texts, labels = planted_test_texts
    positives = [t for t, y in zip(texts, labels) if y][:12]
    scores = {}
    for method in ("shap", "lime", "rollout", "random"):
        explanations = explain(planted_classifier, positives, method=method, settings=SETTINGS)
        hits = np.mean([e.words[e.ranking()[0]] == PLANTED for e in explanations])
        if method != "random":
            assert hits >= 0.9, f"{method} ranked {PLANTED!r} first on only {hits:.0%} of the texts"
        scores[method] = np.mean([f.comprehensiveness for f in faithfulness(explanations,
                                                                          planted_classifier.predict_proba)])
    for method in ("shap", "lime", "rollout"):
        assert scores[method] > scores["random"] + 0.3, scores


def test_lockstep_matches_one_by_one(planted_classifier, planted_test_texts):
    texts = planted_test_texts[0][:5]
    planted_classifier.clear_cache()
    together = shap_token_values(planted_classifier, texts, max_evals=100, group_size=8)
    planted_classifier.clear_cache()
    alone = shap_token_values(planted_classifier, texts, max_evals=100, group_size=1)
    for a, b in zip(together, alone):
        assert a.offsets == b.offsets
        np.testing.assert_allclose(a.values, b.values, atol=1e-6)
        np.testing.assert_allclose(a.base_values, b.base_values, atol=1e-6)


def test_lockstep_shares_batches():
    calls = []

    def predict(texts):
        calls.append(list(texts))
        return np.array([[len(t), 1.0] for t in texts])

    def work(word, fn):
        first = fn([word, word + "!"])
        second = fn([word * 2])
        return float(first[1, 0] + second[0, 0])

    out = run_in_lockstep(["a", "bb", "ccc"], work, predict, group_size=8)
    assert out == [2 + 2, 3 + 4, 4 + 6]
    assert [len(c) for c in calls] == [6, 3]     # every round of calls went to the model once
    calls.clear()
    assert run_in_lockstep(["a", "bb", "ccc"], work, predict, group_size=1) == out
    assert len(calls) == 6


def test_lockstep_propagates_errors():
    def predict(texts):
        raise RuntimeError("model exploded")

    with pytest.raises(RuntimeError, match="exploded"):
        run_in_lockstep(["a", "b"], lambda item, fn: fn([item]), predict, group_size=4)


def test_an_interrupt_while_waiting_stops_every_thread_before_it_is_raised():
    """Issue 22.7: SIGTERM (raised in the main thread while it waits on the group) must leave no thread running:
    a thread still inside the model when the interpreter exits aborts the process (exit 134, not 143)."""
    import signal
    import threading
    import time

    started = threading.Event()

    def predict(texts):
        started.set()
        time.sleep(0.05)  # a forward pass
        return np.ones((len(texts), 2))

    def work(item, fn):
        for _ in range(400):  # many model calls per text, as LIME and SHAP make
            fn([item])
        return item

    class Stop(Exception):
        pass

    def on_alarm(signum, frame):
        raise Stop

    before = {t.ident for t in threading.enumerate()}
    previous = signal.signal(signal.SIGALRM, on_alarm)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        with pytest.raises(Stop):
            run_in_lockstep([f"t{i}" for i in range(6)], work, predict, group_size=6)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert started.is_set()
    left = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    assert left == []  # every worker ended before the exception reached the caller


def test_rollout_known_answer():
    # two layers, one head, 2 tokens; hand computation of (A + I) / rowsum multiplied over layers
    layer1 = np.array([[[0.0, 1.0], [0.0, 1.0]]])
    layer2 = np.array([[[1.0, 0.0], [0.5, 0.5]]])
    a1 = np.array([[0.5, 0.5], [0.0, 1.0]])
    a2 = np.array([[1.0, 0.0], [0.25, 0.75]])
    np.testing.assert_allclose(rollout(np.stack([layer1, layer2])), a2 @ a1)
    np.testing.assert_allclose(rollout(np.stack([layer1, layer2])).sum(axis=1), 1.0)


def test_random_baseline_is_seeded(planted_classifier):
    a = explain(planted_classifier, ["the cat sat"], method="random", settings=ExplainSettings(seed=1))[0]
    b = explain(planted_classifier, ["the cat sat"], method="random", settings=ExplainSettings(seed=1))[0]
    c = explain(planted_classifier, ["the cat sat"], method="random", settings=ExplainSettings(seed=2))[0]
    np.testing.assert_array_equal(a.attributions, b.attributions)
    assert not np.array_equal(a.attributions, c.attributions)
