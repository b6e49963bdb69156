"""Faithfulness of word attributions (ERASER; DeYoung et al. 2020) and agreement between explainers.

For a text ``x`` with predicted class ``y`` (on the full text), words ranked by their attribution for
``y`` (ties: earlier word first), and ``r_k`` the ``k`` top-ranked words:

* comprehensiveness at ``k``: ``p(y | x) - p(y | x without r_k)``: removing the important words
  should hurt (higher is better);
* sufficiency at ``k``: ``p(y | x) - p(y | r_k only)``: the important words alone should keep the
  prediction (lower is better).

Reported, per text, then averaged over texts (95% percentile-bootstrap CI over texts):

* ``comprehensiveness`` and ``sufficiency``: ERASER's soft-score aggregates, the mean over the bins
  ``q`` in {1, 5, 10, 20, 50}% of the words (ERASER's ``aopc_thresholds``);
* ``aopc``: ERASER's area over the perturbation curve of comprehensiveness over those same bins, which
  is by ERASER's definition the ``comprehensiveness`` aggregate (kept under ERASER's name for gates);
* ``deletion_area``: raikit's own, *not* ERASER: the mean comprehensiveness over ``q`` in
  {10, 20, ..., 100}% of the words, the deletion curve down to the empty text (Samek et al. 2017 style).

The number of words of a bin is ``k = ceil(q · n_words)`` (at least 1). On short texts several bins give
the same ``k`` (4 words: 1, 1, 1, 1, 2); each distinct ``k`` is counted once (as ferret does), so a
short text is not scored four times on its top word. A word is removed by replacing its characters
with a space; the whitespace run around the removal is then collapsed to one space and the ends
stripped, so removing "." from "3.5" gives "3 5", never "35". Probabilities of the perturbed texts of
all texts and explainers go to the model in one batched call.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import regex

from raikit.explain._base import Explanation

__all__ = ["ERASER_BINS", "AOPC_BINS", "DELETION_BINS", "Faithfulness", "faithfulness", "remove_words", "top_k_for",
           "distinct_ks", "agreement"]

ERASER_BINS: tuple[float, ...] = (0.01, 0.05, 0.10, 0.20, 0.50)
#: ERASER's AOPC bins are its comprehensiveness bins.
AOPC_BINS: tuple[float, ...] = ERASER_BINS
#: raikit's deletion curve (not ERASER): 10%, 20%, ..., 100% of the words.
DELETION_BINS: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(1, 11))
_GAP = "\x00"
_REMOVED = regex.compile(r"[\s\x00]*\x00[\s\x00]*")


def top_k_for(q: float, n_words: int) -> int:
    """Words in a bin: ``ceil(q * n_words)``, at least 1 and at most ``n_words``."""
    return min(n_words, max(1, math.ceil(q * n_words - 1e-9)))


def distinct_ks(bins: Sequence[float], n_words: int) -> tuple[int, ...]:
    """The distinct word counts ``top_k_for(q, n_words)`` of the bins, in bin order."""
    return tuple(dict.fromkeys(top_k_for(q, n_words) for q in bins))


def remove_words(text: str, spans: Sequence[tuple[int, int]], drop: Sequence[int]) -> str:
    """``text`` with the words at indices ``drop`` replaced by a word boundary.

    Each removed word becomes a space; the whitespace run it sits in collapses to one space, the ends
    are stripped, and whitespace elsewhere in the text is left as it is. Neighbours never merge:
    removing "'" from "don't" gives "don t", "." from "3.5" gives "3 5".
    """
    dropped = set(int(i) for i in drop)
    if not dropped:
        return text.strip()
    parts, last = [], 0
    for i, (start, end) in enumerate(spans):
        if i in dropped:
            parts.append(text[last:start])
            parts.append(_GAP)
            last = end
    parts.append(text[last:])
    return _REMOVED.sub(" ", "".join(parts)).strip()


@dataclass(frozen=True)
class Faithfulness:
    """Faithfulness scores of one explanation.

    Attributes
    ----------
    comprehensiveness, sufficiency : float
        ERASER aggregates: means over the distinct ``k`` of :data:`ERASER_BINS`.
    aopc : float
        ERASER's AOPC of comprehensiveness over :data:`AOPC_BINS` (distinct ``k``).
    deletion_area : float
        raikit's deletion curve (not ERASER): mean comprehensiveness over the distinct ``k`` of
        :data:`DELETION_BINS`, the empty text included.
    ks : tuple of int
        The distinct ``k`` of the ERASER bins for this text.
    comprehensiveness_curve, sufficiency_curve : tuple of float
        Per ``k`` in ``ks``.
    deletion_ks, deletion_curve : tuple
        The distinct ``k`` of :data:`DELETION_BINS` and comprehensiveness at each.
    """

    comprehensiveness: float
    sufficiency: float
    aopc: float
    deletion_area: float
    ks: tuple[int, ...]
    comprehensiveness_curve: tuple[float, ...]
    sufficiency_curve: tuple[float, ...]
    deletion_ks: tuple[int, ...]
    deletion_curve: tuple[float, ...]


def faithfulness(explanations: Sequence[Explanation], predict: Callable[[Sequence[str]], np.ndarray], *,
                 bins: Sequence[float] = ERASER_BINS,
                 deletion_bins: Sequence[float] = DELETION_BINS) -> list[Faithfulness]:
    """Comprehensiveness, sufficiency, AOPC and the deletion area of each explanation.

    Parameters
    ----------
    explanations : sequence of Explanation
    predict : callable
        ``predict(texts) -> (n, n_classes)`` probabilities, e.g. ``adapter.predict_proba``.
    bins, deletion_bins : sequence of float
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
        ks, dks = distinct_ks(bins, n), distinct_ks(deletion_bins, n)
        comp = [remove_words(exp.text, exp.spans, order[:k]) for k in ks]
        suff = [remove_words(exp.text, exp.spans, order[k:]) for k in ks]
        dele = [remove_words(exp.text, exp.spans, order[:k]) for k in dks]
        plans.append((len(queries), ks, dks))
        queries.extend([exp.text, *comp, *suff, *dele])
    unique = list(dict.fromkeys(queries))
    probs = np.asarray(predict(unique)) if queries else np.zeros((0, 1))
    index = {t: i for i, t in enumerate(unique)}
    out = []
    for exp, (start, ks, dks) in zip(explanations, plans):
        nb, nd = len(ks), len(dks)
        p = np.array([probs[index[t], exp.predicted] for t in queries[start:start + 1 + 2 * nb + nd]])
        full = p[0]
        comp = full - p[1:1 + nb]
        suff = full - p[1 + nb:1 + 2 * nb]
        dele = full - p[1 + 2 * nb:]
        out.append(Faithfulness(comprehensiveness=float(comp.mean()), sufficiency=float(suff.mean()),
                                aopc=float(comp.mean()), deletion_area=float(dele.mean()), ks=ks,
                                comprehensiveness_curve=tuple(map(float, comp)),
                                sufficiency_curve=tuple(map(float, suff)), deletion_ks=dks,
                                deletion_curve=tuple(map(float, dele))))
    return out


