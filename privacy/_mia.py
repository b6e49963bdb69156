"""Membership-inference attacks and the empirical privacy they imply.

Two attacks score how likely each example was in a model's training set:

- **loss** (Yeom et al., CSF 2018): the score is the log-probability the model gives the true label
  (minus the loss); members tend to have lower loss.
- **lira** (Carlini et al., "Membership Inference Attacks From First Principles", S&P 2022), the
  *offline* variant: ``K`` reference models are trained on data disjoint from every target example,
  so each is an OUT model for all of them. For each example the logit-scaled confidence
  ``phi = log(p_y / (1 - p_y))`` under the reference models gives a Gaussian ``N(mu_out, sigma_out)``
  (one global ``sigma`` when ``K < 8``, the paper's fixed-variance variant); the score is the one-sided
  likelihood ``log Phi((phi_target - mu_out) / sigma_out)``.

From the scores of members and non-members: ROC AUC with a stratified bootstrap interval; TPR at
1% and 0.1% FPR with Clopper-Pearson intervals; and the **empirical epsilon lower bound** of
Jagielski et al. (NeurIPS 2020) / Nasr et al. (S&P 2021): for any threshold, (epsilon, delta)-DP
implies ``TPR <= e^eps FPR + delta`` and ``1 - FPR <= e^eps (1 - TPR) + delta``, so with a
Clopper-Pearson lower bound on TPR and upper bound on FPR (95% overall, Bonferroni over the two),
``eps >= max(log((TPR_lo - delta) / FPR_hi), log((1 - FPR_hi - delta) / (1 - TPR_lo)))``. The
threshold is chosen on one half of the examples and the bound computed on the other half, so the
choice does not inflate it. What the bound means: the Clopper-Pearson intervals cover the resampling of
members and non-members from one fixed split, not the randomness of the training (one model, trained
once, on a split drawn once), so it describes how far this attack got on these texts; it is not a
certified lower bound on the training's epsilon. The certified one is the one-run audit
(``raikit.privacy._one_run``), whose coin flips are the auditor's.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from raikit.audits.stats import clopper_pearson

__all__ = ["AttackResult", "loss_scores", "lira_scores", "evaluate_attack", "empirical_epsilon"]


def loss_scores(probabilities: np.ndarray, labels: Sequence[int]) -> np.ndarray:
    """Loss attack: ``log p(true label)`` per example (higher means more likely a member)."""
    p = probabilities[np.arange(len(labels)), np.asarray(labels, dtype=int)]
    return np.log(np.clip(p, 1e-300, 1.0))


def _phi(probabilities: np.ndarray, labels: Sequence[int]) -> np.ndarray:
    p = probabilities[np.arange(len(labels)), np.asarray(labels, dtype=int)]
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return np.log(p) - np.log1p(-p)


def lira_scores(target: np.ndarray, references: Sequence[np.ndarray], labels: Sequence[int]) -> np.ndarray:
    """Offline LiRA: how far above the OUT distribution of the reference models each example's confidence is.

    Parameters
    ----------
    target : ndarray, shape (n, classes)
        The attacked model's class probabilities.
    references : sequence of ndarray
        The same for each reference model (none trained on any of the ``n`` examples).
    labels : sequence of int
        True labels.
    """
    if not len(references):
        raise ValueError("LiRA needs at least one reference model")
    phi_t = _phi(target, labels)
    phi_ref = np.stack([_phi(r, labels) for r in references])  # (K, n)
    mu = phi_ref.mean(axis=0)
    if len(references) >= 8:
        sigma = phi_ref.std(axis=0, ddof=1) + 1e-6
    else:  # fixed variance: one global spread of the OUT confidences around their per-example means
        resid = (phi_ref - mu) if len(references) > 1 else (phi_ref - phi_ref.mean())
        sigma = np.full_like(mu, max(float(resid.std()), 1e-3))
    return stats.norm.logcdf((phi_t - mu) / sigma)  # log scale: no saturation at 1 for confident members


def _roc(members: np.ndarray, non_members: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FPR, TPR and thresholds for "member if score >= t", over every distinct threshold."""
    scores = np.concatenate([members, non_members])
    truth = np.concatenate([np.ones(len(members)), np.zeros(len(non_members))])
    order = np.argsort(-scores, kind="stable")
    s, t = scores[order], truth[order]
    distinct = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tp = np.cumsum(t)[distinct]
    fp = np.cumsum(1 - t)[distinct]
    tpr = np.r_[0.0, tp / max(len(members), 1)]
    fpr = np.r_[0.0, fp / max(len(non_members), 1)]
    thresholds = np.r_[np.inf, s[distinct]]
    return fpr, tpr, thresholds


def _auc(members: np.ndarray, non_members: np.ndarray) -> float:
    """P(member score > non-member score) + 0.5 P(tie) (the Mann-Whitney form of ROC AUC)."""
    ranks = stats.rankdata(np.concatenate([members, non_members]))
    m, n = len(members), len(non_members)
    return float((ranks[:m].sum() - m * (m + 1) / 2) / (m * n))


