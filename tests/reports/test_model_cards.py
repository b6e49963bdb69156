"""One Hugging Face model card per audited model: loads with huggingface_hub, results under that model only."""
from __future__ import annotations

import pytest
from huggingface_hub import ModelCard
from _report_results import build_results

from raikit.audits.datasets import get_set
from raikit.audits.errors import RaikitInputError
from raikit.reports import write_reports
from raikit.reports._text import HUB_DATASETS, card_models, render_model_card, render_model_cards


def test_each_card_round_trips_through_huggingface_hub_with_its_own_results(results, tmp_path):
    cards = render_model_cards(results)
    assert set(cards) == {"smollm", "sentiment"} == set(card_models(results))
    smollm = ModelCard(cards["smollm"])
    assert smollm.data.model_name == "builtin:smollm2-135m"
    evals = smollm.data.eval_results
    assert {e.dataset_type for e in evals} == {"nyu-mll/crows_pairs"}  # a real Hub data set, never raikit/...
    assert {e.dataset_revision for e in evals} == {get_set("crows_pairs").commit}  # the files' upstream commit
    assert {e.task_type for e in evals} == {"text-generation"}
    score = next(e for e in evals if e.metric_type == "metric_score")
    assert score.metric_value == 58.5 and score.metric_args == {"ci95_low": 54.1, "ci95_high": 62.9, "n": 200}
    assert "95% CI [54.1, 62.9], n = 200" in score.metric_name
    assert all(e.metric_name.startswith("fairness.crows_pairs.") for e in evals)  # only this model's results
    assert not any(".by_bias_type." in e.metric_name for e in evals)  # headline metrics, not one group's
    assert smollm.data.license == "apache-2.0" and smollm.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    # the classifier's sections use raikit's own templates: raikit's data set id, results of its own sections
    sentiment = ModelCard(cards["sentiment"])
    assert sentiment.data.license is None
    names = {e.metric_name.split(":")[0] for e in sentiment.data.eval_results}
    assert {"fairness.counterfactual.flip_rate", "fairness.groups.accuracy.overall",
            "explain.shap.comprehensiveness"} <= names
    assert not any(n.startswith("fairness.crows_pairs") for n in names)
    assert "fairness.crows_pairs" not in cards["sentiment"]
    assert "fairness.counterfactual" not in cards["smollm"]
    # written, loaded from disk, re-serialised: the same data
    written = write_reports(results, tmp_path, formats=["model_card"])
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == [
        "model_cards/sentiment/README.md", "model_cards/smollm/README.md"]
    loaded = ModelCard.load(tmp_path / "model_cards" / "smollm" / "README.md")
    assert loaded.data.to_dict() == smollm.data.to_dict()
    assert ModelCard(str(loaded)).data.to_dict() == smollm.data.to_dict()


def test_cards_have_the_hub_template_sections_and_this_models_findings(results):
    card = render_model_card(results, model="sentiment")
    for heading in ("# Model card for builtin:minilm-sentiment", "## Model Details", "## Uses", "## Training Details",
                    "## Bias, Risks, and Limitations", "### Recommendations", "## Evaluation", "### Results",
                    "## Technical Specifications", "## Citation"):
        assert f"\n{heading}\n" in card, heading
    risks = card.split("## Bias, Risks, and Limitations")[1].split("## Evaluation")[0]
    assert "fairness.counterfactual.flip\\_rate" in risks and "she was a great nurse" in risks
    assert "CrowS-Pairs" not in risks  # smollm's finding stays on smollm's card


def test_hub_datasets_are_hub_ids_and_unknown_models_are_refused(results):
    assert all("/" in hub and not hub.startswith("raikit") for hub, _ in HUB_DATASETS.values())
    with pytest.raises(RaikitInputError, match="no model 'nope'"):
        render_model_card(results, model="nope")
    assert render_model_cards({"schema_version": "1.0", "run": {}, "metrics": {}}) == {}
    lonely = build_results()
    lonely["sections"] = {}
    assert render_model_cards(lonely) == {}
