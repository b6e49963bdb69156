"""SHAP (Lundberg & Lee 2017): the Partition explainer with shap's Text masker.

shap's Partition explainer computes Owen values over a hierarchical clustering of the tokens
(shap's Text masker masks a token by replacing it with the tokenizer's mask token, or ``...``);
the model output is the classifier's full probability vector, so every class gets attributions and
``base_value + sum(attributions) == probability`` holds for each class (efficiency).

Speed: the model function is the adapter's ``predict_proba`` (length-sorted batches, cache of
repeated texts; the all-masked input, for one, recurs across texts), and the texts of a group run
side by side with their model calls merged into shared batches
(:func:`~raikit.explain._batching.run_in_lockstep`). shap's own algorithm and batch size are
unchanged, so at the same ``max_evals`` the attributions equal those of plain ``shap`` usage.
"""
from __future__ import annotations

from collections.abc import Sequence
import warnings
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from raikit.audits.models import ClassifierAdapter
from raikit.explain._base import EXPLAINERS, Explanation, ExplainSettings, check_inputs, make_explanation
from raikit.explain._batching import Predict, run_in_lockstep
from raikit.explain._words import merge_to_words, token_word_matrix, word_spans

__all__ = ["TokenShap", "shap_token_values", "explain_shap"]


@dataclass(frozen=True)
class TokenShap:
    """SHAP values of one text at the level of the tokenizer's tokens.

    Attributes
    ----------
    offsets : list of (int, int)
        Character span of each token (``(0, 0)`` for special tokens).
    values : ndarray, shape (n_tokens, n_classes)
    base_values : ndarray, shape (n_classes,)
        Model output with every token masked.
    """

    offsets: list[tuple[int, int]]
    values: np.ndarray
    base_values: np.ndarray


def _import_shap() -> ModuleType:
    """Import shap, silencing the matplotlib deprecation that shap's plotting module triggers on import."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The set_(bad|over|under) function",
                                category=PendingDeprecationWarning)
        import shap
    return shap


def _segments(text: str, offsets: list[tuple[int, int]]) -> list[str]:
    """Non-overlapping text piece of each token: its characters plus the whitespace up to the next token.

    shap's own ``Text.token_segments`` cuts ``text[start_i:max(end_i, start_{i+1})]``, which repeats
    characters when token spans overlap (SentencePiece's separate ``▁`` token shares its span with
    the next piece), so the unmasked text it rebuilds is not the original. Here every character
    belongs to one piece, so joining the pieces gives the text back (for WordPiece and byte-level
    BPE the pieces equal shap's).
    """
    starts: list[int] = []
    bound = 0
    for a, b in offsets:
        starts.append(max(a, bound))
        bound = max(starts[-1], b)
    parts = []
    for i, (_, b) in enumerate(offsets):
        end = starts[i + 1] if i + 1 < len(offsets) else max(b, starts[i])
        parts.append(text[starts[i]:max(end, starts[i])])
    return parts


def _masker(shap: ModuleType, tokenizer: Any) -> Any:
    """shap's Text masker with :func:`_segments` as its token segmentation."""

    class _TextMasker(shap.maskers.Text):  # type: ignore[name-defined,misc]
        def token_segments(self, s: str) -> tuple[list[str], list[int]]:
            enc = self.tokenizer(s, return_offsets_mapping=True)
            offsets = [(0, 0) if o is None else (int(o[0]), int(o[1])) for o in enc["offset_mapping"]]
            return _segments(s, offsets), list(enc["input_ids"])

    return _TextMasker(tokenizer)


def _explain_one(adapter: ClassifierAdapter, text: str, predict: Predict, *, max_evals: int,
                 batch_size: int) -> TokenShap:
    shap = _import_shap()
    masker = _masker(shap, adapter.tokenizer)
    explainer = shap.explainers.PartitionExplainer(lambda x: np.asarray(predict([str(t) for t in x])), masker,
                                                   output_names=list(adapter.labels))
    result = explainer([text], max_evals=max_evals, batch_size=batch_size, silent=True)
    offsets = [tuple(int(x) for x in pair) for pair in adapter.tokenizer(text, return_offsets_mapping=True)
               ["offset_mapping"]]
    values = np.asarray(result.values[0], dtype=np.float64)
    if values.shape[0] != len(offsets):
        raise RuntimeError(f"shap returned {values.shape[0]} token values for {len(offsets)} tokens")
    return TokenShap(offsets=offsets, values=values, base_values=np.asarray(result.base_values[0], dtype=np.float64))


def shap_token_values(adapter: ClassifierAdapter, texts: Sequence[str], *, max_evals: int = 500,
                      batch_size: int = 5, group_size: int = 16, progress: bool = False) -> list[TokenShap]:
    """Token-level SHAP values of each text over every class, with model calls shared across texts.

    Parameters
    ----------
    adapter : ClassifierAdapter
    texts : sequence of str
    max_evals : int
        shap's evaluation budget per text.
    batch_size : int
        shap's ``batch_size`` (cluster nodes expanded per step; 5 is shap's default for text).
    group_size : int
        Texts whose model calls are merged; 1 explains the texts one by one.
    progress : bool
        Progress bar over texts.

    Returns
    -------
    list of TokenShap
    """
    items = check_inputs(adapter, texts)
    _import_shap()  # once, in this thread, before the worker threads start
    bar = tqdm(total=len(items), desc=f"{adapter.name}: SHAP", unit="text", disable=not progress, leave=False)
    try:
        return run_in_lockstep(
            items, lambda text, fn: _explain_one(adapter, text, fn, max_evals=max_evals, batch_size=batch_size),
            adapter.predict_proba, group_size=group_size, on_done=lambda: bar.update(1))
    finally:
        bar.close()


@EXPLAINERS.register("shap")
def explain_shap(adapter: ClassifierAdapter, texts: Sequence[str], *,
                 settings: ExplainSettings) -> list[Explanation]:
    """SHAP Partition attributions merged to words (sum of each word's token values).

    The values of tokens that belong to no word (special tokens, whitespace-only or empty tokens)
    are added to the base value, so ``base_values + attributions.sum(0)`` equals the class
    probabilities of the text exactly (efficiency).
    """
    token_values = shap_token_values(adapter, texts, max_evals=settings.shap_max_evals,
                                     batch_size=settings.shap_batch_size, group_size=settings.group_size,
                                     progress=settings.progress)
    probs = adapter.predict_proba(texts)
    out = []
    for text, tv, p in zip(texts, token_values, probs):
        spans = word_spans(text)
        orphan = token_word_matrix(tv.offsets, spans).sum(axis=1) == 0
        base = tv.base_values + tv.values[orphan].sum(axis=0)
        out.append(make_explanation(adapter, text, spans, merge_to_words(tv.values, tv.offsets, spans), p, "shap",
                                    base_values=base))
    return out
