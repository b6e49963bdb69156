"""results.json schema and loading, run diffs and the compliance mapping."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from fixture_results import _counterfactual, _explain, build_results, subset

from raikit.audits.errors import RaikitInputError
from raikit.audits.gates import evaluate_gates
from raikit.reports import (compliance_mapping, diff_results, load_results, render_html, render_junit, render_markdown,
                            render_model_card, results_schema, validate_results)
from raikit.reports._clauses import clauses


@pytest.fixture(scope="module")
def audit_results() -> dict[str, Any]:
    return build_results()


# -- schema --------------------------------------------------------------------------------------------
def test_schema_is_valid_draft_2020_12() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = results_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["properties"]["schema_version"] == {"const": "1.0"}
    jsonschema.Draft202012Validator.check_schema(schema)


def test_fixture_matches_schema(audit_results: dict[str, Any]) -> None:
    validate_results(audit_results)
    validate_results(json.loads(json.dumps(audit_results)))


def test_runner_assembled_results_match_schema(tmp_path: Path) -> None:
    """The dict the runner writes (raikit.audits.runner._assemble) validates and renders in every format."""
    from raikit.audits.runner import _assemble, _section_entry, load_audit

    (tmp_path / "swaps.csv").write_text("word,swap,axis\nhe,she,gender\n", encoding="utf-8")
    config = tmp_path / "audit.toml"
    config.write_text(
        '[models.clf]\nid = "builtin:minilm-sentiment"\n\n'
        '[fairness.counterfactual]\nmodel = "clf"\nswaps = "swaps.csv"\n\n'
        '[explain]\nmodel = "clf"\ntexts = ["good film", "bad film"]\n\n'
        '[gates]\n"fairness.counterfactual.flip_rate" = { max = 0.05, clause = "EU AI Act Art. 15" }\n'
        '"explain.shap.comprehensiveness" = { min = 0.1, use = "ci" }\n\n'
        '[report]\ntitle = "Runner shape"\nreviewers = ["R. One"]\n', encoding="utf-8")
    audit = load_audit(config)
    made = {"fairness.counterfactual": _counterfactual(), "explain": _explain()}
    sections = {p.key: json.loads(json.dumps(_section_entry(p, made[p.key], 1.5, {"pairs": f"{p.key}.pairs.csv"},
                                                            p.table.model))) for p in audit.plan}
    results = _assemble(audit, sections, {}, tmp_path / "run-1", "2026-11-23T08:00:00+00:00", "cpu", True, {})
    results["gates"] = [o.to_dict() for o in evaluate_gates(list(audit.gates), results["metrics"])]
    results = json.loads(json.dumps(results, allow_nan=False))
    validate_results(results)
    assert [g["passed"] for g in results["gates"]] == [False, True]
    page = render_html(results)
    assert "Runner shape" in page and "R. One" in page and "not loaded in this run" not in page
    assert "FAIL" in render_markdown(results) and 'failures="1"' in render_junit(results)
    assert "model-index" in render_model_card(results)


@pytest.mark.parametrize(("change", "message"), [
    (lambda r: r.update(schema_version="2.0"), "schema_version is '2.0'; this raikit reads schema_version '1.0'"),
    (lambda r: r.pop("metrics"), "metrics"),
    (lambda r: r["metrics"]["fairness.crows_pairs.metric_score"].update(value="high"), "metric_score"),
    (lambda r: r["metrics"]["fairness.crows_pairs.metric_score"].update(n=-1), "metric_score"),
    (lambda r: r["metrics"]["fairness.crows_pairs.metric_score"].update(ci95=[1, 2, 3]), "ci95"),
    (lambda r: r["gates"][0].pop("passed"), "gates"),
])
def test_schema_rejects(audit_results: dict[str, Any], change: Any, message: str) -> None:
    bad = copy.deepcopy(audit_results)
    change(bad)
    with pytest.raises(RaikitInputError, match="^bad.json: ") as info:
        validate_results(bad, where="bad.json")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_schema_rejects_without_jsonschema(audit_results: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The built-in structural check is used where jsonschema is not installed."""
    import builtins

    real_import = builtins.__import__

    def no_jsonschema(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "jsonschema":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_jsonschema)
    validate_results(audit_results)
    bad = copy.deepcopy(audit_results)
    bad["metrics"]["fairness.crows_pairs.metric_score"]["n"] = 2.5
    with pytest.raises(RaikitInputError, match="metrics/fairness.crows_pairs.metric_score/n: 2.5 is not a count"):
        validate_results(bad, where="x")


