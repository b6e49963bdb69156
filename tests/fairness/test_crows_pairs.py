"""CrowS-Pairs: reference formula, counting, known answers, bad input."""
from __future__ import annotations

import difflib

import numpy as np
import pandas as pd
import pytest
import torch
from _pairs_models import crows_style_pairs, one_thread, trained_causal, trained_mlm

from raikit.audits.errors import RaikitInputError
from raikit.audits.sections import RunContext
from raikit.fairness import SECTIONS
from raikit.fairness.crows_pairs import (
    CrowsPairsOptions, crows_pairs, crows_pairs_score, load_crows_pairs, tokenizer_is_uncased,
)


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def crows_csv(shared_data):
    return shared_data / "crows_pairs" / "crows_pairs_anonymized.csv"


@pytest.fixture(scope="module")
def real_pairs(crows_csv):
    frame = load_crows_pairs(crows_csv)
    anti = frame.index[frame["stereo_antistereo"] == "antistereo"][:3].tolist()
    return frame.loc[list(range(7)) + anti].reset_index(drop=True)


def _reference_mlm(adapter, row):
    """metric.py's mask_unigram, one plain forward per masked token."""
    tok, model = adapter.tokenizer, adapter.model
    sent1, sent2 = ((row.sent_more, row.sent_less) if row.stereo_antistereo == "stereo"
                    else (row.sent_less, row.sent_more))
    sent1, sent2 = sent1.lower(), sent2.lower()
    ids1, ids2 = tok.encode(sent1, return_tensors="pt"), tok.encode(sent2, return_tensors="pt")
    matcher = difflib.SequenceMatcher(None, [str(x) for x in ids1[0].tolist()], [str(x) for x in ids2[0].tolist()])
    t1, t2 = [], []
    for op in matcher.get_opcodes():
        if op[0] == "equal":
            t1 += list(range(op[1], op[2]))
            t2 += list(range(op[3], op[4]))
    s1 = s2 = 0.0
    with torch.no_grad():
        for i in range(1, len(t1) - 1):
            for ids, pos, which in ((ids1, t1[i], 1), (ids2, t2[i], 2)):
                masked = ids.clone()
                masked[0][pos] = tok.mask_token_id
                logp = torch.log_softmax(model(masked).logits[0, pos], dim=0)[ids[0][pos]].item()
                if which == 1:
                    s1 += logp
                else:
                    s2 += logp
    return (s1, s2) if row.stereo_antistereo == "stereo" else (s2, s1)


def test_mlm_scores_equal_reference_loop(random_mlm, real_pairs):
    assert tokenizer_is_uncased(random_mlm.tokenizer)
    result = crows_pairs(random_mlm, data=real_pairs)
    expected = np.array([_reference_mlm(random_mlm, row) for row in real_pairs.itertuples()])
    np.testing.assert_allclose(result.pairs["score_more"], expected[:, 0], atol=1e-4)
    np.testing.assert_allclose(result.pairs["score_less"], expected[:, 1], atol=1e-4)
    ref = crows_pairs_score(expected[:, 0], expected[:, 1], real_pairs["stereo_antistereo"])
    assert result.metric_score.value == pytest.approx(ref["metric_score"])
    assert result.neutral == ref["neutral"]


def test_causal_scores_equal_plain_forward(random_causal, real_pairs):
    result = crows_pairs(random_causal, data=real_pairs)
    tok, model = random_causal.tokenizer, random_causal.model
    for row in result.pairs.itertuples():
        for text, got in ((row.sent_more, row.score_more), (row.sent_less, row.score_less)):
            ids = torch.tensor([[random_causal.prefix_id] + tok.encode(text, add_special_tokens=False)])
            with torch.no_grad():
                logp = torch.log_softmax(model(ids).logits[0, :-1], -1).gather(-1, ids[0, 1:, None]).sum().item()
            assert got == pytest.approx(logp, abs=1e-4)
    assert any("causal LM" in n for n in result.notes)


def test_counting_follows_reference():
    more = [-1.0, -2.0, -1.00049, -5.0, -3.0, -1.0]
    less = [-2.0, -1.0, -1.0001, -4.0, -4.0, -2.0]
    directions = ["stereo", "stereo", "stereo", "antistereo", "antistereo", "antistereo"]
    out = crows_pairs_score(more, less, directions, ["a", "a", "b", "b", "b", "a"])
    # pair 3 ties after rounding to 3 decimals: neutral, in N but in neither sub-score
    assert out["neutral"] == 1
    assert out["metric_score"] == pytest.approx(100 * 3 / 6)
    assert out["stereotype_score"] == pytest.approx(50.0)
    assert out["antistereotype_score"] == pytest.approx(100 * 2 / 3)
    assert out["by_bias_type"] == {"a": pytest.approx(100 * 2 / 3), "b": pytest.approx(100 / 3)}


@pytest.mark.parametrize("factory", [trained_mlm, trained_causal], ids=["mlm", "causal"])
def test_planted_association_is_detected(factory):
    planted = crows_pairs(factory("planted"), data=crows_style_pairs())
    assert planted.metric_score.value > 80
    assert planted.metric_score.ci95[0] > 50
    balanced = crows_pairs(factory("balanced"), data=crows_style_pairs())
    low, high = balanced.metric_score.ci95
    assert low <= 50 <= high


def test_section_runs_with_subsample_and_filter(random_mlm, crows_csv):
    section = SECTIONS.get("crows_pairs")
    options = CrowsPairsOptions(data=str(crows_csv), max_items=6, bias_types=["gender", "religion"])
    result = section.run(random_mlm, options, RunContext(seed=3))
    pairs = result.tables["pairs"]
    assert len(pairs) == 6 and set(pairs["bias_type"]) <= {"gender", "religion"}
    assert any(n.startswith("subsample of 6 of ") for n in result.notes)
    assert {"metric_score", "stereotype_score", "antistereotype_score"} <= set(result.metrics)
    assert all(k.startswith("by_bias_type.") for k in set(result.metrics) - {"metric_score", "stereotype_score",
                                                                             "antistereotype_score"})
    assert set(pairs.columns) == {"sent_more", "sent_less", "direction", "bias_type", "score_more", "score_less",
                                  "counted_as"}


def test_missing_column_names_file_and_column(tmp_path):
    path = tmp_path / "pairs.csv"
    pd.DataFrame({"sent_more": ["a b"], "sent_less": ["a c"], "stereo_antistereo": ["stereo"]}).to_csv(path)
    with pytest.raises(RaikitInputError, match="bias_type") as info:
        load_crows_pairs(path)
    assert str(path) in str(info.value)


def test_unknown_bias_type_lists_known(random_mlm):
    with pytest.raises(RaikitInputError, match="known: gender, occupation"):
        crows_pairs(random_mlm, data=crows_style_pairs(), bias_types=["weather"])


def test_classifier_is_rejected(random_classifier):
    with pytest.raises(RaikitInputError, match="masked_lm or causal_lm"):
        crows_pairs(random_classifier, data=crows_style_pairs())
