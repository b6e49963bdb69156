"""AUL / AULA: reference formula, known answers, bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from _pairs_models import crows_style_pairs, one_thread, trained_mlm

from raikit.audits.errors import RaikitInputError
from raikit.fairness import SECTIONS
from raikit.fairness.aul import aul, aul_bias_score
from raikit.fairness.crows_pairs import load_crows_pairs


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    with one_thread():
        yield


def _reference_aul(model, tok, sentence, attention):
    """evaluate_bias_in_mlm's calculate_aul, one sentence at a time."""
    ids = tok.encode(sentence, return_tensors="pt")
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")  # the only implementation that returns attention weights
    try:
        with torch.no_grad():
            out = model(ids, output_attentions=True)
    finally:
        model.set_attn_implementation(previous)
    logp = torch.log_softmax(out.logits[0], dim=1).gather(1, ids.view(-1, 1))[1:-1]
    if attention:
        att = torch.mean(torch.mean(torch.mean(torch.cat(out.attentions, 0), 0), 0), 0)
        logp = logp.squeeze(1) * att[1:-1]
    return torch.mean(logp).item()


def test_scores_equal_reference(random_mlm, shared_data):
    pairs = load_crows_pairs(shared_data / "crows_pairs" / "crows_pairs_anonymized.csv").head(10)
    result = aul(random_mlm, data=pairs)
    for row in result.pairs.itertuples():
        for column, sentence, attention in (("aul_stereotype", row.stereotype, False),
                                            ("aula_anti_stereotype", row.anti_stereotype, True)):
            expected = _reference_aul(random_mlm.model, random_mlm.tokenizer, sentence, attention)
            assert getattr(row, column) == pytest.approx(expected, abs=1e-5)
    ref = aul_bias_score(result.pairs["aula_stereotype"], result.pairs["aula_anti_stereotype"])
    assert result.aula.value == pytest.approx(ref["bias_score"])


def test_bias_score_counts_strict_wins():
    out = aul_bias_score([-1.0, -2.0, -1.0, -0.5], [-2.0, -1.0, -1.0, -3.0], ["g", "g", "r", "r"])
    assert out["bias_score"] == pytest.approx(50.0)   # the tie is not a win
    assert out["by_bias_type"] == {"g": 50.0, "r": 50.0}


def test_planted_association_is_detected():
    planted = aul(trained_mlm("planted"), data=crows_style_pairs())
    for metric in (planted.aul, planted.aula):
        assert metric.value > 75 and metric.ci95[0] > 50
    balanced = aul(trained_mlm("balanced"), data=crows_style_pairs())
    assert balanced.aul.ci95[0] <= 50 <= balanced.aul.ci95[1]
    assert np.isfinite(balanced.pairs["aula_stereotype"]).all()


def test_causal_lm_is_rejected(random_causal):
    assert SECTIONS.get("aul").model_kinds == ("masked_lm",)
    with pytest.raises(RaikitInputError, match="need a masked_lm"):
        aul(random_causal, data=crows_style_pairs())
