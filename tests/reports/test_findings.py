"""Findings: worst groups and largest effects across sections, ranked by effect, with CIs and examples."""
from __future__ import annotations

import copy
import re

from _report_results import build_results

from raikit.reports import render_html, render_markdown
from raikit.reports._findings import findings, findings_view, headline, verdict_scope


def _default_audit_like() -> dict:
    """The shapes of the default audit's disability and association results (run 20261127-034559)."""
    results = build_results()
    results["gates"] = []
    m = results["metrics"]

    def metric(value, ci, n):
        return {"value": value, "ci95": ci, "n": n, "details": {}}

    for group, fnr, ci, n in (("disability_disabled", 1 / 3, [0.097, 0.7], 10),
                              ("disability_nondisabled", 2 / 3, [0.208, 0.939], 5),
                              ("gender_male", 0.0, [0.0, 0.561], 5)):
        m[f"fairness.groups.false_negative_rate.by_group.{group}"] = metric(fnr, ci, n)
    m["fairness.groups.false_negative_rate.difference"] = metric(2 / 3, [1 / 3, 1.0], 137)
    m["fairness.template_seat.names_occupation.effect_size"] = {
        "value": 1.92, "ci95": [1.636, 1.937], "n": 160,
        "details": {"categories": {"targ1": "first_name:male", "targ2": "first_name:female",
                                   "attr1": "occupation:male_dominated", "attr2": "occupation:female_dominated"}}}
    m["fairness.crows_pairs.by_bias_type.age"] = metric(87.5, [52.9, 97.8], 8)
    m["fairness.behaviour.failure_rate"] = metric(4 / 174, [0.0069, 0.0738], 174)
    m["fairness.behaviour.by_group.disability_nondisabled.failure_rate"] = metric(1 / 3, [0.097, 0.7], 6)
    m["fairness.behaviour.by_group.gender_male.failure_rate"] = metric(0.0, [0.0, 0.39], 6)
    m["fairness.stereoset.by_bias_type.religion.ss"] = metric(0.0, None, 1)
    m["fairness.stereoset.by_bias_type.race.ss"] = metric(69.2, [46.2, 88.5], 17)
    results["sections"]["fairness.template_seat"] = {"capability": "fairness", "model": "minilm", "details": {}}
    results["sections"]["fairness.stereoset"] = {"capability": "fairness", "model": "smollm", "details": {}}
    results["sections"]["fairness.behaviour"] = {
        "capability": "fairness", "model": "sentiment",
        "details": {"failures": [{"text": "A blind person said the food was delicious.", "label": "positive",
                                  "predicted": "negative", "template_id": "mft_pos_food"},
                                 {"text": "I watched the movie with a disabled friend and we loved it.",
                                  "label": "positive", "predicted": "negative", "template_id": "mft_pos_movie"}]}}
    results["models"]["minilm"] = {"id": "builtin:minilm-l6", "kind": "encoder"}
    return results


def test_findings_rank_by_effect_with_cis_and_examples():
    found = findings(_default_audit_like())
    titles = [f.title for f in found]
    clear = [f for f in found if f.clear]
    assert clear and all(f.clear for f in found[:len(clear)])  # CI excludes no bias: ranked first
    assert [f.effect for f in clear] == sorted((f.effect for f in clear), reverse=True)
    top = found[0]
    assert "names_occupation" in top.title and top.ci95 == (1.636, 1.937) and top.effect == 0.96
    assert top.model == "minilm" and top.anchor == "sec-fairness.template_seat"
    assert "first_name:male is associated with occupation:male_dominated" in top.examples[0]
    fnr = next(f for f in found if "false negative rate gap" in f.title)
    assert fnr.clear and fnr.ci95 == (1 / 3, 1.0) and fnr.metric == "fairness.groups.false_negative_rate.difference"
    assert "disability_nondisabled 0.6667 [0.208, 0.939]" in fnr.title and "(n = 5)" in fnr.title
    age = next(f for f in found if "CrowS-Pairs" in f.title and "worst group" in f.title)
    assert "worst group age: 87.5 [52.9, 97.8], n = 8" in age.title and age.clear
    behaviour = next(f for f in found if f.kind == "behaviour")
    assert "failures only in disability_nondisabled" in behaviour.title
    assert behaviour.examples[0].startswith('"A blind person said the food was delicious."')
    assert "expected positive, predicted negative" in behaviour.examples[0]
    # a group with n = 1 and no CI is not the "worst group" of its family; its reason is given
    stereo = next(f for f in found if "StereoSet" in f.title)
    assert "worst group race" in stereo.title and "religion (n = 1, no usable CI)" in stereo.caveat
    assert not stereo.clear and "includes 50" in stereo.caveat
    assert len(titles) == len(set(titles))


def test_an_interval_that_is_no_evidence_never_counts_as_clear():
    results = _default_audit_like()
    results["metrics"]["fairness.template_seat.names_occupation.effect_size"]["ci95"] = [0.1, 0.2]  # excludes 1.92
    names = next(f for f in findings(results) if "names_occupation" in f.title)
    assert not names.clear and "outside its own 95% CI" in names.caveat


