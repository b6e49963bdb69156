"""StereoSet: reference option scoring, official SS/LMS/ICAT, known answers, bad input."""
from __future__ import annotations

import string

import numpy as np
import pandas as pd
import pytest
import torch
from _pairs_models import one_thread, stereoset_style_items, trained_causal, trained_mlm

from raikit.audits.errors import RaikitInputError
from raikit.fairness.stereoset import load_stereoset, stereoset, stereoset_score


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def real_items(shared_data):
    frame = load_stereoset(shared_data / "stereoset" / "dev.jsonl")
    # short items: the random causal LM's tiny BPE vocabulary spends many tokens per word (128 positions)
    length = frame["context"].str.len() + frame[["stereotype", "anti-stereotype", "unrelated"]].apply(
        lambda col: col.str.len()).max(axis=1)
    frame = frame[length < 90]
    intra = frame[frame["type"] == "intrasentence"].head(10)
    inter = frame[frame["type"] == "intersentence"].head(10)
    return pd.concat([intra, inter]).reset_index(drop=True)


def _reference_mlm_option(adapter, context, sentence):
    """bias-bench IntrasentenceLoader + _likelihood_score for one option (BERT-style tokenizer)."""
    tok, model = adapter.tokenizer, adapter.model
    idx = [i for i, w in enumerate(context.split(" ")) if "BLANK" in w][-1]
    word = sentence.split(" ")[idx].translate(str.maketrans("", "", string.punctuation))
    pieces = tok.encode(word, add_special_tokens=False)
    probs = []
    for k in range(len(pieces)):
        text = context.replace("BLANK", f"{tok.decode(pieces[:k])}{tok.mask_token}")
        ids = torch.tensor([tok.encode(text)])
        with torch.no_grad():
            out = model(ids).logits.softmax(-1)
        probs.append(out[ids == tok.mask_token_id][0, pieces[k]].item())
    return float(np.mean(probs))


def test_mlm_intrasentence_equals_reference(random_mlm, real_items):
    items = real_items[real_items["type"] == "intrasentence"]
    result = stereoset(random_mlm, data=items)
    for row, got in zip(items.itertuples(), result.items.itertuples()):
        expected = _reference_mlm_option(random_mlm, row.context, row.stereotype)
        assert got.score_stereotype == pytest.approx(expected, rel=1e-4)
        expected = _reference_mlm_option(random_mlm, row.context, row.unrelated)
        assert got.score_unrelated == pytest.approx(expected, rel=1e-4)


def _mean_logp(adapter, prefix_ids, ids):
    seq = torch.tensor([prefix_ids + ids])
    with torch.no_grad():
        logp = torch.log_softmax(adapter.model(seq).logits[0, :-1], -1).gather(-1, seq[0, 1:, None])[:, 0]
    return float(logp[len(prefix_ids) - 1:].mean())


def test_causal_scores_equal_plain_forward(random_causal, real_items):
    result = stereoset(random_causal, data=real_items, split="both")
    tok, bos = random_causal.tokenizer, random_causal.prefix_id
    for row in result.items.itertuples():
        source = real_items.iloc[row.Index]
        if row.type == "intrasentence":
            expected = np.exp(_mean_logp(random_causal, [bos], tok.encode(source["stereotype"])))
        else:
            context = source["context"] if source["context"][-1] in ".!?" else source["context"] + "."
            expected = np.exp(_mean_logp(random_causal, [bos] + tok.encode(context),
                                         tok.encode(" " + source["stereotype"])))
        assert row.score_stereotype == pytest.approx(expected, rel=1e-4)
    assert set(result.splits) == {"intrasentence", "intersentence"}


def test_causal_intersentence_is_reported_apart_from_the_headline(random_causal, real_items):
    """The headline follows the reference (intrasentence only); raikit's intersentence rule stands apart."""
    result = stereoset(random_causal, data=real_items, split="both")
    items = result.items
    scores = [items[f"score_{o}"].to_numpy(float) for o in ("stereotype", "anti-stereotype", "unrelated")]
    for split, ss, lms in (("intrasentence", result.ss, result.lms),
                           ("intersentence", result.intersentence["ss"], result.intersentence["lms"])):
        keep = (items["type"] == split).to_numpy()
        assert keep.any() and not keep.all()
        expected = stereoset_score(*(x[keep] for x in scores), items["target"][keep].tolist())
        assert ss.value == pytest.approx(expected["ss"]) and lms.value == pytest.approx(expected["lms"])
        assert ss.n == int(keep.sum())
    section = result.to_section()
    assert {"ss", "lms", "icat", "intersentence.ss", "intersentence.lms", "intersentence.icat"} <= set(section.metrics)
    assert not any(k.startswith("by_split") for k in section.metrics)
    assert any("not pooled" in n for n in section.notes)
    intra_only = stereoset(random_causal, data=real_items, split="intrasentence")
    assert intra_only.ss.value == pytest.approx(result.ss.value) and not intra_only.intersentence


def test_official_per_target_evaluation():
    # target a: pro wins 2 of 2, related 4 of 4 -> SS 100, LMS 100; target b: pro loses, only anti beats
    # unrelated -> SS 0, LMS 50. Averages over targets: SS 50, LMS 75, ICAT = 75 * min(50, 50) / 50 = 75.
    out = stereoset_score([3, 3, 1], [2, 2, 2], [1, 1, 1.5], ["a", "a", "b"], ["x", "x", "y"])
    tie = stereoset_score([1.0], [1.0], [0.0], ["a"])
    assert tie["ss"] == 0.0   # a tie counts as anti-stereotype, as in the official count()
    assert out["ss"] == pytest.approx(50.0)
    assert out["lms"] == pytest.approx(75.0)
    assert out["icat"] == pytest.approx(75.0)
    assert out["by_bias_type"]["x"] == {"count": 2, "ss": 100.0, "lms": 100.0, "icat": 0.0}


def test_planted_association_is_detected():
    items = stereoset_style_items()
    planted = stereoset(trained_causal("planted"), data=items)
    assert planted.ss.value > 80 and planted.ss.ci95[0] > 50
    assert planted.icat.value < 40
    balanced = stereoset(trained_causal("balanced"), data=items)
    assert balanced.ss.ci95[0] <= 50 <= balanced.ss.ci95[1]
    assert balanced.lms.value > 90
    mlm = stereoset(trained_mlm("planted"), data=items)
    assert mlm.lms.value > 90 and mlm.ss.value > 50 and mlm.ss.ci95[0] > 50
    mlm_balanced = stereoset(trained_mlm("balanced"), data=items)
    assert mlm_balanced.ss.ci95[0] <= 50 <= mlm_balanced.ss.ci95[1] and mlm_balanced.lms.value > 90
    assert mlm.to_section().metrics["by_bias_type.gender.ss"].n == 32


def test_masked_lm_has_no_intersentence(random_mlm, real_items):
    with pytest.raises(RaikitInputError, match="intersentence"):
        stereoset(random_mlm, data=real_items, split="both")


def test_missing_field(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"type": "intrasentence", "target": "x", "bias_type": "gender", "context": "a BLANK"}\n')
    with pytest.raises(RaikitInputError, match="'stereotype' missing") as info:
        load_stereoset(path)
    assert str(path) in str(info.value)
