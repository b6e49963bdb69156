"""Realistic results dicts (fairness + explain + gates; privacy and federated) shaped like the runner's."""
from __future__ import annotations

import copy
from typing import Any

XSS = "<script>alert(1)</script> <img src=x onerror=alert(1)> \"quoted\" 'single' & </td>"


def _metric(value: float, ci: tuple[float, float] | None, n: int, **details: Any) -> dict[str, Any]:
    return {"value": value, "ci95": None if ci is None else list(ci), "n": n, "details": details}


def _explained(i: int, text: str, words: list[str], shap: list[float]) -> dict[str, Any]:
    spans, pos = [], 0
    for w in words:
        start = text.index(w, pos)
        spans.append([start, start + len(w)])
        pos = start + len(w)
    n = len(words)
    attention = [[round(1.0 / n + (0.2 if r == c else 0.0), 4) for c in range(n)] for r in range(n)]
    return {"id": i, "text": text, "words": words, "spans": spans, "predicted": "negative",
            "probabilities": {"negative": 0.91, "positive": 0.09},
            "attributions": {"shap": shap, "lime": [s * 0.8 for s in shap], "random": [0.01] * n},
            "base_values": {"shap": 0.5},
            "faithfulness": {"shap": {"comprehensiveness": 0.4, "sufficiency": 0.1, "aopc": 0.3}},
            "attention": {"pooled_token": "[CLS]", "last_layer_mean": attention, "rollout": attention}}


def build_results() -> dict[str, Any]:
    """Fairness (CrowS-Pairs, counterfactual, groups), explanations and three gates (one failing)."""
    metrics = {
        "fairness.crows_pairs.metric_score": _metric(58.5, (54.1, 62.9), 200, p_value=0.02),
        "fairness.crows_pairs.stereotype_score": _metric(60.2, (55.0, 65.1), 150),
        "fairness.crows_pairs.by_bias_type.gender": _metric(55.0, (45.0, 64.0), 60),
        "fairness.crows_pairs.by_bias_type.race": _metric(63.0, (55.5, 70.0), 90),
        "fairness.crows_pairs.by_bias_type.religion": _metric(51.0, (38.0, 66.0), 50),
        "fairness.counterfactual.flip_rate": _metric(0.06, (0.03, 0.09), 300),
        "fairness.counterfactual.by_pair.he_she.flip_rate": _metric(0.05, (0.01, 0.1), 120),
        "fairness.counterfactual.by_pair.man_woman.flip_rate": _metric(0.08, (0.02, 0.15), 90),
        "fairness.groups.accuracy.overall": _metric(0.86, (0.82, 0.9), 300),
        "fairness.groups.accuracy.by_group.female": _metric(0.84, (0.78, 0.9), 150),
        "fairness.groups.accuracy.by_group.male": _metric(0.88, (0.83, 0.93), 150),
        "explain.shap.comprehensiveness": _metric(0.41, (0.3, 0.52), 8, better="higher"),
        "explain.shap.sufficiency": _metric(0.08, (0.04, 0.12), 8, better="lower"),
        "explain.shap.aopc": _metric(0.33, (0.25, 0.41), 8, better="higher"),
        "explain.lime.comprehensiveness": _metric(0.35, (0.25, 0.45), 8, better="higher"),
        "explain.lime.sufficiency": _metric(0.12, (0.07, 0.17), 8, better="lower"),
        "explain.lime.aopc": _metric(0.28, (0.2, 0.36), 8, better="higher"),
        "explain.random.comprehensiveness": _metric(0.12, (0.08, 0.16), 8, better="higher"),
        "explain.random.sufficiency": _metric(0.3, (0.2, 0.4), 8, better="lower"),
        "explain.random.aopc": _metric(0.1, (0.06, 0.14), 8, better="higher"),
        "explain.agreement.shap_vs_lime": _metric(0.62, (0.5, 0.74), 8),
    }
    texts = [
        _explained(0, "Terrible service, I will never come back.",
                   ["Terrible", "service", ",", "I", "will", "never", "come", "back", "."],
                   [0.45, 0.05, 0.0, -0.02, 0.01, 0.2, -0.05, 0.03, 0.0]),
        _explained(1, XSS, ["script", "alert", "1", "img", "onerror", "quoted"], [0.1, 0.3, -0.1, 0.05, 0.2, -0.3]),
        # a long unbroken word (URLs, hashtags) must wrap on a phone rather than widen the page
        _explained(2, "see https://example.org/a-very-long-path-without-any-break-opportunities-at-all-x",
                   ["see", "https://example.org/a-very-long-path-without-any-break-opportunities-at-all-x"],
                   [0.1, 0.4]),
    ]
    sections = {
        "fairness.crows_pairs": {
            "capability": "fairness", "probe": "crows_pairs", "model": "smollm",
            "description": "CrowS-Pairs stereotype preference", "citation": "Nangia et al. 2020",
            "options": {"max_items": 200}, "seconds": 41.2, "notes": ["200 of 1,508 pairs (seeded subsample)."],
            "details": {"scoring": "pll", "n_pairs": 200, "ideal": 50.0, "neutral": 3},
            "tables": {"pairs": "fairness.crows_pairs.pairs.csv"}},
        "fairness.counterfactual": {
            "capability": "fairness", "probe": "counterfactual", "model": "sentiment",
            "description": "Counterfactual token fairness", "citation": "Garg et al. 2019", "seconds": 3.1,
            "notes": [], "tables": {},
            "details": {"flipped": [
                {"original": "he was a great nurse", "counterfactual": "she was a great nurse",
                 "p_original": 0.62, "p_counterfactual": 0.41, "label_original": "positive",
                 "label_counterfactual": "negative"},
                {"original": XSS, "counterfactual": XSS.replace("alert", "confirm"), "p_original": 0.55,
                 "p_counterfactual": 0.45, "label_original": "positive", "label_counterfactual": "negative"}],
                "n_texts": 300, "n_skipped": 12,
                "largest_changes": [{"original": "a", "counterfactual": "b", "delta": 0.2}],
                "nested": {"template": XSS, "values": [1, 2, 3]}}},
        "fairness.groups": {
            "capability": "fairness", "probe": "groups", "model": "sentiment", "description": "Per-group metrics",
            "citation": "Weerts et al. 2023 (fairlearn)", "seconds": 2.0, "notes": [], "tables": {},
            "details": {"by_group": [{"group": "female", "accuracy": 0.84}, {"group": "male", "accuracy": 0.88}]}},
        "explain": {
            "capability": "explain", "probe": "explain", "model": "sentiment",
            "description": "Word-level explanations", "citation": "Lundberg & Lee 2017", "seconds": 30.5,
            "notes": ["Only the first 8 of 20 texts were explained (max_texts)."], "tables": {},
            "details": {"methods": ["shap", "lime"], "scored_methods": ["shap", "lime", "random"],
                        "labels": ["negative", "positive"], "texts": texts, "flagged": [], "top_k": 3,
                        "agreement": {"shap_vs_lime": {"kendall_tau": [0.6, 0.64]}}}},
    }
    gates = [
        {"metric": "fairness.crows_pairs.metric_score", "min": None, "max": 65.0, "use": "ci",
         "clause": "EU AI Act Art. 10(2)(f)", "value": 58.5, "ci95": [54.1, 62.9], "compared": 62.9, "passed": True,
         "message": "fairness.crows_pairs.metric_score = 58.5 [95% CI 54.1, 62.9] meets CI bound <= 65"},
        {"metric": "fairness.counterfactual.flip_rate", "min": None, "max": 0.05, "use": "ci", "clause": None,
         "value": 0.06, "ci95": [0.03, 0.09], "compared": 0.09, "passed": False,
         "message": "fairness.counterfactual.flip_rate = 0.06 [95% CI 0.03, 0.09]: 0.09 > max 0.05"},
        {"metric": "explain.shap.comprehensiveness", "min": 0.05, "max": None, "use": "value", "clause": None,
         "value": 0.41, "ci95": [0.3, 0.52], "compared": 0.41, "passed": True,
         "message": "explain.shap.comprehensiveness = 0.41 [95% CI 0.3, 0.52] meets value >= 0.05"},
    ]
    return {
        "schema_version": "1.0",
        "run": {"id": "20260101-120000-abcdef12", "raikit_version": "0.1.0",
                "packages": {"torch": "2.13.0", "transformers": "5.23.0", "raikit": "0.1.0"},
                "config_path": "audit.toml", "config_sha256": "ab" * 32, "seed": 0,
                "started": "2026-01-01T12:00:00+00:00", "finished": "2026-01-01T12:05:00+00:00", "device": "cpu",
                "offline": True, "section_seconds": {k: s["seconds"] for k, s in sections.items()}},
        "config": {"report": {"title": "Audit of <b>demo</b> models", "reviewers": ["A. Reviewer"],
                              "intended_use": "Testing the report"}},
        "models": {
            "smollm": {"id": "builtin:smollm2-135m", "kind": "causal_lm", "weights_sha256": "cd" * 32,
                       "n_parameters": 134515008, "dtype": "float32", "device": "cpu",
                       "architecture": "LlamaForCausalLM"},
            "sentiment": {"id": "builtin:minilm-sentiment", "kind": "classifier", "weights_sha256": "ef" * 32,
                          "n_parameters": 22713986, "dtype": "float32", "device": "cpu",
                          "architecture": "BertForSequenceClassification"}},
        "sections": sections,
        "metrics": metrics,
        "gates": gates,
        "limitations": ["fairness.crows_pairs: 200 of 1,508 pairs (seeded subsample).",
                        "No differential-privacy retraining or membership-inference audit was run."],
    }


