"""Gates: parsing with every problem reported, point value vs least favourable CI bound, check()."""
from __future__ import annotations

import pytest

from raikit.audits.gates import Gate, check, evaluate_gates, gates_from_config, parse_gates

METRICS = {
    "fairness.crows_pairs.metric_score": {"value": 55.0, "ci95": [50.0, 61.0], "n": 100},
    "explain.shap.comprehensiveness": {"value": 0.4, "ci95": [0.3, 0.5], "n": 8},
}


def test_value_versus_ci_bound():
    by_value, by_ci = evaluate_gates(
        [Gate("fairness.crows_pairs.metric_score", max=60.0),
         Gate("fairness.crows_pairs.metric_score", max=60.0, use="ci")], METRICS)
    assert by_value.passed and by_value.compared == 55.0
    assert not by_ci.passed and by_ci.compared == 61.0
    assert "61 > max 60" in by_ci.message
    low = evaluate_gates([Gate("explain.shap.comprehensiveness", min=0.35, use="ci")], METRICS)[0]
    assert not low.passed and low.compared == 0.3


def test_missing_metric_fails():
    outcome = evaluate_gates([Gate("fairness.seat.weat6.effect_size", max=0.5)], METRICS)[0]
    assert not outcome.passed and "missing" in outcome.message
    assert outcome.to_dict()["passed"] is False


def test_parse_collects_every_problem():
    table = {
        "fairness.crows_pairs.metric_scor": {"max": 60},
        "fairness.crows_pairs.stereotype_score": {"maxx": 60},
        "fairness.crows_pairs.antistereotype_score": {"use": "mean", "max": "high"},
        "explain.shap.aopc": {},
    }
    known = ["fairness.crows_pairs.metric_score", "fairness.crows_pairs.stereotype_score",
             "fairness.crows_pairs.antistereotype_score", "explain.*.aopc"]
    gates, problems = parse_gates(table, where="a.toml: [gates]", known_metrics=known)
    text = "\n".join(problems)
    assert "did you mean fairness.crows_pairs.metric_score" in text
    assert "unknown key 'maxx'" in text and "'use' must be 'value' or 'ci'" in text
    assert "'max' must be a number" in text and "needs min, max or both" in text
    assert gates == []
    ok, none = parse_gates({"explain.shap.aopc": {"min": 0.1}}, where="x", known_metrics=known)
    assert none == [] and ok == [Gate("explain.shap.aopc", min=0.1)]


def test_check_asserts(tmp_path):
    results = {"metrics": METRICS, "gates": [{"metric": "fairness.crows_pairs.metric_score", "max": 60.0,
                                               "use": "ci", "min": None, "clause": None}]}
    with pytest.raises(AssertionError, match="crows_pairs.metric_score"):
        check(results)
    check(results, gates=[Gate("fairness.crows_pairs.metric_score", max=60.0)])
    check(results, gates=[], explain__shap__comprehensiveness={"min": 0.2})
    cfg = tmp_path / "a.toml"
    cfg.write_text('[gates]\n"explain.shap.aopc" = { min = "x" }\n')
    with pytest.raises(Exception, match="a.toml"):
        gates_from_config(cfg)


def test_min_above_max_is_a_problem():
    gates, problems = parse_gates({"a.b": {"min": 2, "max": 1}}, where="a.toml: [gates]")
    assert gates == [] and problems == ["a.toml: [gates]: 'a.b': min 2 is greater than max 1; no value can pass"]