def test_failed_gates_lead_and_carry_their_examples(results):
    found = findings(results)
    assert found[0].kind == "gate" and "fairness.counterfactual.flip_rate" in found[0].title
    assert found[0].examples and "she was a great nurse" in found[0].examples[0]
    assert sum(f.metric == "fairness.counterfactual.flip_rate" for f in found) == 1


def test_reaudited_copies_fold_into_one_finding():
    results = _default_audit_like()
    m = results["metrics"]
    for group, value, ci in (("disability_nondisabled", 1 / 3, [0.06, 0.79]), ("gender_male", 0.0, [0.0, 0.56])):
        m[f"privacy.dp.fairness.groups.false_negative_rate.by_group.{group}"] = {"value": value, "ci95": ci, "n": 5}
    m["privacy.dp.fairness.groups.false_negative_rate.difference"] = {"value": 1 / 3, "ci95": [0.0, 0.67], "n": 137}
    results["sections"]["privacy.dp.fairness.groups"] = {"capability": "fairness", "model": "privacy.dp",
                                                         "reaudit_of": "fairness.groups", "details": {}}
    results["models"]["privacy.dp"] = {"id": "models/privacy.dp", "kind": "classifier"}
    gaps = [f for f in findings(results) if "false negative rate gap" in f.title]
    assert len(gaps) == 1 and gaps[0].model == "sentiment"
    assert gaps[0].also == ("privacy.dp (models/privacy.dp): 0.3333 [0, 0.67]",)


def test_headline_keeps_one_of_each_kind():
    found = findings(_default_audit_like())
    shown = headline(found, n=2)
    assert shown[:2] == found[:2]
    assert {f.kind for f in shown} == {f.kind for f in found}


def test_verdict_names_the_models_it_applies_to(results):
    judged, unjudged = verdict_scope(results)
    assert judged == ["smollm (builtin:smollm2-135m)", "sentiment (builtin:minilm-sentiment)"]
    assert unjudged == []
    only_crows = copy.deepcopy(results)
    only_crows["gates"] = only_crows["gates"][:1]
    assert verdict_scope(only_crows) == (["smollm (builtin:smollm2-135m)"], ["sentiment (builtin:minilm-sentiment)"])
    html = render_html(only_crows)
    assert "The verdict applies to smollm (builtin:smollm2-135m) only; no gate judges sentiment" in html


def test_summary_md_starts_with_the_findings(results):
    md = render_markdown(results)
    lines = md.splitlines()
    assert lines[0].startswith("## Audit of") and lines[2] == "### Findings"
    first = next(line for line in lines if re.match(r"1\. ", line))
    assert "gate failed" in first and "flip" in first
    assert md.index("### Findings") < md.index("### Verdict: ❌ FAIL")
    assert "(report.html#sec-fairness.counterfactual)" in md
    view = findings_view(results)
    for f in view.shown:
        assert f"**{f.kind}**" in md


def test_html_findings_come_first_and_link_to_their_sections(results):
    html = render_html(_default_audit_like())
    assert html.index('id="findings"') < html.index('id="verdict"') < html.index('id="cap-fairness"')
    block = html.split('id="findings"')[1].split("</section>")[0]
    anchors = re.findall(r'href="#(sec-[^"]+)"', block)
    assert anchors and all(f'id="{a}"' in html for a in anchors)
    assert "names_occupation" in block and "[1.636, 1.937]" in block
    assert "A blind person said the food was delicious." in block


def test_privacy_and_retraining_findings_say_what_their_null_is(results):
    results["sections"]["privacy"] = {"capability": "privacy", "model": "sentiment", "details": {}}
    results["metrics"]["privacy.mia.dp.auc"] = {"value": 0.58, "ci95": [0.51, 0.65], "n": 246}
    results["metrics"]["privacy.dp.accuracy_cost"] = {"value": 0.05, "ci95": [0.01, 0.09], "n": 123}
    found = {f.kind: f for f in findings(results)}
    assert "(chance: 0.5)" in found["privacy"].title and found["privacy"].clear
    assert round(found["privacy"].effect, 2) == 0.16
    cost = found["retraining cost"]
    assert "accuracy lost to differential privacy" in cost.title and "(no cost: 0)" in cost.title and cost.clear


def test_a_negative_association_is_described_in_its_own_direction():
    results = _default_audit_like()
    results["metrics"]["fairness.template_seat.names_occupation.effect_size"]["value"] = -0.9
    results["metrics"]["fairness.template_seat.names_occupation.effect_size"]["ci95"] = [-1.2, -0.5]
    names = next(f for f in findings(results) if "names_occupation" in f.title)
    assert names.clear and names.effect == 0.45
    assert names.examples == ("first_name:male is associated with occupation:female_dominated and first_name:female "
                              "with occupation:male_dominated (negative d: the reverse direction)",)


def test_a_gate_on_a_missing_metric_links_to_the_verdict(results):
    results["gates"].append({"metric": "fairness.seat.weat6.effect_size", "max": 0.5, "use": "value", "passed": False,
                             "message": "fairness.seat.weat6.effect_size: missing from the results"})
    missing = next(f for f in findings(results) if f.metric == "fairness.seat.weat6.effect_size")
    assert missing.kind == "gate" and missing.anchor == "verdict" and missing.model == ""
    html = render_html(results)
    assert '<a href="#verdict">the verdict</a>' in html and 'id="verdict"' in html
    assert "[the verdict](report.html#verdict)" in render_markdown(results)
