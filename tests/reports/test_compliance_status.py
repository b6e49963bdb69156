"""Compliance status from the evidence a clause needs and the gates on it: pass / fail / partial / not run."""
from __future__ import annotations

import copy

from _report_results import with_privacy_and_federated

from raikit.reports import compliance_mapping, render_html
from raikit.reports._compliance import STATUSES, clauses


def _status(results):
    return {c.clause.id: c for c in compliance_mapping(results)}


def test_every_clause_lists_the_evidence_it_needs():
    for clause in clauses():
        assert clause.evidence, clause.id
        assert any(e.metrics for e in clause.evidence), clause.id  # never artefacts alone


def test_a_failing_gate_makes_its_clauses_fail_not_covered(results):
    # fixture: fairness.counterfactual.flip_rate fails its gate; CrowS-Pairs passes
    status = _status(results)
    for clause in ("EU AI Act Art. 10(2)(f)-(g)", "EU AI Act Art. 15", "NIST AI RMF MEASURE 2.11"):
        assert status[clause].status == "fail", clause
        assert "fairness.counterfactual.flip_rate" in status[clause].reason
    # relax the gate: the same clauses are no longer "fail"
    passing = copy.deepcopy(results)
    passing["gates"] = [g for g in passing["gates"] if g["passed"]]
    assert _status(passing)["EU AI Act Art. 10(2)(f)-(g)"].status == "partial"  # clear findings no gate judges
    html = render_html(results)
    row = html.split("<strong>EU AI Act Art. 10(2)(f)-(g)</strong>")[1].split("</tr>")[0]
    assert ">fail</span>" in row and "covered" not in row


def test_a_clause_whose_section_did_not_run_is_not_run(results):
    status = _status(results)  # the fixture has no privacy section
    assert status["NIST AI RMF MEASURE 2.10"].status == "not run"
    assert "needs section privacy" in status["NIST AI RMF MEASURE 2.10"].reason
    # Art. 15 needs accuracy, robustness and membership inference: without privacy it is at most partial
    no_gates = copy.deepcopy(results)
    no_gates["gates"] = []
    art15 = _status(no_gates)["EU AI Act Art. 15"]
    assert art15.status == "partial" and "membership-inference" in art15.reason
    assert "robustness to perturbations (behaviour tests, counterfactual swaps)" in art15.produced
    # drop the explain section: the explanation clause is not run, whatever metrics remain
    no_explain = copy.deepcopy(no_gates)
    del no_explain["sections"]["explain"]
    assert _status(no_explain)["NIST AI RMF MEASURE 2.9"].status == "not run"
    with_privacy = with_privacy_and_federated(no_gates)
    with_privacy["metrics"]["privacy.mia.dp.auc"] = {"value": 0.55, "ci95": [0.5, 0.6], "n": 200}
    with_privacy["sections"]["privacy"] = {"capability": "privacy", "model": "sentiment", "details": {}}
    art15 = _status(with_privacy)["EU AI Act Art. 15"]  # every piece ran, but clear findings go ungated
    assert art15.status == "partial" and "judged by no gate" in art15.reason
    from raikit.reports._view import ungated_findings

    gated = copy.deepcopy(with_privacy)
    gated["gates"] = [{"metric": f.metric, "max": 1.0, "use": "value", "passed": True, "value": f.value}
                      for f in ungated_findings(with_privacy)]
    assert _status(gated)["EU AI Act Art. 15"].status == "pass"


def test_sign_off_clause_is_never_green_without_a_signature(results):
    no_gates = copy.deepcopy(results)
    no_gates["gates"] = []
    annex = _status(no_gates)["EU AI Act Annex IV 2(g)"]
    assert annex.status == "partial" and "signed" in annex.reason
    assert annex.produced == ("metrics measured", "dated run log")


def test_empty_results_run_nothing():
    for entry in compliance_mapping({"schema_version": "1.0", "run": {}, "metrics": {}}):
        assert entry.status == "not run"
        assert entry.status in STATUSES and entry.to_dict()["status"] == "not run"


def test_a_clause_with_clear_findings_no_gate_judges_is_partial_not_pass(results):
    passing = copy.deepcopy(results)
    passing["gates"] = [g for g in passing["gates"] if g["passed"]]  # CrowS-Pairs metric_score only
    art10 = _status(passing)["EU AI Act Art. 10(2)(f)-(g)"]
    assert art10.status == "partial"
    # the CrowS-Pairs race group (63 [55.5, 70]) and the counterfactual flip rate are clear and ungated
    assert "2 finding(s) on this evidence whose 95% CI excludes no bias are judged by no gate" in art10.reason
    assert "partial until they are gated" in art10.reason


def test_the_badge_counts_gates_passed_and_findings_not_gated(results):
    from raikit.reports import render_html, render_markdown
    from raikit.reports._view import verdict, verdict_badge

    passing = copy.deepcopy(results)
    passing["gates"] = [g for g in passing["gates"] if g["passed"]]
    assert verdict(passing) == "PARTIAL"
    badge = verdict_badge(passing)
    assert badge.startswith(f"{len(passing['gates'])} gate") and "passed; " in badge and "not gated" in badge
    html = render_html(passing)
    assert f'class="verdict PARTIAL">{badge}<' in html
    ci_gate = next(g for g in passing["gates"] if g["use"] == "ci" and g.get("max") is not None)
    assert f"upper 95% bound {ci_gate['ci95'][1]:g}" in html  # the bound the gate judged, named
    assert f"Verdict: ➖ {badge}" in render_markdown(passing)
    nothing = {"schema_version": "1.0", "run": {}, "metrics": {}, "sections": {}, "gates": []}
    assert verdict(nothing) == "NOTHING MEASURED"
    assert "Nothing was measured" in render_html(nothing) and "No finding" not in render_html(nothing)
    assert "Nothing was measured" in render_markdown(nothing)
