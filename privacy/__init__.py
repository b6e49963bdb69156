"""raikit.privacy: differentially private fine-tuning (Opacus), its baseline and membership-inference audits.

>>> from raikit.audits import load_model                                  # doctest: +SKIP
>>> from raikit.privacy import PrivacyOptions, run_privacy
>>> from raikit.audits.sections import RunContext
>>> clf = load_model("builtin:minilm-sentiment")                          # doctest: +SKIP
>>> result = run_privacy(clf, PrivacyOptions(epsilon=8.0), RunContext())  # doctest: +SKIP
>>> result.metrics["dp.epsilon"].value, result.metrics["mia.dp.auc"].value  # doctest: +SKIP
"""
from raikit.audits.sections import section_registry
from raikit.audits.stats import clopper_pearson
from raikit.privacy._mia import AttackResult, empirical_epsilon, evaluate_attack, lira_scores, loss_scores
from raikit.privacy._one_run import OneRunAudit, draw_canaries, one_run_audit, one_run_epsilon, perfect_attack_bound
from raikit.privacy._section import ATTACKS, SECTION, PrivacyOptions, default_delta, run_privacy

#: The ``[privacy]`` table's one section, as the runner reads it (``raikit.audits.sections.SECTION_MODULES``).
SECTIONS = section_registry("privacy section", SECTION)

__all__ = [
    "SECTIONS", "PrivacyOptions", "SECTION", "run_privacy", "default_delta", "ATTACKS",
    "OneRunAudit", "draw_canaries", "one_run_audit", "one_run_epsilon", "perfect_attack_bound",
    "AttackResult", "evaluate_attack", "loss_scores", "lira_scores", "clopper_pearson", "empirical_epsilon",
]
