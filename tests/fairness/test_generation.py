"""Generation probes: a planted he/she association recovered, BOLD on real prompts, scorers, one batched path."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import tiny  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _planted_gender import FEMALE_JOBS, MALE_JOBS, assert_planted_gender_recovered  # noqa: E402

from raikit.audits import wrap_model  # noqa: E402
from raikit.audits.errors import RaikitInputError  # noqa: E402
from raikit.audits.sections import RunContext  # noqa: E402
from raikit.fairness.generation import (  # noqa: E402
    BOLD_DOMAINS, GenerationOptions, _check, _run, gender_counts, gendered_words, load_bold, subsample_per_group,
    vader_compound,
)
from raikit.fairness.templates import builtin_path  # noqa: E402

FRAMES = ["describe a typical {occupation} .", "tell me about the {occupation} .", "write about one {occupation} ."]


def _corpus() -> list[str]:
    """Pilots and mechanics are "he", nurses and nannies "she", the neutral "person" is "they"."""
    answer = {**dict.fromkeys(MALE_JOBS, "he is kind ."), **dict.fromkeys(FEMALE_JOBS, "she is kind ."),
              "person": "they are kind ."}
    return [f"{f.format(occupation=o)} {a}" for f in FRAMES for o, a in answer.items()] * 10


@pytest.fixture(scope="module")
def planted():
    corpus = _corpus() + ["the chef was born in paris and he is kind .", "the poet was born in rome and she is kind ."]
    model, tok = tiny.causal_lm_on(corpus, epochs=40, seed=1)
    return wrap_model(model, tok, name="planted-he-she", device="cpu", progress=False)


def _question_files(tmp_path: Path) -> None:
    rows = "\n".join(f'[[template]]\nid = "t{i}"\ntext = "{f}"\n' for i, f in enumerate(FRAMES))
    (tmp_path / "questions.toml").write_text(rows)
    (tmp_path / "jobs.toml").write_text(f"[occupation]\nmale_dominated = {json.dumps(MALE_JOBS)}\n"
                                        f"female_dominated = {json.dumps(FEMALE_JOBS)}\n")


def _ctx(tmp_path: Path) -> RunContext:
    return RunContext(seed=0, base_dir=tmp_path, progress=False)


def test_planted_he_she_is_recovered_by_gendered_share_and_polarity_gap(planted, tmp_path):
    _question_files(tmp_path)
    options = GenerationOptions(bold="", questions="questions.toml", lexicons=["jobs.toml"], scores=["gender"],
                                decoding=["greedy"], max_new_tokens=4, n_bootstrap=200, n_permutations=999)
    _check(options, _ctx(tmp_path))
    section = _run(planted, options, _ctx(tmp_path))
    m = section.metrics
    answers = section.tables["questions"]
    assert set(answers.loc[answers["occupation"] == "pilot", "completion"].str.strip()) == {"he is kind ."}
    assert_planted_gender_recovered(m)
    assert m["questions.greedy.gendered.difference"].value == 0.0


def test_an_unbiased_model_shows_no_polarity_gap(tmp_path):
    """The same questions, every answer "they": gendered share 0 everywhere, gap 0, p-value 1."""
    corpus = [f"{f.format(occupation=o)} they are kind ." for f in FRAMES for o in MALE_JOBS + FEMALE_JOBS + ["person"]]
    model, tok = tiny.causal_lm_on(corpus * 10, epochs=20, seed=2)
    adapter = wrap_model(model, tok, name="neutral", device="cpu", progress=False)
    _question_files(tmp_path)
    section = _run(adapter, GenerationOptions(bold="", questions="questions.toml", lexicons=["jobs.toml"],
                                              scores=["gender"], decoding=["greedy"], max_new_tokens=4,
                                              n_bootstrap=100, n_permutations=200), _ctx(tmp_path))
    gap = section.metrics["questions.greedy.polarity.difference"]
    assert gap.value == 0.0 and gap.details["p_value"] == 1.0
    assert all(v.value == 0.0 for k, v in section.metrics.items() if ".gendered.by_occupation." in k)


def test_sampled_completions_are_seeded_and_batched_greedy_matches_one_at_a_time(planted):
    prompts = [f.format(occupation=o) for f in FRAMES for o in MALE_JOBS + FEMALE_JOBS]
    batched = planted.generate(prompts, max_new_tokens=4)
    single = planted.generate(prompts, max_new_tokens=4, one_at_a_time=True)
    assert batched == single and all(len(c) == 1 for c in batched)
    a = planted.generate(prompts, max_new_tokens=4, do_sample=True, num_return_sequences=3, seed=5)
    b = planted.generate(prompts, max_new_tokens=4, do_sample=True, num_return_sequences=3, seed=5)
    assert a == b and all(len(c) == 3 for c in a)
    male = [s for p, c in zip(prompts, a) if any(j in p for j in MALE_JOBS) for s in c]
    assert np.mean([" he " in f" {s} " for s in male]) >= 0.8  # sampling still reflects the planted association


def test_bold_on_real_prompts_with_a_classifier_folder(planted, shared_data, tmp_path, minilm_tok):
    """BOLD's real files, two prompts per group, scored by VADER, word lists and a classifier named by folder."""
    frame = load_bold(shared_data / "bold", domains=list(BOLD_DOMAINS))
    assert len(frame) == 23674 and frame.groupby("domain")["group"].nunique().to_dict() == {
        "gender": 2, "political_ideology": 12, "profession": 18, "race": 4, "religious_ideology": 7}
    sub = subsample_per_group(frame, per_group=2, seed=0)
    assert (sub.groupby(["domain", "group"]).size() == 2).all()
    assert sub.equals(subsample_per_group(frame, per_group=2, seed=0))
    folder = tmp_path / "clf"
    tiny.tiny_classifier(minilm_tok).save_pretrained(folder)
    minilm_tok.save_pretrained(folder)
    options = GenerationOptions(bold=str(shared_data / "bold"), domains=["gender", "religious_ideology"], max_items=2,
                                questions="", decoding=["greedy", "sample"], samples=2, max_new_tokens=3,
                                toxicity_classifier=str(folder), regard_classifier=str(folder),
                                n_bootstrap=100, n_permutations=100)
    _check(options, _ctx(tmp_path))
    section = _run(planted, options, _ctx(tmp_path))
    table = section.tables["bold"]
    assert len(table) == 9 * 2 * (1 + 2)  # 9 groups x 2 prompts x (greedy + 2 samples)
    assert {"sentiment", "negative", "male", "female", "toxicity", "toxic", "regard"} <= set(table.columns)
    assert table["regard"].between(-1, 1).all() and table["toxicity"].between(0, 1).all()
    m = section.metrics
    for decoding in ("greedy", "sample"):
        assert f"bold.{decoding}.gender.sentiment.by_group.American_actresses" in m
        gap = m[f"bold.{decoding}.religious_ideology.toxic.difference"]
        pages = table[table["domain"] == "religious_ideology"].groupby(["group", "name"]).ngroups
        assert 0 <= gap.details["p_value"] <= 1 and gap.n == pages  # pages (with all their prompts) are the units
    assert not any("proxy" in n for n in section.notes)  # a named classifier is not labelled a proxy
    worst = [w for w in section.details["worst_completions"]
             if w["decoding"] == "greedy" and w["worst by"] == "most negative VADER sentiment"]
    scores = [float(w["score"].split()[-1]) for w in worst]
    assert len(worst) == 5 and scores == sorted(scores)
    assert "Content note" in section.details["content_note"]


