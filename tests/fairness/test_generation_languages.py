"""Generation probes in the HONEST languages: per-language questions, a planted il/elle association recovered."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import tiny  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _planted_gender import FEMALE_JOBS, MALE_JOBS, assert_planted_gender_recovered  # noqa: E402

from raikit.audits import wrap_model  # noqa: E402
from raikit.audits.errors import RaikitInputError  # noqa: E402
from raikit.audits.sections import RunContext  # noqa: E402
from raikit.fairness import generation  # noqa: E402
from raikit.fairness.generation import (  # noqa: E402
    LANGUAGES, QUESTION_FILES, GenerationOptions, _check, _questions, _run, gender_counts, gendered_words,
)
from raikit.fairness.templates import builtin_path, load_lexicons, load_templates  # noqa: E402

GENDERED = builtin_path("lexicons/gendered_words.toml")
OTHER = [lang for lang in LANGUAGES if lang != "en"]


def _ctx(tmp_path: Path) -> RunContext:
    return RunContext(seed=0, base_dir=tmp_path, progress=False)


def _files(language: str) -> tuple[list, dict]:
    questions, lexicons, _ = QUESTION_FILES[language]
    return load_templates(builtin_path(questions[len("builtin:"):])), load_lexicons(lexicons)


@pytest.mark.parametrize("language", OTHER)
def test_each_language_asks_the_english_questions_about_the_same_occupations_naming_no_gender(language, tmp_path):
    en_templates, en_lexicons = _files("en")
    templates, lexicons = _files(language)
    assert [t.id for t in templates] == [t.id for t in en_templates]
    assert all(t.slots == ("occupation",) for t in templates)
    english = en_lexicons["occupation"].groups
    assert list(lexicons["occupation"].groups) == list(english)
    # each phrase is named by the English occupation it stands for, in the English order
    assert dict(lexicons["occupation_key"].groups) == dict(english)
    reference = QUESTION_FILES[language][2]
    assert all(p.startswith(reference + " ") for p in lexicons["occupation"].words)
    options = GenerationOptions(language=language, bold="")
    _check(options, _ctx(tmp_path))
    asked = _questions(options, _ctx(tmp_path))
    assert len(asked) == 3 * (len(en_lexicons["occupation"].words) + 1)
    assert set(asked["occupation"]) == set(en_lexicons["occupation"].words) | {reference}
    # the requests name no gender: no word of the language's list is in any question, reference included
    assert gender_counts(asked["text"].tolist(), gendered_words(GENDERED, language=language)).sum() == 0


def test_other_languages_default_to_their_own_questions_and_keep_a_named_file(tmp_path):
    for language in OTHER:
        options = GenerationOptions(language=language)
        assert options.questions == f"builtin:templates/questions_{language}.toml"
        assert options.lexicons == [f"builtin:lexicons/occupations_{language}.toml"]
        assert options.reference == QUESTION_FILES[language][2] != "person"
    english = GenerationOptions()
    assert english.lexicons == ["builtin:lexicons/occupations.toml"]
    assert (english.questions, english.lexicons[0], english.reference) == QUESTION_FILES["en"]
    mine = GenerationOptions(language="fr", questions="mine.toml", lexicons=["jobs.toml"], reference="quelqu'un")
    assert (mine.questions, mine.lexicons, mine.reference) == ("mine.toml", ["jobs.toml"], "quelqu'un")
    partly = GenerationOptions(language="fr", lexicons=["jobs.toml"])
    assert partly.questions == "builtin:templates/questions_fr.toml" and partly.reference == "une personne"


def test_another_languages_builtin_files_are_refused_not_mixed(tmp_path):
    import dataclasses

    # replace() keeps the French files it was given: scoring them with Spanish words would be wrong
    mixed = dataclasses.replace(GenerationOptions(language="fr"), language="es")
    with pytest.raises(RaikitInputError, match=r"questions_fr\.toml is the 'fr' file, but language is 'es'"):
        generation._check(mixed, _ctx(tmp_path))
    lexicons_only = GenerationOptions(language="it", lexicons=["builtin:lexicons/occupations_pt.toml"])
    with pytest.raises(RaikitInputError, match="key 'lexicons'"):
        generation._check(lexicons_only, _ctx(tmp_path))


def test_accents_elision_and_cedillas_in_the_word_lists():
    fr = gendered_words(GENDERED, language="fr")
    texts = ["Je crois qu\u2019elle connaît l'homme.", "Je lui parle ; ils partent."]
    assert gender_counts(texts, fr, elision=True).tolist() == [[1, 1], [0, 0]]  # "lui" (also "to her"), generic "ils"
    assert gender_counts(texts, fr).tolist() == [[0, 0], [0, 0]]  # without elision: whole words only
    ro = gendered_words(GENDERED, language="ro")
    assert gender_counts(["Bărbaţii şi femeia.", "Bărbații și femeia."], ro).tolist() == [[1, 1], [1, 1]]
    it = gendered_words(GENDERED, language="it")
    assert gender_counts(["La casa dell'uomo e di lei."], it, elision=True).tolist() == [[1, 1]]
    en = gendered_words(GENDERED, language="en")
    assert gender_counts(["He's here, o'man; he'd go."], en).tolist() == [[1, 0]]  # English: BOLD's words only


def _phrase_file(tmp_path: Path) -> dict[str, str]:
    """Two male- and two female-dominated French phrases from the starter lexicon, with their keys."""
    lex = load_lexicons(["builtin:lexicons/occupations_fr.toml"])
    phrase = {k: p for g in ("male_dominated", "female_dominated")
              for k, p in zip(lex["occupation_key"].groups[g], lex["occupation"].groups[g])}
    chosen = {job: phrase[job] for job in MALE_JOBS + FEMALE_JOBS}
    (tmp_path / "metiers.toml").write_text(
        f"[occupation]\nmale_dominated = {json.dumps([chosen[j] for j in MALE_JOBS], ensure_ascii=False)}\n"
        f"female_dominated = {json.dumps([chosen[j] for j in FEMALE_JOBS], ensure_ascii=False)}\n"
        f"[occupation_key]\nmale_dominated = {json.dumps(MALE_JOBS)}\nfemale_dominated = {json.dumps(FEMALE_JOBS)}\n",
        encoding="utf-8")
    return chosen


@pytest.fixture(scope="module")
def planted_fr(tmp_path_factory):
    """A tiny causal LM that answers the French questions "il" for pilots and mechanics, "elle" for nurses and
    nannies and "on" for the neutral reference "une personne"."""
    folder = tmp_path_factory.mktemp("fr")
    _phrase_file(folder)
    asked = _questions(GenerationOptions(language="fr", bold="", lexicons=["metiers.toml"]), _ctx(folder))
    answer = {**dict.fromkeys(MALE_JOBS, "il travaille bien ."), **dict.fromkeys(FEMALE_JOBS, "elle travaille bien .")}
    corpus = [f"{t} {answer.get(o, 'on travaille bien .')}" for t, o in zip(asked["text"], asked["occupation"])] * 10
    model, tok = tiny.causal_lm_on(corpus, epochs=40, seed=1)
    return wrap_model(model, tok, name="planted-il-elle", device="cpu", progress=False), folder


def test_planted_il_elle_is_recovered_in_french(planted_fr, monkeypatch):
    adapter, folder = planted_fr
    asked: list[str] = []
    real = generation.complete_prompts

    def recording(adapter, prompts, **kw):
        asked.extend(prompts)
        return real(adapter, prompts, **kw)

    monkeypatch.setattr(generation, "complete_prompts", recording)
    options = GenerationOptions(language="fr", bold="", lexicons=["metiers.toml"], scores=["gender"],
                                decoding=["greedy"], max_new_tokens=4, n_bootstrap=200, n_permutations=999)
    _check(options, _ctx(folder))
    section = _run(adapter, options, _ctx(folder))
    m = section.metrics
    # the French questions were asked (default templates, the reference "une personne"), no English one
    assert len(asked) == 15 and all(q.startswith(("Décrivez", "Écrivez", "Racontez")) for q in asked)
    assert sum("d'une personne." in q for q in asked) == 2
    answers = section.tables["questions"]
    assert set(answers.loc[answers["occupation"] == "pilot", "completion"].str.strip()) == {"il travaille bien ."}
    assert_planted_gender_recovered(m)
    assert section.details["questions"]["templates"] == "builtin:templates/questions_fr.toml"
    assert any("questions_fr.toml" in n for n in section.notes)
    assert any("'une personne' is grammatically feminine" in n for n in section.notes)
    # the same answers scored with the English words find nothing: the language picks the lexicon
    english = gender_counts(answers["completion"].tolist(), gendered_words(GENDERED, language="en"))
    assert english.sum() == 0


def test_french_defaults_ask_only_french_questions(planted_fr, monkeypatch):
    adapter, folder = planted_fr
    asked: list[str] = []
    real = generation.complete_prompts
    monkeypatch.setattr(generation, "complete_prompts",
                        lambda adapter, prompts, **kw: asked.extend(prompts) or real(adapter, prompts, **kw))
    section = _run(adapter, GenerationOptions(language="fr", scores=["gender"], decoding=["greedy"], max_new_tokens=2,
                                              n_bootstrap=50, n_permutations=50), _ctx(folder))
    templates, lexicons = _files("fr")
    assert len(asked) == 3 * 25 and len(set(asked)) == 75
    assert not [q for q in asked if re.search(r"\b(describe|write|tell|typical|person)\b", q, re.IGNORECASE)]
    assert {q.split(" ")[0] for q in asked} == {t.text.split(" ")[0] for t in templates}
    assert {k.split(".")[-1] for k in section.metrics if ".gendered.by_occupation." in k} == \
        set(_files("en")[1]["occupation"].words)


def test_occupation_keys_must_mirror_the_occupations(tmp_path):
    (tmp_path / "q.toml").write_text('[[template]]\nid = "t"\ntext = "Décrivez {occupation}."\n', encoding="utf-8")
    bad = {"short": ('g = ["x", "y"]', 'g = ["a"]', "must have the groups"),
           "dot": ('g = ["x", "y"]', 'g = ["a.b", "c"]', "has a dot"),
           "twice": ('g = ["x"]\nh = ["y"]', 'g = ["a"]\nh = ["a"]', "used twice")}
    for case, (words, keys, message) in bad.items():
        (tmp_path / f"{case}.toml").write_text(f"[occupation]\n{words}\n[occupation_key]\n{keys}\n", encoding="utf-8")
        with pytest.raises(RaikitInputError, match=f"key 'questions'.*{message}"):
            _check(GenerationOptions(language="fr", bold="", questions="q.toml", lexicons=[f"{case}.toml"]),
                   _ctx(tmp_path))
