"""Calibration per group: expected calibration error split into over- and under-confidence.

A classifier is calibrated when, among the texts it predicts with confidence ``c`` (the probability of the
class it predicts), a share ``c`` is right. With equal-width confidence bins ``b`` holding ``n_b`` of the
``n`` texts, mean confidence ``conf_b`` and accuracy ``acc_b`` (Guo et al. 2017, "On Calibration of
Modern Neural Networks"):

* ``ece = sum_b n_b / n * |conf_b - acc_b|``;
* ``overconfidence = sum_b n_b / n * max(conf_b - acc_b, 0)`` (more sure than right: Giskard's
  overconfidence detector reads the same direction);
* ``underconfidence = sum_b n_b / n * max(acc_b - conf_b, 0)``; so ``ece = overconfidence + underconfidence``.

Each is computed overall and per group, with a percentile bootstrap 95% CI (texts resampled within their
group), and the largest gap between groups of the ECE.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from raikit.audits.errors import RaikitInputError
from raikit.audits.results import Metric

__all__ = ["CalibrationResult", "calibration_by_group", "calibration_errors", "CITATION"]

CITATION = "Guo, Pleiss, Sun and Weinberger (2017). On Calibration of Modern Neural Networks. ICML."


def calibration_errors(confidence: np.ndarray, correct: np.ndarray, *, bins: int = 10) -> tuple[float, float, float]:
    """(ece, overconfidence, underconfidence) of one set of predictions.

    Parameters
    ----------
    confidence : array of float in [0, 1]
        Probability of the predicted class, per text.
    correct : array of bool or 0/1
        Whether the prediction was right, per text.
    bins : int
        Equal-width confidence bins over [0, 1] (the last bin includes 1).
    """
    conf = np.asarray(confidence, dtype=float)
    right = np.asarray(correct, dtype=float)
    if conf.size == 0:
        return float("nan"), float("nan"), float("nan")
    which = np.minimum((conf * bins).astype(int), bins - 1)
    # per bin, n_b * (conf_b - acc_b) is the bin's summed confidence minus its number of right predictions
    gap = np.bincount(which, weights=conf, minlength=bins) - np.bincount(which, weights=right, minlength=bins)
    over = float(np.clip(gap, 0, None).sum() / conf.size)
    under = float(np.clip(-gap, 0, None).sum() / conf.size)
    return over + under, over, under


@dataclass(frozen=True)
class CalibrationResult:
    """Metrics of :func:`calibration_by_group`, named relative to ``calibration.``.

    Attributes
    ----------
    metrics : dict of str to Metric
        ``{ece,overconfidence,underconfidence}.overall``, ``....by_group.<group>`` and ``ece.difference``.
    """

    metrics: dict[str, Metric]


def calibration_by_group(confidence: Sequence[float], correct: Sequence[bool], groups: Sequence[str], *,
                         bins: int = 10, n_bootstrap: int = 1000, seed: int = 0) -> CalibrationResult:
    """ECE, over- and under-confidence overall and per group, with bootstrap 95% CIs.

    Parameters
    ----------
    confidence, correct, groups : sequences of equal length
        Probability of the predicted class, whether it was right, and the group of each text.
    bins : int
        Confidence bins of the ECE.
    n_bootstrap : int
        Resamples (texts drawn with replacement within their group).
    seed : int
        Seed of the resampling.
    """
    conf = np.asarray(confidence, dtype=float)
    right = np.asarray(correct, dtype=float)
    grp = np.asarray(groups, dtype=object).astype(str)
    if not (len(conf) == len(right) == len(grp)) or len(conf) == 0:
        raise RaikitInputError("confidence, correct and groups must be non-empty and of equal length")
    names = sorted(set(grp))
    members = {g: np.flatnonzero(grp == g) for g in names}
    rng = np.random.default_rng(seed)
    draws = {g: rng.integers(0, len(idx), size=(n_bootstrap, len(idx))) for g, idx in members.items()}
    kinds = ("ece", "overconfidence", "underconfidence")
    metrics: dict[str, Metric] = {}

    def add(name: str, point: tuple[float, float, float], boot: np.ndarray, n: int) -> None:
        for k, kind in enumerate(kinds):
            low, high = np.percentile(boot[:, k], [2.5, 97.5])
            metrics[f"{kind}.{name}"] = Metric(point[k], (float(min(low, point[k])), float(max(high, point[k]))), n,
                                               {"ci": "percentile bootstrap, texts resampled within their group",
                                                "bins": bins, "citation": CITATION})

    per_group_boot = {}
    for g, idx in members.items():
        boot = np.array([calibration_errors(conf[idx[d]], right[idx[d]], bins=bins) for d in draws[g]])
        per_group_boot[g] = boot
        add(f"by_group.{g}", calibration_errors(conf[idx], right[idx], bins=bins), boot, len(idx))
    overall = np.array([calibration_errors(np.concatenate([conf[members[g][draws[g][b]]] for g in names]),
                                           np.concatenate([right[members[g][draws[g][b]]] for g in names]), bins=bins)
                        for b in range(n_bootstrap)])
    add("overall", calibration_errors(conf, right, bins=bins), overall, len(conf))
    eces = [metrics[f"ece.by_group.{g}"].value for g in names]
    gap = float(max(eces) - min(eces))
    boot_gap = np.stack([per_group_boot[g][:, 0] for g in names], axis=1)
    boot_gap = boot_gap.max(axis=1) - boot_gap.min(axis=1)
    low, high = np.percentile(boot_gap, [2.5, 97.5])
    metrics["ece.difference"] = Metric(gap, (float(min(low, gap)), float(max(high, gap))), len(conf),
                                       {"what": "largest minus smallest group ECE",
                                        "ci": "percentile bootstrap, stratified by group", "citation": CITATION})
    return CalibrationResult(metrics=metrics)
