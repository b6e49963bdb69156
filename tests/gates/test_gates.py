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
    assert "'max' must be a finite number" in text and "needs min, max or both" in text
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


@pytest.mark.parametrize("bound", ["nan", "inf", "-inf"])
def test_non_finite_threshold_is_a_config_error_and_never_passes(tmp_path, bound, capsys):
    """issue 15 defect 1: `{ max = nan }` printed PASS and exited 0."""
    from raikit.audits.cli import main

    cfg = tmp_path / "g.toml"
    cfg.write_text(f'[gates]\n"fairness.crows_pairs.metric_score" = {{ max = {bound} }}\n')
    results = tmp_path / "results.json"
    results.write_text('{"schema_version": "1.0", "metrics": {"fairness.crows_pairs.metric_score": '
                       '{"value": 55.0, "ci95": [50, 61], "n": 4}}, "gates": []}')
    with pytest.raises(SystemExit) as err:
        main(["gate", str(results), "--config", str(cfg)])
    assert err.value.code == 2
    captured = capsys.readouterr()
    assert "PASS" not in captured.out
    assert captured.err.strip().splitlines() == [
        f"raikit: error: {cfg}: [gates]: 'fairness.crows_pairs.metric_score': key 'max' must be a finite number, "
        f"got {float(bound)!r}"]


def test_non_finite_limits_and_bounds_fail_when_evaluated():
    """A Gate built in code (or from a results file) with NaN on either side fails rather than passing."""
    nan = float("nan")
    assert not evaluate_gates([Gate("fairness.crows_pairs.metric_score", max=nan)], METRICS)[0].passed
    assert not evaluate_gates([Gate("fairness.crows_pairs.metric_score", min=nan)], METRICS)[0].passed
    odd = {"m": {"value": 1.0, "ci95": [None, nan], "n": 3}}
    assert not evaluate_gates([Gate("m", max=2.0, use="ci")], odd)[0].passed
    assert not evaluate_gates([Gate("m", min=0.0, use="ci")], odd)[0].passed
    with pytest.raises(AssertionError):
        check({"metrics": METRICS}, gates=[], fairness__crows_pairs__metric_score={"max": nan})


def test_non_finite_option_is_a_config_error():
    from raikit.audits.config import validate_options
    from raikit.fairness.classifier import BehaviourOptions

    where = "a.toml: [fairness.behaviour]"
    built, problems = validate_options({"tolerance": float("nan")}, BehaviourOptions, where=where)
    assert built is None and problems == [f"{where}: key 'tolerance' must be a finite number, got nan"]
