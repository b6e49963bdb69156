"""Fill-mask association probe: formula on random models, planted association, bad input."""
from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.special import logsumexp

sys.path.insert(0, str(Path(__file__).parent))
import _pairs_models as pp  # noqa: E402  (tiny LMs with planted gender-occupation associations)

from raikit.audits.errors import RaikitInputError  # noqa: E402
from raikit.fairness.fill_mask import association_scores, fill_mask_bias  # noqa: E402
from raikit.fairness.templates import Lexicon, Template  # noqa: E402

TEMPLATES = [Template(id="is_a", text="{person} is a {mask}.", targets="occupation"),
             Template(id="works_as", text="{person} works as a {mask}.", targets="occupation")]
LEXICONS = {"person": Lexicon("person", {"male": tuple(pp.MALE), "female": tuple(pp.FEMALE)}),
            "occupation": Lexicon("occupation", {"male_typed": tuple(pp.MALE_JOBS),
                                                 "female_typed": tuple(pp.FEMALE_JOBS)})}
SMALL = {"person": Lexicon("person", {"male": ("he",), "female": ("she",)}),
         "occupation": Lexicon("occupation", {"a": ("nurse", "doctor"), "b": ("teacher", "pilot")})}


def _mask_logp(adapter, text, word, which):
    enc = adapter.tokenizer(text, return_tensors="pt")
    pos = (enc["input_ids"][0] == adapter.mask_token_id).nonzero()[which].item()
    with torch.no_grad():
        logits = adapter.model(**enc).logits[0, pos]
    return torch.log_softmax(logits, -1)[adapter.tokenizer.convert_tokens_to_ids(word)].item()


def test_masked_formula_matches_kurita(random_mlm):
    frame = association_scores(random_mlm, TEMPLATES[:1], SMALL)
    row = frame[(frame["group_word"] == "she") & (frame["target"] == "pilot")].iloc[0]
    m = random_mlm.mask_token
    p_target = _mask_logp(random_mlm, f"She is a {m}.", "pilot", 0)
    p_prior = _mask_logp(random_mlm, f"{m} is a {m}.", "pilot", 1)
    assert row["score"] == pytest.approx(p_target - p_prior, abs=1e-4)


def test_causal_formula_normalises_over_targets(random_causal):
    frame = association_scores(random_causal, TEMPLATES[:1], SMALL, neutral="the person")
    targets = ["nurse", "doctor", "teacher", "pilot"]
    ll = random_causal.sentence_log_likelihood([f"He is a {t}." for t in targets])
    prior = random_causal.sentence_log_likelihood([f"The person is a {t}." for t in targets])
    expected = (ll - logsumexp(ll)) - (prior - logsumexp(prior))
    got = frame[frame["group_word"] == "he"].set_index("target").loc[targets, "score"].to_numpy()
    assert np.allclose(got, expected, atol=1e-6)


@pytest.mark.parametrize("builder", [pp.trained_mlm, pp.trained_causal])
def test_planted_association_is_recovered_and_balanced_is_not(builder):
    planted = fill_mask_bias(builder("planted"), templates=TEMPLATES, lexicons=LEXICONS, neutral="the king",
                             n_bootstrap=500, n_permutations=2000)
    assert planted.bias_score > 0 and planted.bias_ci[0] > 0
    assert planted.effect_size > 1.0 and planted.p_value < 0.05
    by_target = planted.by_target.set_index("target")["gap"]
    assert by_target[list(pp.MALE_JOBS)].min() > by_target[list(pp.FEMALE_JOBS)].max()  # ranking recovered
    section = planted.to_section()
    assert {"bias_score", "effect_size", "p_value", "by_group.male"} <= set(section.metrics)
    assert section.metrics["bias_score"].n == len(pp.MALE_JOBS) + len(pp.FEMALE_JOBS)
    assert len(section.tables["top_k"]) > 0
    balanced = fill_mask_bias(builder("balanced"), templates=TEMPLATES, lexicons=LEXICONS, neutral="the king",
                              n_bootstrap=500, n_permutations=2000)
    assert balanced.bias_ci[0] < 0 < balanced.bias_ci[1]  # no bias: the interval covers 0
    assert balanced.effect_ci[0] < 0 < balanced.effect_ci[1]
    assert abs(balanced.bias_score) < planted.bias_score / 20


