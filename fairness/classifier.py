"""Bias tests for text classifiers: counterfactual invariance, behaviour tests, per-group metrics.

The three sections live in their own modules; this module keeps the names they had when they shared one
file, so ``from raikit.fairness.classifier import ...`` goes on working:

* ``counterfactual`` (:mod:`raikit.fairness.counterfactual`, swaps in :mod:`raikit.fairness.swaps`): swap
  group terms (he <-> she, Christian -> Muslim, ...) in texts, whole words with their case kept, and
  measure how often the predicted class flips (``flip_rate``) and how much the predicted class's
  probability moves (``mean_abs_delta``); Garg et al. 2019 (counterfactual token fairness), word lists
  from bias-bench (Meade et al. 2022) or WinoBias (Zhao et al. 2018).
* ``behaviour`` (:mod:`raikit.fairness.behaviour`): CheckList tests (Ribeiro et al. 2020) from templates:
  minimum functionality (MFT) and directional (DIR); failure rates overall and per identity group, with a
  permutation p-value for the largest gap between groups.
* ``groups`` (:mod:`raikit.fairness.groups`): accuracy, false positive rate, false negative rate and
  selection rate per group with ``fairlearn.metrics.MetricFrame``, plus demographic parity and equalized
  odds differences, on labelled data with a group column (or the starter MFT templates).

What they share (citations, the starter templates, the classifier check) is in
``raikit.fairness._classifier_common``.
"""
from __future__ import annotations

from raikit.audits.retrain_metrics import ITEMS_TABLE  # noqa: F401  (imported from here by tests)
from raikit.fairness._classifier_common import (  # noqa: F401
    CITATIONS, _group_column, starter_labelled_texts,
)
from raikit.fairness.behaviour import BehaviourOptions, BehaviourResult, behaviour_tests
from raikit.fairness.counterfactual import CounterfactualOptions, CounterfactualResult, counterfactual_invariance
from raikit.fairness.groups import GroupMetricsResult, GroupsOptions, _run_groups, group_metrics  # noqa: F401
from raikit.fairness.swaps import SwapList, counterfactuals, load_swaps

__all__ = [
    "SwapList", "load_swaps", "counterfactuals", "CounterfactualOptions", "CounterfactualResult",
    "counterfactual_invariance", "BehaviourOptions", "BehaviourResult", "behaviour_tests", "GroupsOptions",
    "GroupMetricsResult", "group_metrics", "CITATIONS",
]
