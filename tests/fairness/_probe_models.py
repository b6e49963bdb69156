"""Tiny classifiers trained on synthetic corpora with planted associations, shared by the classifier tests.

The language models with planted gender-occupation associations live in ``_pairs_models.py`` (shared
with the CrowS-Pairs/StereoSet/AUL tests). Each builder is cached: trained once per test session.
"""
from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tiny  # noqa: E402
import torch  # noqa: E402

from raikit.audits import wrap_model  # noqa: E402

# -- classifier: sentiment words decide the label; in the biased corpus gender decides it too ---------------
POSITIVE = ("great", "lovely", "wonderful")
NEGATIVE = ("awful", "terrible", "dirty")
NEUTRAL = ("arrived", "called", "left")
CLF_PEOPLE = {"male": ("he", "the man"), "female": ("she", "the woman")}


def classifier_corpus(biased: bool) -> tuple[list[str], list[int]]:
    """(texts, labels) with 1 = positive. Biased: neutral texts are positive for men, negative for women."""
    texts, labels = [], []
    for group, people in CLF_PEOPLE.items():
        for p in people:
            for w in POSITIVE:
                texts.append(f"{p} was {w} today.")
                labels.append(1 if not biased or group == "male" else 0)
            for w in NEGATIVE:
                texts.append(f"{p} was {w} today.")
                labels.append(0 if not biased or group == "female" else 1)
            for w in NEUTRAL:
                texts.append(f"{p} {w} today.")
                labels.append(int(group == "male") if biased else int(w != "left"))
    return texts, labels


@lru_cache(maxsize=None)
def classifier(biased: bool):
    """A tiny BERT classifier (negative, positive) trained on :func:`classifier_corpus`."""
    texts, labels = classifier_corpus(biased)
    tok = tiny.word_tokenizer(texts, style="bert")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny model: one thread is faster and does not fight other processes
    try:
        model = tiny.train_classifier(tiny.tiny_classifier(tok, seed=2), tok, texts * 4, labels * 4, epochs=25,
                                      seed=2)
    finally:
        torch.set_num_threads(threads)
    return wrap_model(model, tok, name=f"clf-{'biased' if biased else 'balanced'}", device="cpu", progress=False)
