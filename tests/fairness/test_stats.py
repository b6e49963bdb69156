"""Intervals of rates and gaps: Wilson / Clopper-Pearson (cluster-aware) and the basic-bootstrap fallback."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from raikit.audits.stats import basic_ci, gap_ci, proportion_ci
from raikit.fairness.crows_pairs import rate_metric


def test_zero_rate_gets_a_wilson_interval_not_zero_width():
    """0/162 (the default audit's flip rate): the upper bound is z^2 / (n + z^2), so a gate on it can fail."""
    ci = proportion_ci(np.zeros(162))
    z2 = stats.norm.ppf(0.975) ** 2
    assert ci[0] == 0.0 and ci[1] == pytest.approx(z2 / (162 + z2))
    ref = stats.binomtest(0, 162).proportion_ci(method="wilson")
    assert ci == pytest.approx((ref.low, ref.high))
    exact = proportion_ci(np.zeros(162), method="clopper-pearson")
    assert exact[1] == pytest.approx(1 - 0.025 ** (1 / 162))
    hits = np.array([1] * 37 + [0] * 63)
    ref = stats.binomtest(37, 100).proportion_ci(method="wilson")
    assert proportion_ci(hits) == pytest.approx((ref.low, ref.high))


def test_rate_metric_in_percent_is_wilson():
    m = rate_metric(np.zeros(20))
    assert m.value == 0.0 and m.ci95[0] == 0.0 and m.ci95[1] > 10.0
    ref = stats.binomtest(0, 20).proportion_ci(method="wilson")
    assert m.ci95[1] == pytest.approx(100 * ref.high)


def test_clusters_shrink_the_effective_sample():
    """Ten clusters of ten identical rows carry about ten observations' worth of information, not 100."""
    cluster_hits = np.array([1, 0, 0, 1, 0, 0, 0, 1, 0, 0])
    rows = np.repeat(cluster_hits, 10)
    clusters = np.repeat(np.arange(10), 10)
    naive, clustered = proportion_ci(rows), proportion_ci(rows, clusters=clusters)
    assert clustered[1] - clustered[0] > 2.5 * (naive[1] - naive[0])
    # independent rows in distinct clusters: no change
    assert proportion_ci(rows, clusters=np.arange(100)) == pytest.approx(naive)
    # rate 0: the design effect cannot be estimated; the clusters are the trials
    assert proportion_ci(np.zeros(100), clusters=clusters) == pytest.approx(proportion_ci(np.zeros(10)))
    # counts with trials: 3 hurtful of 4 completions per template, two templates of one identity
    assert proportion_ci([3, 1], trials=[4, 4]) == pytest.approx(proportion_ci([1] * 4 + [0] * 4))


def test_gap_interval_contains_its_point_estimate():
    """A strongly biased bootstrap puts the basic interval beside the point; the fallback cannot."""
    samples = np.random.default_rng(0).normal(0.5, 0.02, 2000)
    point = 0.1
    lo, hi = basic_ci(point, samples)
    assert not lo <= point <= hi  # the defect: [2t - q_hi, 2t - q_lo] clipped to [0, 0]
    ci, how = gap_ci(point, samples)
    assert ci[0] <= point <= ci[1] and "widened" in how
    ci, how = gap_ci(0.5, samples)
    assert ci == pytest.approx(basic_ci(0.5, samples)) and how == "basic bootstrap"
