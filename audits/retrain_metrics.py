"""Accuracy metrics shared by the retraining capabilities (privacy, federated), which may not import each other.

Both compare models on the same held-out examples: each model's accuracy with a Wilson score interval,
and the difference of two models' accuracies with a paired percentile bootstrap over the examples.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from raikit.audits.results import Metric

__all__ = ["accuracy_metric", "paired_difference"]


def accuracy_metric(correct: np.ndarray, *, details: Mapping[str, Any] | None = None) -> Metric:
    """Share of correct predictions with its 95% Wilson score interval (``scipy.stats.binomtest``)."""
    from scipy.stats import binomtest

    k, n = int(np.sum(correct)), len(correct)
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return Metric(value=k / n, ci95=(float(ci.low), float(ci.high)), n=n,
                  details={"ci_method": "Wilson score", **dict(details or {})})


def paired_difference(a: np.ndarray, b: np.ndarray, *, seed: int, what: str,
                      unit: str = "held-out examples") -> Metric:
    """``mean(a) - mean(b)`` over the same examples, with a paired percentile bootstrap interval (2000)."""
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    rng = np.random.default_rng(seed)
    boot = np.array([diff[rng.integers(0, len(diff), len(diff))].mean() for _ in range(2000)])
    low, high = np.quantile(boot, [0.025, 0.975])
    value = float(diff.mean())
    return Metric(value=value, ci95=(min(float(low), value), max(float(high), value)), n=len(diff),
                  details={"what": what, "ci_method": f"paired percentile bootstrap over {unit} (2000)"})
