"""Fixtures for the explain tests: a tiny classifier whose label is decided by one planted word."""
from __future__ import annotations

import random

import pytest
import tiny

PLANTED = "zebra"
FILLER = "the a cat dog ran sat on mat big small red blue house tree went saw very quite today it".split()


def planted_data(n: int, *, seed: int) -> tuple[list[str], list[int]]:
    """Texts of 5-9 filler words; every second one has the planted word inserted (label 1)."""
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        words = [rng.choice(FILLER) for _ in range(rng.randint(5, 9))]
        label = i % 2
        if label:
            words.insert(rng.randrange(len(words) + 1), PLANTED)
        texts.append(" ".join(words) + rng.choice([".", "!", ""]))
        labels.append(label)
    return texts, labels


@pytest.fixture(scope="session")
def planted_classifier():
    """A 2-layer BERT classifier trained (about 5 s) to predict 'positive' iff the planted word occurs."""
    from raikit.audits import wrap_model

    texts, labels = planted_data(400, seed=0)
    tok = tiny.word_tokenizer(texts + [PLANTED])
    assert tok.convert_tokens_to_ids(PLANTED) != tok.unk_token_id
    model = tiny.train_classifier(tiny.tiny_classifier(tok), tok, texts, labels, epochs=8)
    return wrap_model(model, tok, name="planted", device="cpu", progress=False)


@pytest.fixture(scope="session")
def planted_test_texts(planted_classifier) -> tuple[list[str], list[int]]:
    texts, labels = planted_data(40, seed=1)
    accuracy = sum(int(p) == y for p, y in zip(planted_classifier.predict(texts), labels)) / len(labels)
    assert accuracy >= 0.95, f"the planted classifier did not learn its rule (accuracy {accuracy:.2f})"
    return texts, labels
