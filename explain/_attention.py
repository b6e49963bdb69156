"""Attention-based attributions and the random baseline.

* ``attention``: the last layer's attention, averaged over heads, from the pooled position to each
  token, summed into words. Class-agnostic (the same scores for every class).
* ``rollout``: attention rollout (Abnar & Zuidema 2020). Per layer, average the heads, add the
  identity for the residual connection and renormalise rows, ``Â = (A + I) / rowsum``; multiply the
  layers, ``R = Â_L ··· Â_1``; the attribution of token ``j`` is ``R[pooled, j]``, summed into words.
* ``random``: uniform random word scores, seeded by the text; the floor that a faithful explainer
  must beat.

The pooled position is the first token ([CLS] for BERT-style classifiers); for a model whose
attention is causal (every weight above the diagonal is zero: GPT-style classifiers pool the last
token) it is the last token. Special tokens get no word, so their attention mass is dropped.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from raikit.audits.models import AttentionMaps, ClassifierAdapter
from raikit.explain._base import EXPLAINERS, Explanation, ExplainSettings, make_explanation
from raikit.explain._words import merge_to_words, token_word_matrix, word_spans

__all__ = ["rollout", "pooled_position", "explain_attention", "explain_rollout", "explain_random",
           "word_attention_map"]


def rollout(attentions: np.ndarray) -> np.ndarray:
    """Attention rollout of one text.

    Parameters
    ----------
    attentions : ndarray, shape (layers, heads, tokens, tokens)

    Returns
    -------
    ndarray, shape (tokens, tokens)
        ``R[i, j]``: how much of token ``j`` flows into position ``i`` at the last layer.
    """
    n = attentions.shape[-1]
    result = np.eye(n)
    for layer in attentions.astype(np.float64):
        a = layer.mean(axis=0) + np.eye(n)
        a /= a.sum(axis=-1, keepdims=True)
        result = a @ result
    return result


def pooled_position(attentions: np.ndarray) -> int:
    """0, or the last index when the attention is causal (nothing above the diagonal)."""
    upper = np.triu(attentions[0].mean(axis=0), k=1)
    return attentions.shape[-1] - 1 if attentions.shape[-1] > 1 and np.abs(upper).max() < 1e-8 else 0


def word_attention_map(matrix: np.ndarray, maps: AttentionMaps, spans: Sequence[tuple[int, int]]) -> np.ndarray:
    """A token x token attention matrix at word level: rows averaged over a word's tokens, columns summed.

    Returns
    -------
    ndarray, shape (n_words, n_words)
    """
    m = token_word_matrix(maps.offsets, spans)
    weight = m.sum(axis=0)
    rows = m / np.where(weight > 0, weight, 1.0)
    return rows.T @ matrix @ m


def _from_maps(adapter: ClassifierAdapter, texts: Sequence[str], method: str) -> list[Explanation]:
    maps = adapter.attention_maps(texts)
    probs = adapter.predict_proba(texts)
    out = []
    for text, mp, p in zip(texts, maps, probs):
        pos = pooled_position(mp.attentions)
        matrix = rollout(mp.attentions) if method == "rollout" else mp.attentions[-1].astype(np.float64).mean(0)
        spans = word_spans(text)
        out.append(make_explanation(adapter, text, spans, merge_to_words(matrix[pos], mp.offsets, spans), p, method,
                                    signed=False))
    return out


@EXPLAINERS.register("attention")
def explain_attention(adapter: ClassifierAdapter, texts: Sequence[str], *,
                      settings: ExplainSettings) -> list[Explanation]:
    """Last-layer attention from the pooled position, mean over heads, summed into words."""
    return _from_maps(adapter, texts, "attention")


@EXPLAINERS.register("rollout")
def explain_rollout(adapter: ClassifierAdapter, texts: Sequence[str], *,
                    settings: ExplainSettings) -> list[Explanation]:
    """Attention rollout (Abnar & Zuidema 2020) from the pooled position, summed into words."""
    return _from_maps(adapter, texts, "rollout")


@EXPLAINERS.register("random")
def explain_random(adapter: ClassifierAdapter, texts: Sequence[str], *,
                   settings: ExplainSettings) -> list[Explanation]:
    """Uniform random word scores (seeded by ``settings.seed`` and the text): the faithfulness floor."""
    probs = adapter.predict_proba(texts)
    out = []
    for text, p in zip(texts, probs):
        digest = hashlib.sha256(f"{settings.seed}\x00{text}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        spans = word_spans(text)
        out.append(make_explanation(adapter, text, spans, rng.random(len(spans)), p, "random", signed=False))
    return out