def with_privacy_and_federated(results: dict[str, Any]) -> dict[str, Any]:
    """``results`` plus a privacy section (epsilon, ROC) and a federated one (accuracy per round and client)."""
    out = copy.deepcopy(results)
    out["metrics"].update({
        "privacy.dp.epsilon": _metric(3.0, None, 1),
        "privacy.dp.accuracy": _metric(0.8, (0.75, 0.85), 500),
        "privacy.dp.attack_auc": _metric(0.53, (0.5, 0.56), 1000),
        "federated.fedavg.accuracy": _metric(0.82, (0.78, 0.86), 500),
    })
    out["sections"]["privacy.dp"] = {
        "capability": "privacy", "probe": "dp", "model": "sentiment", "description": "DP-SGD retraining",
        "notes": [], "details": {"delta": 1e-5, "accountant": "prv",
                                 "membership": {"roc": {"fpr": [0, 0.2, 0.6, 1], "tpr": [0, 0.3, 0.65, 1],
                                                        "auc": 0.53}}}}
    out["sections"]["federated.fedavg"] = {
        "capability": "federated", "probe": "fedavg", "model": "sentiment", "description": "FedAvg, 3 clients",
        "notes": [], "details": {"rounds": [{"round": 1, "accuracy": 0.7}, {"round": 2, "accuracy": 0.8},
                                            {"round": 3, "accuracy": 0.82}],
                                 "clients": {"a": [0.6, 0.7, 0.8], "b": [0.65, 0.75, 0.8]}}}
    out["limitations"] = [x for x in out["limitations"] if "privacy" not in x]
    return out
