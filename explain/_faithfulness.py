"""Faithfulness of word attributions (ERASER; DeYoung et al. 2020) and agreement between explainers.

For a text ``x`` with predicted class ``y`` (on the full text), words ranked by their attribution for
``y`` (ties: earlier word first), and ``r_k`` the ``k`` top-ranked words:

* comprehensiveness at ``k``: ``p(y | x) - p(y | x without r_k)``: removing the important words
  should hurt (higher is better);
* sufficiency at ``k``: ``p(y | x) - p(y | r_k only)``: the important words alone should keep the
  prediction (lower is better).

Reported, per text, then averaged over texts (95% percentile-bootstrap CI over texts):

* ``comprehensiveness`` and ``sufficiency``: ERASER's aggregate, the mean over the bins
  ``q`` in {1, 5, 10, 20, 50}% of the words;
* ``aopc``: the area over the perturbation curve of comprehensiveness (Samek et al. 2017), the mean
  of comprehensiveness over ``q`` in {10, 20, ..., 100}% of the words (the deletion curve down to
  the empty text).

The number of words of a bin is ``k = ceil(q · n_words)`` (at least 1), so short texts get at least
their top word in every bin. A word is removed by deleting its characters; whitespace runs left
behind are collapsed to one space and the ends stripped. Probabilities of the perturbed texts of all
texts and explainers go to the model in one batched call.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import regex

from raikit.explain._base import Explanation

__all__ = ["ERASER_BINS", "AOPC_BINS", "Faithfulness", "faithfulness", "remove_words", "top_k_for",
           "agreement", "bootstrap_ci"]

ERASER_BINS: tuple[float, ...] = (0.01, 0.05, 0.10, 0.20, 0.50)
AOPC_BINS: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(1, 11))
_SPACES = regex.compile(r"\s+")


def top_k_for(q: float, n_words: int) -> int:
    """Words in a bin: ``ceil(q * n_words)``, at least 1 and at most ``n_words``."""
    return min(n_words, max(1, math.ceil(q * n_words - 1e-9)))


def remove_words(text: str, spans: Sequence[tuple[int, int]], drop: Sequence[int]) -> str:
    """``text`` with the words at indices ``drop`` deleted (whitespace collapsed, ends stripped)."""
    dropped = set(int(i) for i in drop)
    parts, last = [], 0
    for i, (start, end) in enumerate(spans):
        if i in dropped:
            parts.append(text[last:start])
            last = end
    parts.append(text[last:])
    return _SPACES.sub(" ", "".join(parts)).strip()


@dataclass(frozen=True)
class Faithfulness:
    """Faithfulness scores of one explanation.

    Attributes
    ----------
    comprehensiveness, sufficiency : float
        ERASER aggregates (mean over :data:`ERASER_BINS`).
    aopc : float
        Mean comprehensiveness over :data:`AOPC_BINS`.
    comprehensiveness_curve, sufficiency_curve : tuple of float
        Per bin of :data:`ERASER_BINS`.
    aopc_curve : tuple of float
        Comprehensiveness per bin of :data:`AOPC_BINS`.
    """

    comprehensiveness: float
    sufficiency: float
    aopc: float
    comprehensiveness_curve: tuple[float, ...]
    sufficiency_curve: tuple[float, ...]
    aopc_curve: tuple[float, ...]


def faithfulness(explanations: Sequence[Explanation], predict: Callable[[Sequence[str]], np.ndarray], *,
                 bins: Sequence[float] = ERASER_BINS, aopc_bins: Sequence[float] = AOPC_BINS) -> list[Faithfulness]:
    """Comprehensiveness, sufficiency and AOPC of each explanation.

    Parameters
    ----------
    explanations : sequence of Explanation
    predict : callable
        ``predict(texts) -> (n, n_classes)`` probabilities, e.g. ``adapter.predict_proba``.
    bins, aopc_bins : sequence of float
        Fractions of the words (see the module docstring).

    Returns
    -------
    list of Faithfulness
        One per explanation, in order.
    """
    plans = []
    queries: list[str] = []
    for exp in explanations:
        n = len(exp.words)
        order = exp.ranking()
        comp = [remove_words(exp.text, exp.spans, order[:top_k_for(q, n)]) for q in bins]
        suff = [remove_words(exp.text, exp.spans, order[top_k_for(q, n):]) for q in bins]
        aopc = [remove_words(exp.text, exp.spans, order[:top_k_for(q, n)]) for q in aopc_bins]
        plans.append((len(queries), len(comp), len(aopc)))
        queries.extend([exp.text, *comp, *suff, *aopc])
    probs = np.asarray(predict(list(dict.fromkeys(queries)))) if queries else np.zeros((0, 1))
    index = {t: i for i, t in enumerate(dict.fromkeys(queries))}
    out = []
    for exp, (start, nb, na) in zip(explanations, plans):
        p = np.array([probs[index[t], exp.predicted] for t in queries[start:start + 1 + 2 * nb + na]])
        full = p[0]
        comp = full - p[1:1 + nb]
        suff = full - p[1 + nb:1 + 2 * nb]
        aopc = full - p[1 + 2 * nb:]
        out.append(Faithfulness(comprehensiveness=float(comp.mean()), sufficiency=float(suff.mean()),
                                aopc=float(aopc.mean()), comprehensiveness_curve=tuple(map(float, comp)),
                                sufficiency_curve=tuple(map(float, suff)), aopc_curve=tuple(map(float, aopc))))
    return out


def agreement(a: Sequence[Explanation], b: Sequence[Explanation], *, top_k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Per-text Kendall tau and top-k overlap between two explainers' scores for the predicted class.

    Parameters
    ----------
    a, b : sequence of Explanation
        Explanations of the same texts, in the same order.
    top_k : int
        Size of the top sets; ``min(top_k, n_words)`` per text.

    Returns
    -------
    taus : ndarray
        Kendall's tau-b per text (NaN for texts with fewer than 2 words or constant scores).
    overlaps : ndarray
        ``|top_k(a) ∩ top_k(b)| / k`` per text.
    """
    from scipy.stats import kendalltau

    taus, overlaps = [], []
    for x, y in zip(a, b, strict=True):
        if x.text != y.text:
            raise ValueError("explanations of different texts cannot be compared")
        sx, sy = x.scores, y.scores
        if len(sx) < 2 or np.ptp(sx) == 0 or np.ptp(sy) == 0:
            taus.append(np.nan)
        else:
            taus.append(float(kendalltau(sx, sy).statistic))
        k = min(top_k, len(sx))
        overlaps.append(len(set(x.ranking()[:k].tolist()) & set(y.ranking()[:k].tolist())) / k)
    return np.array(taus, dtype=np.float64), np.array(overlaps, dtype=np.float64)


def bootstrap_ci(values: Sequence[float], *, seed: int = 0, n_resamples: int = 2000,
                 confidence: float = 0.95) -> tuple[float, float] | None:
    """Percentile-bootstrap CI of the mean (``scipy.stats.bootstrap``), NaNs dropped.

    Returns ``None`` with fewer than two values, and ``(v, v)`` when all values are equal.
    """
    from scipy.stats import bootstrap

    data = np.asarray(values, dtype=np.float64)
    data = data[np.isfinite(data)]
    if data.size < 2:
        return None
    if np.ptp(data) == 0:
        return (float(data[0]), float(data[0]))
    res = bootstrap((data,), np.mean, n_resamples=n_resamples, confidence_level=confidence, method="percentile",
                    rng=np.random.default_rng(seed))
    return (float(res.confidence_interval.low), float(res.confidence_interval.high))