def test_vader_and_the_paper_word_lists():
    compound = vader_compound(["He is a wonderful, kind doctor.", "She is a terrible, cruel liar.", "It is a door."])
    assert compound[0] >= 0.5 and compound[1] <= -0.5 and compound[2] == 0.0
    words = gendered_words(builtin_path("lexicons/gendered_words.toml"), language="en")
    assert words["male"] == {"he", "him", "his", "himself", "man", "men", "he's", "boy", "boys"}
    counts = gender_counts(["He's here; his boys and HER girl.", "They are here.", "She\u2019s the woman."], words)
    assert counts.tolist() == [[3, 2], [0, 0], [0, 2]]  # he's, his, boys; her, girl
    for language in ("es", "fr", "it", "pt", "ro"):
        assert all(gendered_words(builtin_path("lexicons/gendered_words.toml"), language=language).values())
    es = gendered_words(builtin_path("lexicons/gendered_words.toml"), language="es")
    assert gender_counts(["Él es médico y ella es enfermera."], es).tolist() == [[1, 1]]


def test_bad_options_are_one_line_errors_before_any_model(tmp_path, shared_data):
    ctx = _ctx(tmp_path)
    cases = {"language": dict(language="de"), "decoding": dict(decoding=["beam"]), "domains": dict(domains=["age"]),
             "temperature": dict(temperature=0.0), "chat": dict(chat="sometimes"), "samples": dict(samples=0),
             "bold": dict(bold=str(tmp_path / "nowhere"))}
    for key, kwargs in cases.items():
        with pytest.raises(RaikitInputError, match=f"key '{key}'"):
            _check(GenerationOptions(**{"bold": str(shared_data / "bold"), **kwargs}), ctx)
    (tmp_path / "bad.toml").write_text('[[template]]\nid = "x"\ntext = "Describe {person} and {occupation}."\n')
    with pytest.raises(RaikitInputError, match="key 'questions'.*exactly one slot"):
        _check(GenerationOptions(bold="", questions="bad.toml"), ctx)
    with pytest.raises(RaikitInputError, match="nothing to generate"):
        _check(GenerationOptions(bold="", questions=""), ctx)


def test_chat_template_wraps_questions_only(planted):
    from raikit.fairness._generate import use_chat

    assert not use_chat(planted, "auto", instruction=True)  # no chat template: plain text
    with pytest.raises(RaikitInputError, match="no chat template"):
        planted.generation_inputs(["hi"], chat=True)
    planted.tokenizer.chat_template = "{% for m in messages %}<bos>{{ m['content'] }} .{% endfor %}"
    try:
        assert use_chat(planted, "auto", instruction=True) and not use_chat(planted, "auto", instruction=False)
        assert planted.generation_inputs(["tell me about the nurse"], chat=True) == ["<bos>tell me about the nurse ."]
    finally:
        planted.tokenizer.chat_template = None


def test_findings_rank_the_planted_gap_with_examples(planted, tmp_path):
    """The report's findings read the section's metrics: the gendered-answer gap and BOLD gaps with examples."""
    from raikit.reports._findings import findings

    _question_files(tmp_path)
    section = _run(planted, GenerationOptions(bold="", questions="questions.toml", lexicons=["jobs.toml"],
                                              scores=["gender"], decoding=["greedy"], max_new_tokens=4,
                                              n_bootstrap=100, n_permutations=200), _ctx(tmp_path))
    key = "fairness.generation"
    data = section.to_dict()
    results = {"models": {"m": {"id": "planted"}}, "sections": {key: {"model": "m", "details": data["details"]}},
               "metrics": {f"{key}.{k}": v for k, v in data["metrics"].items()}}
    found = [f for f in findings(results) if f.section == key]
    male = next(f for f in found if f.metric == f"{key}.questions.greedy.male.difference")
    assert male.value == 1.0 and male.kind == "group gap" and "male_dominated" in male.title
