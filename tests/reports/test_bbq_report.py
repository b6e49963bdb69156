"""BBQ in the report: both bias scores per category with intervals, the worst items, and findings."""
from __future__ import annotations

import html
import json

import numpy as np
import pytest

from raikit.fairness import SECTIONS
from raikit.fairness.bbq import bbq_from_scores, load_bbq
from raikit.reports import render_html, render_markdown
from raikit.reports._findings import findings


def _results(items, scores) -> dict:
    """A results dict shaped as the runner writes it (``_section_entry``), from a real BBQ result."""
    body = bbq_from_scores(items, scores, seed=0, scoring="planted scores", model="planted").to_section().to_dict()
    body = json.loads(json.dumps(body))  # what results.json holds
    section = SECTIONS.get("bbq")
    metrics = {f"fairness.bbq.{k}": v for k, v in body["metrics"].items()}
    entry = {"capability": "fairness", "probe": "bbq", "model": "planted", "description": section.description,
             "citation": section.citation, "options": {}, "seconds": 1.0, "notes": body["notes"],
             "details": body["details"], "tables": {}, "metrics": metrics,
             "metric_meanings": {n: [label, meaning] for n, label, meaning in section.meanings}}
    return {"schema_version": 1, "run": {"id": "bbq-test", "seed": 0}, "config": {},
            "models": {"planted": {"id": "planted", "kind": "causal_lm"}},
            "sections": {"fairness.bbq": entry}, "metrics": metrics, "gates": [], "limitations": []}


@pytest.fixture(scope="module")
def bbq_results(shared_data):
    """Age answered with the stereotype every time; Religion right, except a quarter of ambiguous items."""
    items = load_bbq(shared_data / "bbq", categories=["Age", "Religion"])
    rng = np.random.default_rng(0)
    keep = np.sort(np.concatenate([rng.choice(np.flatnonzero((items["category"] == c).to_numpy()), 120,
                                              replace=False) for c in ("Age", "Religion")]))
    items = items.iloc[keep].reset_index(drop=True)
    target, unknown = items["target"].to_numpy(), items["unknown"].to_numpy()
    other = 3 - target - unknown
    stereotyped = np.where(items["question_polarity"].to_numpy() == "neg", target, other)
    right = items["label"].to_numpy()
    age = (items["category"] == "Age").to_numpy()
    slip = (items["context_condition"] == "ambig").to_numpy() & (rng.random(len(items)) < 0.25)
    pred = np.where(age | slip, stereotyped, right)
    scores = np.zeros((len(items), 3))
    # margins differ so the worst items are ranked; Religion's slips are narrower than Age's
    scores[np.arange(len(items)), pred] = np.where(age, 2.0, 1.0) + 0.5 * rng.random(len(items))
    return _results(items, scores)


def test_both_bias_scores_per_category_with_intervals(bbq_results):
    m = bbq_results["metrics"]
    for score in ("s_dis", "s_amb"):
        age = m[f"fairness.bbq.by_category.Age.{score}"]
        assert age["value"] == pytest.approx(1.0) and age["ci95"] is not None  # the stereotype every time
    religion = m["fairness.bbq.by_category.Religion.s_dis"]
    assert religion["ci95"][0] < religion["value"] < religion["ci95"][1] and religion["n"] > 0
    assert 0 < m["fairness.bbq.by_category.Religion.s_amb"]["value"] < 0.5
    assert m["fairness.bbq.by_category.Religion.accuracy_disambiguated"]["value"] == 1.0
    page = render_html(bbq_results)
    for score in ("s_dis", "s_amb"):
        assert f"fairness.bbq.{score} by category: value and 95% CI per group" in page
    assert "Bias score, disambiguated (s_DIS)" in page and "Bias score, ambiguous (s_AMB)" in page


def test_the_worst_items_are_shown_and_name_the_stereotyped_answer(bbq_results):
    worst = bbq_results["sections"]["fairness.bbq"]["details"]["worst_items"]
    assert len(worst) == 10 and all(w["category"] == "Age" for w in worst)  # Age's margins are the widest
    assert [w["margin"] for w in worst] == sorted((w["margin"] for w in worst), reverse=True)
    page = render_html(bbq_results)
    assert "Worst items: biased wrong answers, largest margin first" in page
    assert html.escape(worst[0]["question"]) in page and html.escape(worst[0]["answer"]) in page


def test_findings_name_the_worst_category_for_each_score_with_examples(bbq_results):
    found = findings(bbq_results)
    groups = {f.metric: f for f in found if f.kind == "worst group"}
    assert set(groups) == {"fairness.bbq.by_category.Age.s_dis", "fairness.bbq.by_category.Age.s_amb"}
    for metric, f in groups.items():
        assert "worst group Age" in f.title and f.clear and f.effect == pytest.approx(1.0)
        condition = "ambiguous" if metric.endswith("s_amb") else "disambiguated"
        assert f.examples and all(e.startswith(f"Age ({condition},") for e in f.examples)
    pooled = {f.metric for f in found if f.kind == "benchmark"}
    assert pooled == {"fairness.bbq.s_dis", "fairness.bbq.s_amb"}
    summary = render_markdown(bbq_results)
    assert "worst group Age" in summary and "No finding" not in summary


def test_an_unbiased_model_has_no_bbq_finding(shared_data):
    items = load_bbq(shared_data / "bbq", categories=["Religion", "Age"])
    scores = np.zeros((len(items), 3))
    scores[np.arange(len(items)), items["label"].to_numpy()] = 1.0  # always right
    results = _results(items, scores)
    # every template is written with the stereotype-consistent and the inconsistent answer right equally often
    for c in ("Religion", "Age"):
        assert results["metrics"][f"fairness.bbq.by_category.{c}.s_dis"]["value"] == pytest.approx(0.0, abs=1e-12)
        # unknown on every ambiguous item: s_AMB is undefined (null with its reason), never 0
        undefined = results["metrics"][f"fairness.bbq.by_category.{c}.s_amb"]
        assert undefined["value"] is None and "undefined" in undefined["details"]["undefined"]
    assert [f for f in findings(results) if f.section == "fairness.bbq"] == []
