"""Confidence intervals, bootstraps and tests: the one statistics module of raikit.

Every capability (fairness probes, explanation faithfulness, privacy attacks, the retraining sections) and
the runner's re-audit tables take their intervals from here, so one interval is computed one way
everywhere: percentile bootstraps through ``scipy.stats.bootstrap`` (:func:`bootstrap_ci`), basic
bootstrap intervals for max-minus-min gaps (:func:`gap_ci`), Wilson and Clopper-Pearson intervals of
proportions, cluster-aware (:func:`proportion_ci`, :func:`clopper_pearson`), the paired (cluster) bootstrap
of a before/after change (:func:`paired_change`) and Holm's step-down adjustment (:func:`holm`).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import stats

__all__ = ["bootstrap_ci", "basic_ci", "gap_ci", "proportion_ci", "clopper_pearson", "stratified_gap_samples",
           "permutation_p_value", "paired_change", "PairedChange", "holm", "PROPORTION_CI", "CLUSTER_PROPORTION_CI"]

#: How :func:`proportion_ci` intervals are described in a metric's details.
PROPORTION_CI = "95% Wilson score interval"
CLUSTER_PROPORTION_CI = ("95% Wilson score interval on the design-effect adjusted sample size "
                         "(rows of one {unit} are one cluster)")


def bootstrap_ci(data: np.ndarray | Sequence[float], statistic: Callable[..., float] = np.mean, *,
                 n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0,
                 paired: tuple[np.ndarray, ...] | None = None,
                 nan_policy: Literal["omit", "propagate"] = "omit") -> tuple[float, float] | None:
    """Percentile bootstrap confidence interval (``scipy.stats.bootstrap``), resampling items.

    Parameters
    ----------
    data : array-like
        One value per item (pair, template instance, example, explained text).
    statistic : callable
        Vectorised statistic with an ``axis`` keyword (``np.mean`` by default).
    n_resamples : int
        Bootstrap resamples.
    confidence : float
        Coverage of the interval.
    seed : int
        Seeds the resampling (``numpy.random.default_rng(seed)``).
    paired : tuple of arrays, optional
        Further arrays resampled together with ``data`` (same indices); then ``statistic`` takes
        them all as positional arguments.
    nan_policy : {"omit", "propagate"}
        ``"omit"`` drops every item with a non-finite value in any of the arrays first (an explanation
        whose score is undefined for one text); ``"propagate"`` keeps them.

    Returns
    -------
    (low, high) or None
        None when there are fewer than two items; ``(v, v)`` when every item has the same value ``v``
        (and nothing is paired).
    """
    arrays = (np.asarray(data, dtype=float),) + tuple(np.asarray(a, dtype=float) for a in (paired or ()))
    if nan_policy == "omit":
        keep = np.logical_and.reduce([np.isfinite(a) for a in arrays])
        arrays = tuple(a[keep] for a in arrays)
    if len(arrays[0]) < 2:
        return None
    if np.all(arrays[0] == arrays[0][0]) and not paired:
        # the mean of equal values is that value, exactly (np.mean can be one ulp off)
        value = float(arrays[0][0]) if statistic is np.mean else float(statistic(arrays[0], axis=-1))
        return (value, value)
    res = stats.bootstrap(arrays, statistic, n_resamples=n_resamples, confidence_level=confidence,
                          method="percentile", paired=len(arrays) > 1, vectorized=True,
                          rng=np.random.default_rng(seed))
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


def proportion_ci(successes: np.ndarray | list[float], *, trials: np.ndarray | list[float] | None = None,
                  clusters: np.ndarray | list[Any] | None = None, confidence: float = 0.95,
                  method: str = "wilson") -> tuple[float, float] | None:
    """Confidence interval of a proportion: Wilson score or Clopper-Pearson, cluster-aware.

    A bootstrap interval of a rate of 0/n is [0, 0], so a gate on its upper bound can never fail; the
    Wilson and Clopper-Pearson intervals are never empty of width for a finite sample.

    Parameters
    ----------
    successes : array-like
        Per row: 0/1 outcomes, or counts of successes when ``trials`` is given.
    trials : array-like, optional
        Per row: number of trials behind ``successes`` (1 each when omitted).
    clusters : array-like, optional
        Per row: the independent unit it belongs to (the original text of counterfactual variants, the
        identity term of HONEST templates). Rows of one cluster are correlated, so the interval uses the
        Kish effective sample size ``n / deff``, with the design effect ``deff`` estimated from the
        between-cluster variance of the ratio estimator (at least 1). When the rate is 0 or 1 the design
        effect cannot be estimated and the number of clusters is the effective sample size (as if each
        cluster were one trial: the conservative end).
    confidence : float
        Coverage of the interval.
    method : {"wilson", "clopper-pearson"}
        Clopper-Pearson (:func:`clopper_pearson`) needs integer counts, so with clusters it uses the
        effective sample size rounded down.

    Returns
    -------
    (low, high) in [0, 1], or None when there are no trials.
    """
    x = np.asarray(successes, dtype=float)
    t = np.ones_like(x) if trials is None else np.asarray(trials, dtype=float)
    n = float(t.sum())
    if n <= 0:
        return None
    p = float(x.sum()) / n
    n_eff = n
    if clusters is not None:
        labels = np.asarray(clusters, dtype=object)
        _, codes = np.unique(labels.astype(str), return_inverse=True)
        xc = np.bincount(codes, weights=x)
        tc = np.bincount(codes, weights=t)
        m = len(tc)
        if m < n:
            if 0.0 < p < 1.0 and m > 1:
                var_cluster = m / (m - 1) * float(((xc - p * tc) ** 2).sum()) / n ** 2
                deff = max(1.0, var_cluster / (p * (1 - p) / n))
                n_eff = n / deff
            else:
                n_eff = float(min(m, n))
    if method == "clopper-pearson":
        k = max(1, int(np.floor(n_eff)))
        return clopper_pearson(int(round(p * k)), k, alpha=1 - confidence)
    if method != "wilson":
        raise ValueError(f"unknown method {method!r}; use 'wilson' or 'clopper-pearson'")
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    denom = 1 + z * z / n_eff
    centre = (p + z * z / (2 * n_eff)) / denom
    half = z / denom * np.sqrt(p * (1 - p) / n_eff + z * z / (4 * n_eff * n_eff))
    low = 0.0 if p == 0.0 else float(max(0.0, centre - half))  # exact bounds at the ends (no rounding residue)
    high = 1.0 if p == 1.0 else float(min(1.0, centre + half))
    return (low, high)


def gap_ci(point: float, samples: np.ndarray, *, bounds: tuple[float, float] = (0.0, 1.0),
           confidence: float = 0.95) -> tuple[tuple[float, float] | None, str]:
    """Basic bootstrap interval of a max-minus-min statistic, with a fallback that contains the point.

    The basic interval ``[2 t - q_hi, 2 t - q_lo]`` excludes the point estimate ``t`` when the bootstrap
    bias exceeds half the spread of the replicates (a large small-group bias of a max-type statistic).
    Then the interval is the hull of the percentile interval and the point, which cannot exclude it.

    Returns
    -------
    (interval, method)
        ``method`` names what was used, for the metric's details.
    """
    ci = basic_ci(point, samples, bounds=bounds, confidence=confidence)
    if ci is None or ci[0] <= point <= ci[1]:
        return ci, "basic bootstrap"
    s = np.asarray(samples, dtype=float)
    s = s[np.isfinite(s)]
    tail = 100 * (1 - confidence) / 2
    lo, hi = np.percentile(s, tail), np.percentile(s, 100 - tail)
    lo, hi = min(lo, point), max(hi, point)
    return ((float(np.clip(lo, *bounds)), float(np.clip(hi, *bounds))),
            "percentile bootstrap widened to the point estimate (the basic interval excluded it: large bootstrap "
            "bias)")


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


def clopper_pearson(k: int, n: int, *, alpha: float = 0.05, side: str = "two-sided") -> tuple[float, float]:
    """Exact binomial interval for ``k`` successes in ``n`` trials.

    ``side="two-sided"`` gives the (1 - alpha) interval; ``"lower"``/``"upper"`` give one-sided
    bounds at level 1 - alpha (the other end is 0 or 1).
    """
    if n <= 0:
        return (0.0, 1.0)
    a = alpha / 2 if side == "two-sided" else alpha
    low = 0.0 if k == 0 else float(stats.beta.ppf(a, k, n - k + 1))
    high = 1.0 if k == n else float(stats.beta.ppf(1 - a, k + 1, n - k))
    if side == "lower":
        return (low, 1.0)
    if side == "upper":
        return (0.0, high)
    return (low, high)


@dataclass(frozen=True)
class PairedChange:
    """The change of a mean-over-items metric between two models scored on the same items.

    Attributes
    ----------
    before, after : float
        The metric of each model over the paired items.
    change : float
        ``after - before``.
    ci95 : tuple of float
        Paired percentile bootstrap interval of the change (resampling items, or whole clusters).
    p_value : float
        Two-sided bootstrap p-value of "no change" (twice the smaller share of resampled changes on either
        side of 0, at least ``1 / resamples``).
    n : int
        Paired items (present for both models).
    clusters : int
        Resampled units (clusters, or items when there are none).
    """

    before: float
    after: float
    change: float
    ci95: tuple[float, float]
    p_value: float
    n: int
    clusters: int

    @property
    def moved(self) -> bool:
        """Whether the 95% interval of the change excludes 0 (this metric alone, no multiplicity adjustment)."""
        return bool(self.ci95[0] > 0 or self.ci95[1] < 0)


def paired_change(before: np.ndarray, after: np.ndarray, *, clusters: np.ndarray | None = None, seed: int,
                  resamples: int = 2000) -> PairedChange:
    """``mean(after) - mean(before)`` over the same items, with a paired (cluster) percentile bootstrap.

    Parameters
    ----------
    before, after : array of float
        One value per item, in the same item order.
    clusters : array, optional
        Cluster label per item (items of one cluster are resampled together); None: each item alone.
    seed : int
        Seeds the resampling.
    resamples : int
        Bootstrap resamples.
    """
    a, b = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    if a.shape != b.shape or not len(a):
        raise ValueError(f"paired values need equal, non-zero lengths (got {a.shape} and {b.shape})")
    diff = b - a
    if clusters is None:
        codes = np.arange(len(diff))
    else:
        codes = np.unique(np.asarray(clusters, dtype=str), return_inverse=True)[1]
    k = int(codes.max()) + 1
    sums = np.bincount(codes, weights=diff, minlength=k)
    sizes = np.bincount(codes, minlength=k).astype(float)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, k, size=(resamples, k))
    boot = sums[draws].sum(axis=1) / sizes[draws].sum(axis=1)
    value = float(diff.mean())
    low, high = (float(x) for x in np.quantile(boot, [0.025, 0.975]))
    if np.all(diff == 0):
        p = 1.0
    else:
        p = min(1.0, max(2 * min(float(np.mean(boot <= 0)), float(np.mean(boot >= 0))), 1 / resamples))
    return PairedChange(before=float(a.mean()), after=float(b.mean()), change=value,
                        ci95=(min(low, value), max(high, value)), p_value=p, n=len(diff), clusters=k)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error control over all the comparisons of a table)."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p, kind="stable")
    m = len(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()
