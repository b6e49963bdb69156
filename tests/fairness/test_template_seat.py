"""Templated SEAT: planted and balanced encoders, the definitions written out, bad input."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import tiny
import torch

from raikit.audits.config import validate_options
from raikit.audits.errors import RaikitInputError
from raikit.audits.sections import RunContext
from raikit.fairness.seat import weat_effect_size
from raikit.fairness.template_seat import (
    TemplateSeatOptions,
    TemplateTest,
    _run,
    build_seat_tests,
    template_seat,
)
from raikit.fairness.templates import Lexicon, Template

MALE, FEMALE = ["he", "father", "boy", "uncle", "king"], ["she", "mother", "girl", "aunt", "queen"]
MALE_JOBS, FEMALE_JOBS = ["doctor", "pilot", "engineer", "lawyer", "farmer"], ["nurse", "dancer", "teacher",
                                                                               "secretary", "baker"]
LEXICONS = {"person": Lexicon("person", {"male": tuple(MALE), "female": tuple(FEMALE)}),
            "job": Lexicon("job", {"male_typed": tuple(MALE_JOBS), "female_typed": tuple(FEMALE_JOBS)})}
TEMPLATES = [Template(id="p1", text="{person} is here."), Template(id="p2", text="{person} came in."),
             Template(id="j1", text="This is {a:job}."), Template(id="j2", text="There is {a:job}."),
             Template(id="j3", text="{a:job} is here.")]
TEST = TemplateTest(name="gender_job", targets="person", attributes="job")


def _planted_encoder(kind: str):
    """A BERT whose embedding layer puts male words and male-typed jobs on one axis, female ones on another.

    Read at ``layer=0`` (the embedding output), a sentence vector is the mean of its layer-normed word
    vectors, so the association is known by construction: ``planted`` ties each gender to its jobs,
    ``balanced`` gives the jobs no gender axis at all.
    """
    from raikit.audits import wrap_model

    corpus = [t.text.replace("{a:job}", "a an").replace("{person}", "").replace("{a:", "") for t in TEMPLATES]
    tok = tiny.word_tokenizer(corpus + [" ".join(MALE + FEMALE + MALE_JOBS + FEMALE_JOBS)], style="bert")
    model = tiny.tiny_encoder(tok, hidden_size=32)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        emb = model.embeddings
        emb.position_embeddings.weight.zero_()
        emb.token_type_embeddings.weight.zero_()
        emb.word_embeddings.weight.copy_(0.5 * torch.randn(emb.word_embeddings.weight.shape, generator=gen))
        for words, axis in ((MALE, 0), (FEMALE, 1), (MALE_JOBS, 0), (FEMALE_JOBS, 1)):
            if kind == "balanced" and words in (MALE_JOBS, FEMALE_JOBS):
                continue
            for w in words:
                emb.word_embeddings.weight[tok.convert_tokens_to_ids(w), axis] += 3.0
    return wrap_model(model, tok, name=f"enc-{kind}", device="cpu", progress=False)


def test_planted_association_is_recovered_and_balanced_is_not():
    planted = template_seat(_planted_encoder("planted"), tests=[TEST], templates=TEMPLATES, lexicons=LEXICONS,
                            layer=0, n_bootstrap=500).tests[0]
    assert planted.effect_size > 1.5 and planted.effect_ci[0] > 0.5
    assert planted.p_value == pytest.approx(1 / 252)  # 5 + 5 words: only the observed split is as extreme
    assert "of words" in planted.p_method
    reverse = TemplateTest(name="r", targets="person", attributes="job", target_groups=("female", "male"))
    flipped = template_seat(_planted_encoder("planted"), tests=[reverse], templates=TEMPLATES, lexicons=LEXICONS,
                            layer=0, n_bootstrap=10).tests[0]
    assert flipped.effect_size == pytest.approx(-planted.effect_size)
    balanced = template_seat(_planted_encoder("balanced"), tests=[TEST], templates=TEMPLATES, lexicons=LEXICONS,
                             layer=0, n_bootstrap=500).tests[0]
    assert balanced.effect_ci[0] < 0 < balanced.effect_ci[1]  # no bias: the interval covers 0
    assert balanced.p_value > 0.05


def test_matches_seat_definition_with_words_as_units(random_encoder):
    built = build_seat_tests([TEST], templates=TEMPLATES, lexicons=LEXICONS)[0]
    assert built.examples["targ1"][:2] == ("He is here.", "He came in.")
    assert built.examples["attr2"][0] == "This is a nurse."
    assert built.clusters["attr1"].count("engineer") == 3
    result = template_seat(random_encoder, tests=[TEST], templates=TEMPLATES, lexicons=LEXICONS, n_bootstrap=50)
    x, y, a, b = (random_encoder.embed(list(built.examples[k])).astype(float) for k in ("targ1", "targ2", "attr1",
                                                                                      "attr2"))
    assert result.tests[0].effect_size == pytest.approx(weat_effect_size(x, y, a, b), abs=1e-6)

    def cos(u, v):
        return u @ v / np.sqrt((u @ u) * (v @ v))

    def s(w):
        return np.mean([cos(w, ai) for ai in a]) - np.mean([cos(w, bi) for bi in b])

    # the permutation test splits words: each word's s is the mean over its two templates
    words = [np.mean([s(v) for v in vecs[2 * i:2 * i + 2]]) for vecs in (x, y) for i in range(5)]
    observed = sum(words[:5])
    splits = list(itertools.combinations(range(10), 5))
    p = sum(sum(words[i] for i in c) >= observed - 1e-12 for c in splits) / len(splits)
    assert result.tests[0].p_value == pytest.approx(p)
    items = result.items
    assert len(items) == 20 and set(items["word"]) == set(MALE + FEMALE)
    section = result.to_section()
    assert set(section.metrics) == {"gender_job.effect_size", "gender_job.p_value"}
    assert section.metrics["gender_job.effect_size"].n == 20 + 30


def test_default_options_run_on_any_encoder(random_encoder, shared_data):
    section = _run(random_encoder, TemplateSeatOptions(n_bootstrap=20), RunContext(seed=0, data_dir=shared_data,
                                                                                   progress=False))
    names = {"gender_occupation", "names_occupation", "disability_valence", "age_valence"}
    assert set(section.metrics) == {f"{n}.{m}" for n in names for m in ("effect_size", "p_value")}
    assert all(np.isfinite(m.value) for m in section.metrics.values())
    assert len(section.tables["associations"]) > 0


def test_bad_input(random_encoder):
    no_template = TemplateTest(name="t", targets="person", attributes="job")
    with pytest.raises(RaikitInputError, match=r"no template has the single slot \{job\}"):
        build_seat_tests([no_template], templates=TEMPLATES[:2], lexicons=LEXICONS)
    with pytest.raises(RaikitInputError, match="no lexicon 'jobs'"):
        build_seat_tests([TemplateTest(name="t", targets="person", attributes="jobs")], templates=TEMPLATES,
                         lexicons=LEXICONS)
    with pytest.raises(RaikitInputError, match=r"target_groups must be two different groups of 'person' \(male, "
                                               r"female\); got \['male', 'other'\]"):
        build_seat_tests([TemplateTest(name="t", targets="person", attributes="job",
                                       target_groups=("male", "other"))], templates=TEMPLATES, lexicons=LEXICONS)
    flat = {**LEXICONS, "person": Lexicon("person", {"": ("he", "she")})}
    with pytest.raises(RaikitInputError, match="needs at least two groups"):
        build_seat_tests([TEST], templates=TEMPLATES, lexicons=flat)
    options, problems = validate_options({"tests": {"x": {"targets": "person"}}}, TemplateSeatOptions,
                                         where="a.toml: [fairness.template_seat]")
    assert options is None and problems == ["a.toml: [fairness.template_seat]: tests.x: key 'attributes' must name "
                                            "a lexicon, got None"]


def test_numbered_slots_join_and_mask_templates_are_left_out(random_encoder):
    templates = TEMPLATES + [Template(id="p3", text="Then {person2} left."),
                             Template(id="m", text="{person} is a {mask}.", targets="job")]
    built = build_seat_tests([TEST], templates=templates, lexicons=LEXICONS)[0]
    assert built.examples["targ1"][:3] == ("He is here.", "He came in.", "Then he left.")
    assert not any("{mask}" in e or "[MASK]" in e for k in built.examples for e in built.examples[k])
    assert built.clusters["targ1"][:3] == ("he", "he", "he")


def test_too_few_words_for_significance_is_noted(random_encoder):
    few = {**LEXICONS, "person": Lexicon("person", {"male": ("he", "king"), "female": ("she", "queen")})}
    result = template_seat(random_encoder, tests=[TEST], templates=TEMPLATES, lexicons=few, n_bootstrap=20)
    assert result.tests[0].min_p_value == pytest.approx(1 / 6)
    assert any("too few words for p < 0.05" in n for n in result.notes)
    assert result.to_section().metrics["gender_job.effect_size"].details["n_units"] == 4 + 10
