"""Classifier tests: counterfactual swaps, behaviour (MFT/DIR), per-group metrics with MetricFrame."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import _probe_models as pm  # noqa: E402

from raikit.audits.errors import RaikitInputError  # noqa: E402
from raikit.audits.sections import RunContext  # noqa: E402
from raikit.fairness.classifier import (  # noqa: E402
    GroupsOptions, _run_groups, behaviour_tests, counterfactual_invariance, counterfactuals, group_metrics,
    load_swaps,
)
from raikit.fairness.templates import Lexicon, Template, expand  # noqa: E402


@pytest.fixture()
def swaps(tmp_path):
    path = tmp_path / "swaps.csv"
    path.write_text("word,swap,axis\nhe,she,gender\nman,woman,gender\n")
    return load_swaps(path)


def test_swaps_whole_word_and_case(swaps, shared_data):
    out = counterfactuals("He met the man, the manager and Mr Heman.", swaps)
    assert [c["counterfactual"] for c in out] == ["She met the woman, the manager and Mr Heman."]
    assert out[0]["pair"] == "gender_male_to_female"
    bb = load_swaps(shared_data / "bias_bench" / "bias_attribute_words.json", axes=["gender", "religion"])
    cf = {c["counterfactual"] for c in counterfactuals("The Muslim woman said HE was kind.", bb)}
    assert "The Muslim man said SHE was kind." in cf
    assert {"The Jewish woman said HE was kind.", "The Christian woman said HE was kind."} <= cf
    wb = load_swaps(shared_data / "winobias" / "generalized_swaps.txt")
    assert counterfactuals("The actress left.", wb)[0]["counterfactual"] == "The actor left."


def _texts():
    return [f"{p} {w} today." for p in ("he", "she", "the man", "the woman") for w in pm.NEUTRAL]


def test_counterfactual_planted_and_balanced(swaps):
    biased = counterfactual_invariance(pm.classifier(True), _texts(), swaps=swaps, n_bootstrap=200)
    assert biased.flip_rate > 0.8 and biased.mean_abs_delta > 0.3
    assert biased.flip_rate == pytest.approx(biased.table["flipped"].mean())
    flipped = biased.to_section().details["flipped"]
    assert flipped and {"original", "counterfactual", "p_original", "p_counterfactual", "label_original",
                        "label_counterfactual"} == set(flipped[0])
    assert "by_pair.gender_male_to_female.flip_rate" in biased.to_section().metrics
    texts = [f"{p} was {w} today." for p in ("he", "she") for w in pm.POSITIVE + pm.NEGATIVE]
    balanced = counterfactual_invariance(pm.classifier(False), texts, swaps=swaps, n_bootstrap=200)
    assert balanced.flip_rate == 0.0
    # never a zero-width interval: the Wilson bound of 0 flips over the original texts (the clusters)
    from raikit.audits.stats import proportion_ci
    n_originals = balanced.table["original"].nunique()
    assert balanced.flip_ci == pytest.approx(proportion_ci([0.0] * n_originals)) and balanced.flip_ci[1] > 0
    row = biased.table.iloc[0]
    p = pm.classifier(True).predict_proba([row["original"], row["counterfactual"]])
    c = p[0].argmax()
    assert row["abs_delta"] == pytest.approx(abs(p[1, c] - p[0, c]))


LEX = {"person": Lexicon("person", {"male": ("he", "the man"), "female": ("she", "the woman")})}
TEMPLATES = [Template(id="mft_neutral", text="{person} arrived today.", label="positive"),
             Template(id="dir_bad", test="dir", text="{person} arrived today.",
                      perturbed="{person} was awful today.", label="positive", direction="down")]


def test_behaviour_planted_group_failures():
    inst = expand(TEMPLATES, LEX)
    res = behaviour_tests(pm.classifier(True), inst, n_bootstrap=200, n_permutations=500).to_section()
    assert res.metrics["by_group.female.failure_rate"].value > res.metrics["by_group.male.failure_rate"].value
    assert res.metrics["mft.failure_rate"].value == pytest.approx(0.5)
    assert res.metrics["by_template.mft_neutral.failure_rate"].n == 4
    with pytest.raises(RaikitInputError, match="not a class of the model"):
        behaviour_tests(pm.classifier(True), expand([Template(id="t", text="{person}", label="happy")], LEX))


def test_group_metrics_match_definitions():
    rng = np.random.default_rng(0)
    y, yhat = rng.integers(0, 2, 300), rng.integers(0, 2, 300)
    groups = rng.choice(["a", "b", "c"], 300)
    res = group_metrics(y, yhat, groups, n_bootstrap=200)
    acc = {g: float((y[groups == g] == yhat[groups == g]).mean()) for g in "abc"}
    sel = {g: float(yhat[groups == g].mean()) for g in "abc"}
    fpr = {g: float(yhat[(groups == g) & (y == 0)].mean()) for g in "abc"}
    tpr = {g: float(yhat[(groups == g) & (y == 1)].mean()) for g in "abc"}
    m = res.metrics
    assert m["accuracy.by_group.b"].value == pytest.approx(acc["b"])
    assert m["accuracy.difference"].value == pytest.approx(max(acc.values()) - min(acc.values()))
    assert m["demographic_parity_difference"].value == pytest.approx(max(sel.values()) - min(sel.values()))
    eo = max(max(fpr.values()) - min(fpr.values()), max(tpr.values()) - min(tpr.values()))
    assert m["equalized_odds_difference"].value == pytest.approx(eo)
    lo, hi = m["accuracy.by_group.a"].ci95
    assert lo <= acc["a"] <= hi and m["accuracy.by_group.a"].n == int((groups == "a").sum())
    assert type(res.frame).__name__ == "MetricFrame"


def test_groups_section_csv(tmp_path):
    texts, labels = pm.classifier_corpus(True)
    rows = ["text,label,group"] + [f"{t},{['negative', 'positive'][y]},{'f' if 'she' in t or 'woman' in t else 'm'}"
                                   for t, y in zip(texts, labels)]
    (tmp_path / "d.csv").write_text("\n".join(rows))
    ctx = RunContext(seed=0, base_dir=tmp_path, progress=False)
    sec = _run_groups(pm.classifier(True), GroupsOptions(data="d.csv", n_bootstrap=100), ctx)
    assert sec.metrics["accuracy.overall"].value == 1.0
    assert sec.metrics["selection_rate.difference"].value > 0.3
    (tmp_path / "bad.csv").write_text("text,y,group\na,positive,m\n")
    with pytest.raises(RaikitInputError, match="column 'label' missing"):
        _run_groups(pm.classifier(True), GroupsOptions(data="bad.csv"), ctx)


def test_difference_intervals_contain_the_point_value_with_many_small_groups():
    from raikit.fairness.classifier import group_metrics

    rng = np.random.default_rng(0)
    groups = np.repeat([f"g{i}" for i in range(12)], 8)
    y = rng.integers(0, 2, len(groups))
    yhat = np.where(rng.random(len(groups)) < 0.8, y, 1 - y)
    res = group_metrics(y, yhat, groups, seed=0, n_bootstrap=500)
    for name in ("selection_rate.difference", "accuracy.difference", "demographic_parity_difference"):
        m = res.metrics[name]
        assert m.ci95 is not None and m.ci95[0] <= m.value <= m.ci95[1], (name, m)
