"""Every section declares a human label and a one-line meaning for each metric it can produce."""
from __future__ import annotations

import pytest

from raikit.explain._section import SECTION as EXPLAIN
from raikit.fairness import SECTIONS
from raikit.federated._section import SECTION as FEDERATED
from raikit.privacy._section import SECTION as PRIVACY
from raikit.reports._view import metric_rows

ALL = {**{f"fairness.{name}": SECTIONS.get(name) for name in SECTIONS}, "explain": EXPLAIN,
       "federated": FEDERATED, "privacy": PRIVACY}
#: Declared metrics that belong to other sections' re-audit of a retrained model (labelled by those sections).
REAUDIT = {"dp.fairness.*", "dp.explain.*", "baseline.fairness.*", "baseline.explain.*"}


@pytest.mark.parametrize("key", sorted(ALL))
def test_each_declared_metric_has_a_label_and_a_meaning(key):
    section = ALL[key]
    declared = {pattern for pattern, _, _ in section.meanings}
    labelled = {
        # a declared name is covered by its own pattern or by more specific ones under it ("by_bias_type.*"
        # by "by_bias_type.*.ss", ...)
        name for name in section.metrics
        if name in declared or any(p.startswith(name.rstrip("*")) for p in declared if name.endswith("*"))}
    assert set(section.metrics) - REAUDIT - labelled == set()
    for pattern, label, meaning in section.meanings:
        assert label and meaning.endswith(".") and len(meaning) <= 160, pattern


def _label(key: str, short: str) -> tuple[str, str]:
    """Label and meaning the report shows for ``<key>.<short>``, from the section's declaration in a results dict."""
    section = ALL[key]
    results = {"sections": {key: {"metric_meanings": {p: [lab, mean] for p, lab, mean in section.meanings}}},
               "metrics": {f"{key}.{short}": {"value": 1.0, "ci95": None, "n": 1}}}
    row = metric_rows(results, key)[0]
    return row.label, row.meaning


def test_report_fills_the_labels_of_real_metric_names():
    assert _label("fairness.groups", "false_negative_rate.by_group.disability_disabled")[0] == (
        "False negative rate, group disability_disabled")
    assert _label("fairness.groups", "demographic_parity_difference")[0] == "Demographic parity difference"
    assert _label("fairness.stereoset", "intersentence.by_bias_type.race.icat")[0] == "ICAT score, intersentence, race"
    assert _label("fairness.stereoset", "by_bias_type.race.ss")[0] == "Stereotype score (%), race"
    assert _label("fairness.seat", "weat6.effect_size")[0] == "Association effect size, test weat6"
    assert _label("fairness.counterfactual", "by_pair.race_asian_to_black.flip_rate")[0] == (
        "Flip rate, swap race_asian_to_black")
    assert _label("privacy", "dp.by_group.female.accuracy")[0] == "Accuracy of the dp model, group female"
    assert _label("explain", "shap.comprehensiveness")[1].startswith("Drop in the predicted class's probability")
