"""The one-run privacy audit of Steinke, Nasr and Jagielski ("Privacy Auditing with One (1) Training Run",
NeurIPS 2023).

``m`` canaries are drawn from the training data and each is *inserted* (trained on) independently with
probability 1/2; the others are left out of training. After training, an attack scores every canary and
the auditor guesses "in" for the ``r/2`` highest scores and "out" for the ``r/2`` lowest, abstaining on
the rest. If training is (epsilon, delta)-DP, the number ``v`` of correct guesses is, up to a delta term,
no more likely to be large than a Binomial(r, e^eps / (1 + e^eps)) draw (their Theorem 3.1; the p-value
below is their Algorithm 2 with the delta term ``2 m delta alpha``). The audit's epsilon lower bound is the
largest epsilon that this rejects at the confidence level: training with a smaller epsilon would give so
many correct guesses with probability below ``1 - confidence``. Unlike a threshold attack scored on one
fixed split, the randomness this bound rests on (the coin flips of the canaries) is drawn by the auditor,
independently of everything else, so it is a valid statistical statement about this one training run.

A perfect attack (every guess correct) reaches a bound that depends only on ``m``, the guesses and the
confidence: :func:`perfect_attack_bound`. It is reported beside the audit's bound: an accountant's epsilon
above it cannot be contradicted by this audit at all, whatever the model leaks.

Several guess counts are tried, each at confidence ``1 - (1 - confidence) / k`` (Bonferroni over the ``k``
counts), so that choosing the best one after seeing the scores keeps the overall level.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

__all__ = ["OneRunAudit", "draw_canaries", "one_run_p_value", "one_run_epsilon", "one_run_audit", "perfect_attack_bound",
           "GUESS_FRACTIONS"]

#: shares of the canaries guessed on (half "in" from the top scores, half "out" from the bottom)
GUESS_FRACTIONS: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)


def draw_canaries(n_train: int, count: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Which training rows are canaries, and which of those are trained on (each with probability 1/2).

    The draw has its own generator (``default_rng([seed, 20230514])``), apart from any training randomness,
    so the coin flips are independent of everything the model sees. At most half the training rows are
    canaries, and none when there are fewer than 8 rows or ``count`` is 0.

    Returns
    -------
    positions : ndarray of int
        Sorted row positions of the canaries in the training split.
    inserted : ndarray of bool
        Per canary: trained on (True) or left out of every model's training set (False).
    """
    rng = np.random.default_rng([seed, 20230514])
    n = min(count, n_train // 2) if count and n_train >= 8 else 0
    positions = np.sort(rng.choice(n_train, n, replace=False))
    return positions, rng.random(n) < 0.5


def one_run_p_value(*, m: int, r: int, v: int, epsilon: float, delta: float) -> float:
    """Probability of at least ``v`` correct guesses out of ``r`` (of ``m`` canaries) under (epsilon, delta)-DP."""
    if not 0 <= v <= r <= m:
        raise ValueError(f"need 0 <= v <= r <= m, got v={v}, r={r}, m={m}")
    if v == 0:
        return 1.0
    q = float(special.expit(epsilon))  # accuracy of epsilon-DP randomised response
    beta = float(stats.binom.sf(v - 1, r, q))
    below = np.cumsum(stats.binom.pmf(v - np.arange(1, v + 1), r, q))  # P[v > Bin >= v - i], i = 1..v
    alpha = float(np.max(below / np.arange(1, v + 1)))
    return min(1.0, beta + alpha * delta * 2 * m)


def one_run_epsilon(*, m: int, r: int, v: int, delta: float, confidence: float = 0.95) -> float:
    """The largest epsilon rejected at ``confidence`` by ``v`` correct guesses of ``r`` (0 when none is)."""
    level = 1 - confidence
    if one_run_p_value(m=m, r=r, v=v, epsilon=0.0, delta=delta) >= level:
        return 0.0
    low, high = 0.0, 1.0
    while one_run_p_value(m=m, r=r, v=v, epsilon=high, delta=delta) < level:
        low, high = high, high * 2
        if high > 1e4:
            return low
    for _ in range(30):  # to 2^-30 of the bracket
        mid = (low + high) / 2
        if one_run_p_value(m=m, r=r, v=v, epsilon=mid, delta=delta) < level:
            low = mid
        else:
            high = mid
    return low


def _guess_counts(m: int) -> list[int]:
    return sorted({max(2, 2 * int(round(f * m / 2))) for f in GUESS_FRACTIONS if max(2, 2 * int(round(f * m / 2))) <= m})


@functools.lru_cache(maxsize=256)
def perfect_attack_bound(m: int, *, delta: float, confidence: float = 0.95) -> float:
    """The largest bound the audit can give with ``m`` canaries: every guess correct at the largest guess count."""
    counts = _guess_counts(m)
    level = 1 - (1 - confidence) / max(len(counts), 1)
    return max((one_run_epsilon(m=m, r=r, v=r, delta=delta, confidence=level) for r in counts), default=0.0)


@dataclass(frozen=True)
class OneRunAudit:
    """What the one-run audit of one model found.

    Attributes
    ----------
    epsilon_lower_bound : float
        The largest epsilon the guesses reject at ``confidence`` (over the guess counts, Bonferroni).
    perfect_attack_bound : float
        The bound if every guess were correct: the most this audit could ever show with these canaries.
    canaries, inserted : int
        Canaries drawn, and how many of them were trained on (each with probability 1/2).
    guesses, correct : int
        Guesses and correct guesses at the guess count that gave the bound.
    confidence : float
    """

    epsilon_lower_bound: float
    perfect_attack_bound: float
    canaries: int
    inserted: int
    guesses: int
    correct: int
    confidence: float


def one_run_audit(scores: Sequence[float], inserted: Sequence[bool], *, delta: float,
                  confidence: float = 0.95) -> OneRunAudit:
    """Guess each canary's membership from its attack score (higher: more likely inserted) and bound epsilon.

    Parameters
    ----------
    scores : sequence of float
        The attack's score of each canary.
    inserted : sequence of bool
        Whether each canary was trained on (drawn with probability 1/2, independently of the training).
    delta : float
        The delta of the guarantee under test.
    confidence : float
        Overall confidence of the bound.
    """
    s = np.asarray(scores, float)
    truth = np.asarray(inserted, bool)
    m = len(s)
    if m < 2 or len(truth) != m:
        raise ValueError("the one-run audit needs at least 2 canaries and one inclusion flag per canary")
    order = np.argsort(-s, kind="stable")
    counts = _guess_counts(m)
    level = 1 - (1 - confidence) / len(counts)
    best = (0.0, counts[0], 0)
    for r in counts:
        k = r // 2
        v = int(truth[order[:k]].sum() + (~truth[order[m - k:]]).sum())
        eps = one_run_epsilon(m=m, r=r, v=v, delta=delta, confidence=level)
        if eps > best[0] or (best[0] == 0.0 and r == counts[0]):
            best = (eps, r, v)
    return OneRunAudit(epsilon_lower_bound=float(best[0]),
                       perfect_attack_bound=float(perfect_attack_bound(m, delta=delta, confidence=confidence)),
                       canaries=m, inserted=int(truth.sum()), guesses=int(best[1]), correct=int(best[2]),
                       confidence=confidence)
