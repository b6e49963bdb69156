"""Known answers for per-group calibration (ECE and its over-/under-confidence parts)."""
from __future__ import annotations

import numpy as np
import pytest

from raikit.fairness.calibration import calibration_by_group, calibration_errors


def test_hand_computed_bins():
    # bin [0.9, 1]: 4 texts at 0.95, 2 right -> conf - acc = 0.45 (overconfident)
    # bin [0.6, 0.7): 2 texts at 0.65, both right -> acc - conf = 0.35 (underconfident)
    conf = np.array([0.95, 0.95, 0.95, 0.95, 0.65, 0.65])
    right = np.array([1, 1, 0, 0, 1, 1])
    ece, over, under = calibration_errors(conf, right)
    assert over == pytest.approx(4 / 6 * 0.45)
    assert under == pytest.approx(2 / 6 * 0.35)
    assert ece == pytest.approx(over + under)


def test_a_calibrated_group_and_an_overconfident_one():
    rng = np.random.default_rng(0)
    n = 400
    conf = rng.uniform(0.5, 1.0, size=2 * n)
    right = np.concatenate([rng.uniform(size=n) < conf[:n],   # group a: right as often as it is sure
                            rng.uniform(size=n) < 0.5])        # group b: sure, but right half the time
    groups = ["a"] * n + ["b"] * n
    m = calibration_by_group(conf, right, groups, n_bootstrap=300, seed=1).metrics
    assert m["ece.by_group.a"].value < 0.08
    assert m["overconfidence.by_group.b"].value == pytest.approx(0.25, abs=0.05)
    assert m["underconfidence.by_group.b"].value < 0.02
    low, high = m["ece.difference"].ci95
    assert low > 0.1 and low <= m["ece.difference"].value <= high
    assert m["ece.overall"].n == 2 * n and m["ece.by_group.b"].n == n