def agreement(a: Sequence[Explanation], b: Sequence[Explanation], *, top_k: int = 3,
              on: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Per-text Kendall tau and top-k overlap between two explainers' scores for the predicted class.

    Parameters
    ----------
    a, b : sequence of Explanation
        Explanations of the same texts, in the same order.
    top_k : int
        Size of the top sets.
    on : {"auto", "magnitude", "signed"}
        What is compared. "auto": signed scores when both explainers are signed (SHAP, LIME),
        magnitudes ``|score|`` when either is not (attention, rollout and random are never negative,
        so a strongly negative SHAP word is as "important" as a strongly positive one).

    Returns
    -------
    taus : ndarray
        Kendall's tau-b per text (NaN for texts with fewer than 2 words or constant scores).
    overlaps : ndarray
        ``|top_k(a) ∩ top_k(b)| / k`` per text, NaN for a text of at most ``top_k`` words (both top
        sets are then the whole text: the overlap is 1 whatever the explainers say).
    """
    from scipy.stats import kendalltau

    if on not in ("auto", "magnitude", "signed"):
        raise ValueError(f"on must be auto, magnitude or signed, not {on!r}")
    taus, overlaps = [], []
    for x, y in zip(a, b, strict=True):
        if x.text != y.text:
            raise ValueError("explanations of different texts cannot be compared")
        signed = on == "signed" or (on == "auto" and x.signed and y.signed)
        sx, sy = (x.scores, y.scores) if signed else (np.abs(x.scores), np.abs(y.scores))
        if len(sx) < 2 or np.ptp(sx) == 0 or np.ptp(sy) == 0:
            taus.append(np.nan)
        else:
            taus.append(float(kendalltau(sx, sy).statistic))
        if len(sx) <= top_k:
            overlaps.append(np.nan)
            continue
        rx = np.lexsort((np.arange(len(sx)), -sx))[:top_k]
        ry = np.lexsort((np.arange(len(sy)), -sy))[:top_k]
        overlaps.append(len(set(rx.tolist()) & set(ry.tolist())) / top_k)
    return np.array(taus, dtype=np.float64), np.array(overlaps, dtype=np.float64)
