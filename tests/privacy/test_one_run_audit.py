"""The one-run audit of Steinke, Nasr and Jagielski (2023): known answers on mechanisms of known epsilon."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from raikit.privacy._one_run import one_run_audit, one_run_epsilon, one_run_p_value, perfect_attack_bound


def test_p_value_without_delta_is_the_binomial_tail():
    # delta = 0: P[Binomial(r, e^eps/(1+e^eps)) >= v] (their Theorem 3.1)
    q = math.exp(1.0) / (1 + math.exp(1.0))
    assert one_run_p_value(m=100, r=40, v=35, epsilon=1.0, delta=0.0) == pytest.approx(stats.binom.sf(34, 40, q))
    assert one_run_p_value(m=100, r=40, v=35, epsilon=1.0, delta=1e-3) > one_run_p_value(
        m=100, r=40, v=35, epsilon=1.0, delta=0.0)


def test_the_bound_is_the_epsilon_at_which_the_p_value_reaches_the_level():
    eps = one_run_epsilon(m=200, r=100, v=90, delta=1e-5)
    assert one_run_p_value(m=200, r=100, v=90, epsilon=eps - 1e-3, delta=1e-5) < 0.05
    assert one_run_p_value(m=200, r=100, v=90, epsilon=eps + 1e-3, delta=1e-5) >= 0.05
    assert one_run_epsilon(m=200, r=100, v=50, delta=1e-5) == 0.0  # chance-level guessing proves nothing


def test_perfect_attack_bound_of_r_right_guesses():
    # every one of r guesses right, delta 0: q^r = level, so eps = logit(level^(1/r)) at the largest guess count
    level = 0.05 / 4  # Bonferroni over the four guess counts
    q = level ** (1 / 100)
    assert perfect_attack_bound(100, delta=0.0) == pytest.approx(math.log(q / (1 - q)), abs=1e-6)
    assert perfect_attack_bound(20, delta=1e-5) < perfect_attack_bound(200, delta=1e-5)


def test_a_memorising_mechanism_gives_a_bound_well_above_one():
    rng = np.random.default_rng(0)
    inserted = rng.random(200) < 0.5
    scores = inserted + rng.normal(0, 0.05, 200)  # the attack tells inserted canaries apart perfectly
    audit = one_run_audit(scores, inserted, delta=1e-5)
    assert audit.epsilon_lower_bound > 2.5 and audit.correct == audit.guesses
    assert audit.epsilon_lower_bound <= audit.perfect_attack_bound


def test_an_epsilon_one_mechanism_is_bounded_by_one_at_the_stated_confidence():
    """Randomised response at epsilon 1 is the worst case for this audit (its guesses are right with probability
    e/(1+e) exactly): over 200 seeded audits the bound exceeds 1 in at most 5% of them, and never by much."""
    rng = np.random.default_rng(1)
    bounds = []
    for _ in range(200):
        inserted = rng.random(100) < 0.5
        truthful = rng.random(100) < math.e / (1 + math.e)
        scores = np.where(inserted == truthful, 1.0, 0.0) + rng.random(100) * 1e-6
        bounds.append(one_run_audit(scores, inserted, delta=1e-5).epsilon_lower_bound)
    bounds = np.array(bounds)
    assert (bounds > 1.0).mean() <= 0.05 and bounds.max() < 1.6
    assert np.median(bounds) > 0.1  # the audit is not vacuous: it sees most of the mechanism's leak
