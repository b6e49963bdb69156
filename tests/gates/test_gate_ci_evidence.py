"""A CI-based gate refuses an interval that is no evidence: value outside its CI, zero width at small n."""
from __future__ import annotations

import jsonschema
import pytest

from raikit.audits.gates import SMALL_N, Gate, check, ci_problem, evaluate_gates
from raikit.reports import results_schema


def test_value_outside_its_own_ci_fails_a_ci_gate_with_the_reason():
    # the case: demographic parity difference 0.4 with "95% CI [0, 0.2]" passed max = 0.3 on the CI
    metrics = {"fairness.groups.demographic_parity_difference": {"value": 0.4, "ci95": [0.0, 0.2], "n": 137}}
    (outcome,) = evaluate_gates([Gate("fairness.groups.demographic_parity_difference", max=0.3, use="ci")], metrics)
    assert not outcome.passed
    assert "the value 0.4 lies outside its own 95% CI [0, 0.2]" in outcome.message
    assert "no evidence" in outcome.message
    recorded = outcome.to_dict()
    assert recorded["passed"] is False
    assert recorded["ci_problem"] == "the value 0.4 lies outside its own 95% CI [0, 0.2]"
    # the recorded form is valid results.json
    jsonschema.validate({"schema_version": "1.0", "run": {}, "metrics": metrics, "gates": [recorded]},
                        results_schema())


def test_zero_width_ci_at_small_n_fails_but_not_at_large_n():
    metrics = {"a.rate": {"value": 0.0, "ci95": [0.0, 0.0], "n": 5},
               "b.rate": {"value": 0.0, "ci95": [0.0, 0.0], "n": 500}}
    small, large = evaluate_gates([Gate("a.rate", max=0.1, use="ci"), Gate("b.rate", max=0.1, use="ci")], metrics)
    assert not small.passed and "has zero width at n = 5 (below 30)" in small.message
    assert small.ci_problem and "zero width" in small.ci_problem
    assert large.passed and large.ci_problem is None


def test_value_gates_and_good_intervals_are_unaffected():
    metrics = {"a.rate": {"value": 0.4, "ci95": [0.0, 0.2], "n": 5},
               "b.score": {"value": 55.0, "ci95": [50.0, 61.0], "n": 100}}
    by_value, good = evaluate_gates([Gate("a.rate", max=0.5), Gate("b.score", max=65.0, use="ci")], metrics)
    assert by_value.passed and by_value.ci_problem is None  # a point-value gate does not use the interval
    assert good.passed and good.ci_problem is None and "meets CI bound <= 65" in good.message


@pytest.mark.parametrize(("value", "ci", "n", "expected"), [
    (0.4, [0.0, 0.2], 100, "outside"),
    (1.0, [1.0, 1.0], 2, "zero width at n = 2"),
    (1.0, [1.0, 1.0], None, "zero width at unknown n"),
    (1.0, [1.0, 1.0], SMALL_N, None),
    (0.5, [0.2, 0.8], 3, None),
    (0.5, None, 3, None),
    (0.5, [None, 0.8], 3, None),
    (0.2, [0.2, 0.2 + 1e-12], 4, "zero width"),
])
def test_ci_problem_cases(value, ci, n, expected):
    found = ci_problem(value, ci, n)
    assert (found is None) == (expected is None)
    if expected:
        assert expected in found


def test_check_reevaluates_recorded_gates_with_the_same_rule():
    results = {"metrics": {"a.rate": {"value": 0.4, "ci95": [0.0, 0.2], "n": 50}},
               "gates": [{"metric": "a.rate", "max": 0.3, "use": "ci", "min": None, "clause": None}]}
    with pytest.raises(AssertionError, match="outside its own 95% CI"):
        check(results)
