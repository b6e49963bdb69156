"""Known answers for the privacy arithmetic: accountant vs an independent one, attack metrics, bounds."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from raikit.privacy import clopper_pearson, default_delta, empirical_epsilon, evaluate_attack, lira_scores, loss_scores


@pytest.mark.parametrize("sample_rate,steps,target", [(0.107, 28, 8.0), (0.05, 100, 1.0)])
@pytest.mark.parametrize("accountant", ["prv", "rdp"])
def test_opacus_epsilon_matches_google_dp_accounting(sample_rate, steps, target, accountant):
    """The noise Opacus calibrates, re-accounted by Google's dp-accounting (PLD), gives the same epsilon within 2%."""
    dp_accounting = pytest.importorskip("dp_accounting")
    from opacus.accountants import create_accountant
    from opacus.accountants.utils import get_noise_multiplier

    delta = 1e-5
    sigma = get_noise_multiplier(target_epsilon=target, target_delta=delta, sample_rate=sample_rate, steps=steps,
                                 accountant=accountant)
    ours = create_accountant(accountant)
    ours.history = [(sigma, sample_rate, steps)]
    eps_opacus = ours.get_epsilon(delta)
    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(sample_rate, dp_accounting.GaussianDpEvent(sigma)), steps)
    pld = dp_accounting.pld.PLDAccountant(value_discretization_interval=1e-3)
    pld.compose(event)
    eps_pld = pld.get_epsilon(delta)
    assert eps_opacus <= target * 1.0001
    # RDP is a valid upper bound but looser than the exact PLD; PRV is (near) exact like PLD.
    tolerance = 0.02 if accountant == "prv" else 0.25
    assert abs(eps_opacus - eps_pld) / eps_pld < tolerance, (eps_opacus, eps_pld)
    if accountant == "rdp":
        assert eps_opacus >= eps_pld * 0.99


def test_default_delta_is_at_most_one_over_ten_n():
    for n in (7, 99, 700, 1234, 60_000):
        d = default_delta(n)
        assert 0 < d <= 1 / (10 * n) and d > 1 / (100 * n)
    assert default_delta(700) == pytest.approx(1e-4)


def test_clopper_pearson_matches_scipy():
    for k, n in ((0, 10), (3, 10), (10, 10), (47, 300)):
        ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
        assert clopper_pearson(k, n) == pytest.approx((ci.low, ci.high), abs=1e-12)


def test_attack_on_separable_and_on_identical_scores():
    rng = np.random.default_rng(0)
    perfect = evaluate_attack(np.ones(500), np.zeros(500), delta=1e-5)
    assert perfect.auc == 1.0 and perfect.tpr_at_fpr[0.01][0] == 1.0
    # 250 vs 250 on the evaluation half with no error: TPR_lo = 0.025^(1/250), FPR_hi = 1 - 0.025^(1/250)
    lo = 0.025 ** (1 / 250)  # one-sided 97.5% bounds (Bonferroni over TPR and FPR)
    assert perfect.epsilon_lower_bound == pytest.approx(math.log((lo - 1e-5) / (1 - lo)), rel=1e-6)
    same = evaluate_attack(rng.normal(0, 1, 500), rng.normal(0, 1, 500), delta=1e-5)
    assert same.auc_ci[0] < 0.5 < same.auc_ci[1]
    assert same.epsilon_lower_bound < 0.5


def test_auc_is_mann_whitney_with_ties():
    members, non_members = np.array([1.0, 2.0, 2.0]), np.array([2.0, 0.0])
    # pairs: (1,2)=0 (1,0)=1 (2,2)=.5 (2,0)=1 (2,2)=.5 (2,0)=1 -> 4/6
    assert evaluate_attack(members, non_members, delta=0.0, n_resamples=10).auc == pytest.approx(4 / 6)


def test_empirical_epsilon_formula():
    # 90/100 members and 10/100 non-members flagged
    tpr_lo = stats.beta.ppf(0.025, 90, 11)
    fpr_hi = stats.beta.ppf(0.975, 11, 90)
    expected = max(math.log((tpr_lo - 1e-5) / fpr_hi), math.log((1 - fpr_hi - 1e-5) / (1 - tpr_lo)))
    assert empirical_epsilon(90, 100, 10, 100, delta=1e-5) == pytest.approx(expected)
    assert empirical_epsilon(50, 100, 50, 100, delta=1e-5) == 0.0


def test_loss_and_lira_scores():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]])
    assert loss_scores(probs, [0, 1, 1]) == pytest.approx(np.log([0.9, 0.8, 0.5]))
    ref = [np.array([[0.6, 0.4], [0.5, 0.5], [0.5, 0.5]]), np.array([[0.5, 0.5], [0.4, 0.6], [0.6, 0.4]])]
    scores = lira_scores(probs, ref, [0, 1, 1])
    assert scores.shape == (3,) and np.all(np.isfinite(scores) & (scores <= 0))
    # the first two are more confident than every reference model, the third is not
    assert scores[0] > np.log(0.5) and scores[1] > np.log(0.5) and scores[2] < min(scores[0], scores[1])
