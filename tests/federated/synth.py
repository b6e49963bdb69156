"""A small learnable task for federated tests: sentiment cue words among filler words, with groups."""
from __future__ import annotations

import random
from pathlib import Path

import pandas as pd

import tiny

POSITIVE = ["good", "great", "fine", "nice", "happy", "lovely", "super", "glad"]
NEGATIVE = ["bad", "awful", "poor", "sad", "nasty", "ugly", "grim", "worse"]
FILLER = [f"f{i}" for i in range(120)]
VOCAB = POSITIVE + NEGATIVE + FILLER


def texts(n: int, seed: int) -> pd.DataFrame:
    """``n`` texts: 6 filler words and one or two cue words of the label; groups a/b/c."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = rng.choice(["negative", "positive"])
        cues = POSITIVE if label == "positive" else NEGATIVE
        words = rng.choices(FILLER, k=6) + rng.choices(cues, k=rng.choice([1, 2]))
        rng.shuffle(words)
        rows.append((" ".join(words), label, "abc"[i % 3]))
    return pd.DataFrame(rows, columns=["text", "label", "group"])


def make_task(root: Path, n: int = 360, seed: int = 1):
    """Write data.csv and a tiny random classifier folder ``clf`` under ``root``; return (tok, model)."""
    texts(n, seed).to_csv(root / "data.csv", index=False)
    tok = tiny.word_tokenizer(VOCAB)
    assert tok.convert_tokens_to_ids("good") != tok.unk_token_id
    model = tiny.tiny_classifier(tok, hidden_size=32, intermediate_size=64)
    model.save_pretrained(root / "clf")
    tok.save_pretrained(root / "clf")
    return tok, model