def empirical_epsilon(tp: int, n_members: int, fp: int, n_non_members: int, *, delta: float,
                      alpha: float = 0.05) -> float:
    """Lower bound on epsilon from one threshold's counts (Clopper-Pearson at 1 - alpha overall)."""
    tpr_lo = clopper_pearson(tp, n_members, alpha=alpha / 2, side="lower")[0]
    fpr_hi = clopper_pearson(fp, n_non_members, alpha=alpha / 2, side="upper")[1]
    bounds = [0.0]
    if tpr_lo - delta > 0 and fpr_hi > 0:
        bounds.append(math.log((tpr_lo - delta) / fpr_hi))
    if 1 - fpr_hi - delta > 0 and 1 - tpr_lo > 0:
        bounds.append(math.log((1 - fpr_hi - delta) / (1 - tpr_lo)))
    return max(bounds)


@dataclass(frozen=True)
class AttackResult:
    """What one attack achieved against one model.

    Attributes
    ----------
    auc, auc_ci : float, (float, float)
        ROC AUC and its 95% stratified bootstrap interval.
    tpr_at_fpr : dict
        ``{0.01: (tpr, (low, high), achieved_fpr), 0.001: ...}``: the highest TPR at FPR at most the
        level, its Clopper-Pearson interval, and the FPR actually reached.
    epsilon_lower_bound : float
        Empirical epsilon lower bound (95%), threshold chosen on the other half.
    n_members, n_non_members : int
    roc : dict
        ``{"fpr": [...], "tpr": [...], "auc": ...}``, thinned to at most 201 points, for plots.
    """

    auc: float
    auc_ci: tuple[float, float]
    tpr_at_fpr: dict[float, tuple[float, tuple[float, float], float]]
    epsilon_lower_bound: float
    n_members: int
    n_non_members: int
    roc: dict[str, object]


def _tpr_at(fpr: np.ndarray, tpr: np.ndarray, level: float, n_members: int) -> tuple[float, tuple[float, float], float]:
    ok = np.nonzero(fpr <= level + 1e-12)[0]
    best = ok[np.argmax(tpr[ok])]
    k = int(round(tpr[best] * n_members))
    return float(tpr[best]), clopper_pearson(k, n_members), float(fpr[best])


def _epsilon_split(members: np.ndarray, non_members: np.ndarray, *, delta: float, rng: np.random.Generator) -> float:
    m_idx, n_idx = rng.permutation(len(members)), rng.permutation(len(non_members))
    m_sel, m_eval = members[m_idx[: len(m_idx) // 2]], members[m_idx[len(m_idx) // 2:]]
    n_sel, n_eval = non_members[n_idx[: len(n_idx) // 2]], non_members[n_idx[len(n_idx) // 2:]]
    if not (len(m_sel) and len(m_eval) and len(n_sel) and len(n_eval)):
        return 0.0
    # Pick the threshold (and direction of the test) with the largest point-estimate bound on the selection half.
    best_t, best_value = np.inf, -1.0
    for t in np.unique(np.concatenate([m_sel, n_sel])):
        tp, fp = int((m_sel >= t).sum()), int((n_sel >= t).sum())
        tpr, fpr = tp / len(m_sel), fp / len(n_sel)
        value = max(math.log(max(tpr - delta, 1e-12) / max(fpr, 1 / (2 * len(n_sel)))),
                    math.log(max(1 - fpr - delta, 1e-12) / max(1 - tpr, 1 / (2 * len(m_sel)))))
        if value > best_value:
            best_t, best_value = t, value
    tp, fp = int((m_eval >= best_t).sum()), int((n_eval >= best_t).sum())
    return empirical_epsilon(tp, len(m_eval), fp, len(n_eval), delta=delta)


def evaluate_attack(members: np.ndarray, non_members: np.ndarray, *, delta: float, seed: int = 0,
                    n_resamples: int = 1000) -> AttackResult:
    """ROC AUC, TPR at low FPR and the empirical epsilon lower bound of one attack's scores.

    Parameters
    ----------
    members, non_members : ndarray
        Attack scores (higher means "member") of training examples and of held-out examples.
    delta : float
        The delta of the privacy guarantee the bound is compared with.
    seed : int
        Seeds the bootstrap and the selection/evaluation split.
    """
    members, non_members = np.asarray(members, float), np.asarray(non_members, float)
    if not len(members) or not len(non_members):
        raise ValueError("an attack needs members and non-members")
    rng = np.random.default_rng(seed)
    auc = _auc(members, non_members)
    boot = np.empty(n_resamples)
    for b in range(n_resamples):
        boot[b] = _auc(members[rng.integers(0, len(members), len(members))],
                       non_members[rng.integers(0, len(non_members), len(non_members))])
    auc_ci = (float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975)))
    fpr, tpr, _ = _roc(members, non_members)
    levels = {level: _tpr_at(fpr, tpr, level, len(members)) for level in (0.01, 0.001)}
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), 201)).round().astype(int))
    return AttackResult(auc=auc, auc_ci=auc_ci, tpr_at_fpr=levels,
                        epsilon_lower_bound=_epsilon_split(members, non_members, delta=delta, rng=rng),
                        n_members=len(members), n_non_members=len(non_members),
                        roc={"fpr": fpr[keep].round(5).tolist(), "tpr": tpr[keep].round(5).tolist(),
                             "auc": round(auc, 5)})
