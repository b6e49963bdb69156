"""Generation probes in the HONEST languages: the gendered words of each language."""
from __future__ import annotations

from raikit.fairness.generation import gender_counts, gendered_words
from raikit.fairness.templates import builtin_path

GENDERED = builtin_path("lexicons/gendered_words.toml")


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