# -- load_results --------------------------------------------------------------------------------------
def test_load_results_reads_file_and_folder(audit_results: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text(json.dumps(audit_results), encoding="utf-8")
    assert load_results(tmp_path / "results.json") == audit_results
    assert load_results(tmp_path) == audit_results


def test_load_results_errors(audit_results: dict[str, Any], tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(RaikitInputError, match=f"^{missing}: results file not found$"):
        load_results(missing)
    broken = tmp_path / "broken.json"
    broken.write_text('{"schema_version": "1.0",', encoding="utf-8")
    with pytest.raises(RaikitInputError, match=rf"^{broken}: not valid JSON \(line 1"):
        load_results(broken)
    array = tmp_path / "array.json"
    array.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(RaikitInputError, match="expected a JSON object at the top level, got list"):
        load_results(array)
    old = tmp_path / "old.json"
    old.write_text(json.dumps({**audit_results, "schema_version": "0.9"}), encoding="utf-8")
    with pytest.raises(RaikitInputError, match=f"^{old}: schema_version is '0.9'"):
        load_results(old)
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(RaikitInputError, match="cannot read the results file"):
        load_results(binary)


# -- diff ----------------------------------------------------------------------------------------------
def _metric(value: float | None, ci: list[float] | None) -> dict[str, Any]:
    return {"value": value, "ci95": ci, "n": 10, "details": {}}


def test_diff_moved_beyond_ci() -> None:
    old = {"run": {"id": "old-run"}, "metrics": {
        "a.inside": _metric(50.0, [45.0, 55.0]), "a.outside": _metric(50.0, [45.0, 55.0]),
        "a.disjoint": _metric(0.5, [0.49, 0.51]), "a.same": _metric(1.0, [0.5, 1.5]), "a.noci": _metric(1.0, None),
        "a.gone": _metric(3.0, None)}}
    new = {"run": {"id": "new-run"}, "metrics": {
        "a.inside": _metric(54.0, [49.0, 59.0]), "a.outside": _metric(56.0, [50.0, 62.0]),
        "a.disjoint": _metric(0.5, [0.52, 0.60]), "a.same": _metric(1.0, [0.5, 1.5]), "a.noci": _metric(9.0, None),
        "a.new": _metric(2.0, [1.0, 3.0])}}
    diff = diff_results(old, new)
    rows = {r.metric: r for r in diff.rows}
    assert [r.metric for r in diff.rows] == sorted(rows)
    assert not rows["a.inside"].moved_beyond_ci and rows["a.inside"].direction == "up"
    assert rows["a.outside"].moved_beyond_ci and rows["a.outside"].delta == pytest.approx(6.0)
    # same point value, but the intervals no longer overlap
    assert rows["a.disjoint"].moved_beyond_ci
    assert not rows["a.same"].moved_beyond_ci and rows["a.same"].direction == "same"
    assert not rows["a.noci"].moved_beyond_ci and rows["a.noci"].direction == "up"
    assert rows["a.gone"].direction == "removed" and rows["a.new"].direction == "added"
    assert not rows["a.new"].moved_beyond_ci
    assert [r.metric for r in diff.regressions] == ["a.disjoint", "a.outside"]
    text = diff.to_text()
    assert text.splitlines()[0] == "raikit diff: old-run -> new-run"
    assert "2 of 7 metric(s) moved beyond the old run's 95% CI (marked *)" in text
    starred = [line.split()[1] for line in text.splitlines() if line.startswith("*")]
    assert starred == ["a.disjoint", "a.outside"]
    assert "a.same" not in diff.to_text(only_changed=True)


def test_diff_of_identical_runs(audit_results: dict[str, Any]) -> None:
    diff = diff_results(audit_results, copy.deepcopy(audit_results))
    assert diff.regressions == () and {r.direction for r in diff.rows} == {"same"}
    assert len(diff.rows) == len(audit_results["metrics"])


# -- compliance ----------------------------------------------------------------------------------------
def test_compliance_file_has_the_required_clauses() -> None:
    ids = [c.id for c in clauses()]
    for needed in ("EU AI Act Art. 10(2)(f)-(g)", "EU AI Act Art. 10(5)", "EU AI Act Art. 13(3)(b)",
                   "EU AI Act Art. 15", "EU AI Act Annex IV 2(g)", "NIST AI RMF MEASURE 2.9",
                   "NIST AI RMF MEASURE 2.10", "NIST AI RMF MEASURE 2.11"):
        assert needed in ids
    assert all(c.title and c.needs and c.patterns for c in clauses())


def test_compliance_mapping(audit_results: dict[str, Any]) -> None:
    mapping = {c.clause.id: c for c in compliance_mapping(audit_results)}
    bias = mapping["EU AI Act Art. 10(2)(f)-(g)"]
    assert bias.status == "covered"
    assert set(bias.evidence) == {m for m in audit_results["metrics"] if m.startswith("fairness.")}
    assert "FAIL fairness.crows_pairs.metric_score" in bias.gates
    art15 = mapping["EU AI Act Art. 15"]
    assert set(art15.evidence) == {m for m in audit_results["metrics"] if m.startswith("fairness.counterfactual.")}
    assert art15.gates == ("PASS fairness.counterfactual.flip_rate",)
    assert mapping["NIST AI RMF MEASURE 2.9"].n_metrics == sum(m.startswith("explain.") for m in audit_results["metrics"])
    assert mapping["EU AI Act Annex IV 2(g)"].evidence[-1] == "run provenance"
    # no privacy metric in this run: the privacy clause is not covered
    privacy = mapping["NIST AI RMF MEASURE 2.10"]
    assert privacy.evidence == () and privacy.status == "not covered"


def test_compliance_not_covered_without_metrics(audit_results: dict[str, Any]) -> None:
    mapping = compliance_mapping(subset(audit_results, None))
    assert {c.status for c in mapping} == {"not covered"}
    annex = next(c for c in mapping if c.clause.id == "EU AI Act Annex IV 2(g)")
    assert annex.evidence == ("run provenance",) and not annex.covered
    page = render_html(subset(audit_results, "explain"))
    assert page.count('<td class="not-covered">not covered</td>') == sum(
        c.status == "not covered" for c in compliance_mapping(subset(audit_results, "explain")))