def test_p_value_splits_group_words_and_targets(random_mlm):
    lexicons = {"person": Lexicon("person", {"male": ("he", "father"), "female": ("she", "mother")}),
                "occupation": SMALL["occupation"]}
    result = fill_mask_bias(random_mlm, templates=TEMPLATES, lexicons=lexicons, n_bootstrap=200)
    cell = result.scores.groupby(["group_word", "target"])["score"].mean()  # mean over the two templates
    words, targets = ["he", "father", "she", "mother"], ["nurse", "doctor", "teacher", "pilot"]

    def bias(a, x):
        b, y = [w for w in words if w not in a], [t for t in targets if t not in x]
        gap = {t: np.mean([cell[w, t] for w in a]) - np.mean([cell[w, t] for w in b]) for t in targets}
        return np.mean([gap[t] for t in x]) - np.mean([gap[t] for t in y])

    observed = bias(("he", "father"), ("nurse", "doctor"))
    assert result.bias_score == pytest.approx(observed)
    null = [bias(a, x) for a in itertools.combinations(words, 2) for x in itertools.combinations(targets, 2)]
    assert result.p_value == pytest.approx(np.mean([v >= observed - 1e-12 for v in null]))
    assert "exact (36 word and target splits)" in result.to_section().metrics["p_value"].details["test"]
    lo, hi = result.bias_ci
    assert lo <= result.bias_score <= hi


def test_bad_input(random_encoder, random_mlm):
    with pytest.raises(RaikitInputError, match="masked_lm or causal_lm"):
        association_scores(random_encoder, TEMPLATES, SMALL)
    with pytest.raises(RaikitInputError, match=r"needs the group slot \{person\}"):
        association_scores(random_mlm, [Template(id="t", text="a {mask}.", targets="occupation")], SMALL)
    with pytest.raises(RaikitInputError, match="groups must be two different groups"):
        fill_mask_bias(random_mlm, templates=TEMPLATES[:1], lexicons=SMALL, groups=["male", "other"])
    with pytest.raises(RaikitInputError, match="groups must be two different groups"):
        fill_mask_bias(random_mlm, templates=TEMPLATES[:1], lexicons=SMALL, groups=["male", "male"])
    overlap = {**SMALL, "occupation": Lexicon("occupation", {"a": ("nurse", "doctor"), "b": ("nurse", "pilot")})}
    with pytest.raises(RaikitInputError, match="'nurse' is in both 'a' and 'b'"):
        fill_mask_bias(random_mlm, templates=TEMPLATES[:1], lexicons=overlap)


def test_one_word_groups_still_get_an_interval_over_targets(random_mlm):
    result = fill_mask_bias(random_mlm, templates=TEMPLATES[:1], lexicons=SMALL, n_bootstrap=200)
    lo, hi = result.bias_ci
    assert lo <= result.bias_score <= hi


def test_subsample_gives_every_group_the_same_templates(random_mlm):
    """max_instances picks one stratified set of group words for all templates, not a mix per template."""
    templates = [Template(id=f"t{i}", text=f"{{person}} {verb} a {{mask}}.", targets="occupation")
                 for i, verb in enumerate(["is", "works as", "became", "wants to be", "trained as", "was"])]
    frame = association_scores(random_mlm, templates, LEXICONS, max_instances=4, seed=3)
    words_by_template = frame.groupby("template_id")["group_word"].apply(lambda s: frozenset(s))
    assert words_by_template.nunique() == 1  # the same group words in every template
    words = next(iter(words_by_template))
    groups = {LEXICONS["person"].group_of(w) for w in words}
    assert len(words) == 4 and groups == {"male", "female"}
    per_group = frame.drop_duplicates(["template_id", "group_word"]).groupby("group")["template_id"].apply(set)
    assert per_group["male"] == per_group["female"] == {t.id for t in templates}
    assert frame.attrs["n_total"] == len(templates) * len(LEXICONS["person"].words)
