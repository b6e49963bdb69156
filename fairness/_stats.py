"""Confidence intervals and permutation tests shared by every fairness probe."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import stats

__all__ = ["bootstrap_ci", "basic_ci", "stratified_gap_samples", "permutation_p_value"]


def bootstrap_ci(data: np.ndarray | list[float], statistic: Callable[..., float] = np.mean, *,
                 n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0,
                 paired: tuple[np.ndarray, ...] | None = None) -> tuple[float, float] | None:
    """Percentile bootstrap confidence interval (``scipy.stats.bootstrap``), resampling items.

    Parameters
    ----------
    data : array-like
        One value per item (pair, template instance, example).
    statistic : callable
        Vectorised statistic with an ``axis`` keyword (``np.mean`` by default).
    paired : tuple of arrays, optional
        Further arrays resampled together with ``data`` (same indices); then ``statistic`` takes
        them all as positional arguments.

    Returns
    -------
    (low, high) or None
        None when there are fewer than two items.
    """
    arrays = (np.asarray(data, dtype=float),) + tuple(np.asarray(a, dtype=float) for a in (paired or ()))
    if len(arrays[0]) < 2:
        return None
    if np.all(arrays[0] == arrays[0][0]) and not paired:
        value = float(statistic(arrays[0], axis=-1))
        return (value, value)
    res = stats.bootstrap(arrays, statistic, n_resamples=n_resamples, confidence_level=confidence,
                          method="percentile", paired=len(arrays) > 1, vectorized=True,
                          random_state=np.random.default_rng(seed))
    return (float(res.confidence_interval.low), float(res.confidence_interval.high))


def permutation_p_value(x: np.ndarray, y: np.ndarray, statistic: Callable[..., float], *,
                        n_resamples: int = 10000, alternative: str = "greater", seed: int = 0) -> float:
    """Permutation-test p-value of ``statistic(x, y)`` under exchangeability of x and y members.

    Uses ``scipy.stats.permutation_test`` (exact when the number of splits is small).
    """
    res = stats.permutation_test((np.asarray(x), np.asarray(y)), statistic, permutation_type="independent",
                                 n_resamples=n_resamples, alternative=alternative, vectorized=False,
                                 random_state=np.random.default_rng(seed))
    return float(res.pvalue)


def basic_ci(point: float, samples: np.ndarray, *, bounds: tuple[float, float] = (0.0, 1.0),
             confidence: float = 0.95) -> tuple[float, float] | None:
    """Basic (reverse-percentile) bootstrap interval, for max-minus-min statistics.

    The percentile interval of a max-type statistic sits above the point value when groups are small;
    reflecting it around the point value corrects that first-order bias. Clipped to ``bounds`` (the
    range of a rate difference by default). None with fewer than two finite samples.
    """
    s = np.asarray(samples, dtype=float)
    s = s[np.isfinite(s)]
    if len(s) <= 1 or not np.isfinite(point):
        return None
    tail = 100 * (1 - confidence) / 2
    lo, hi = 2 * point - np.percentile(s, 100 - tail), 2 * point - np.percentile(s, tail)
    return (float(np.clip(lo, *bounds)), float(np.clip(hi, *bounds)))


def stratified_gap_samples(values: np.ndarray, labels: np.ndarray, *, n_resamples: int, seed: int) -> np.ndarray:
    """Bootstrap replicates of (largest minus smallest group mean), resampling items within their group."""
    values = np.asarray(values, dtype=float)
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    means = []
    for g in dict.fromkeys(labels.tolist()):
        v = values[labels == g]
        means.append(v[rng.integers(0, len(v), (n_resamples, len(v)))].mean(axis=1))
    stacked = np.stack(means, axis=1)
    return stacked.max(axis=1) - stacked.min(axis=1)
