"""Word segmentation shared by every explainer, and merging of subword scores into words.

The rule (one for all explainers, so that their attributions are comparable word by word):

* a **word** is a maximal run of Unicode word characters (letters, marks, digits, ``_``; the
  ``regex`` module's ``\\w``), e.g. ``café``, ``naïve``, ``2024``, ``Müller``;
* every other non-space grapheme cluster is a word on its own: punctuation marks, symbols and
  emoji (an emoji with a skin-tone modifier or a ZWJ sequence is one cluster, hence one word);
* whitespace separates words and belongs to none.

So ``"don't stop!"`` has the words ``don``, ``'``, ``t``, ``stop``, ``!``, and ``"3.5 👍🏽"`` has
``3``, ``.``, ``5``, ``👍🏽``.  Each word is a character span ``(start, end)`` of the original text,
so ``text[start:end]`` is the word exactly.

Subword tokens (WordPiece ``##``, byte-level BPE ``Ġ``, SentencePiece ``▁``) are mapped to words
through the fast tokenizer's ``offset_mapping``, never through the token strings, so the markers
do not matter: a token's score goes to the words its character span overlaps, split in proportion
to the number of overlapping characters (a token covering ``"hello,"`` gives 5/6 to ``hello`` and
1/6 to ``,``). Special tokens (empty spans) and tokens that cover only whitespace go to no word.
A word's score is the sum of its share of the scores of its tokens.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import regex

__all__ = ["word_spans", "token_word_matrix", "merge_to_words"]

_WORD = regex.compile(r"\w+|(?!\s)\X")


def word_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the words of ``text`` (see the module docstring for the rule).

    Examples
    --------
    >>> [("don't stop!")[s:e] for s, e in word_spans("don't stop!")]
    ['don', "'", 't', 'stop', '!']
    """
    return [m.span() for m in _WORD.finditer(text)]


def token_word_matrix(offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]) -> np.ndarray:
    """Share of each token that goes to each word.

    Parameters
    ----------
    offsets : sequence of (int, int)
        Character span of each token (``offset_mapping``); ``(0, 0)`` for special tokens.
    spans : sequence of (int, int)
        Word spans from :func:`word_spans`.

    Returns
    -------
    ndarray, shape (n_tokens, n_words)
        Row ``t`` holds the fraction of token ``t``'s word characters inside each word; it sums to 1
        for a token that overlaps any word and to 0 otherwise.
    """
    matrix = np.zeros((len(offsets), len(spans)), dtype=np.float64)
    if not spans:
        return matrix
    starts = np.array([s for s, _ in spans])
    ends = np.array([e for _, e in spans])
    for t, (a, b) in enumerate(offsets):
        if b <= a:
            continue
        overlap = np.clip(np.minimum(ends, b) - np.maximum(starts, a), 0, None).astype(np.float64)
        total = overlap.sum()
        if total > 0:
            matrix[t] = overlap / total
    return matrix


def merge_to_words(values: np.ndarray, offsets: Sequence[tuple[int, int]],
                   spans: Sequence[tuple[int, int]]) -> np.ndarray:
    """Sum token scores into word scores.

    Parameters
    ----------
    values : ndarray, shape (n_tokens,) or (n_tokens, n_classes)
    offsets : sequence of (int, int)
        Token character spans.
    spans : sequence of (int, int)
        Word character spans.

    Returns
    -------
    ndarray, shape (n_words,) or (n_words, n_classes)
    """
    values = np.asarray(values, dtype=np.float64)
    if values.shape[0] != len(offsets):
        raise ValueError(f"{values.shape[0]} token scores for {len(offsets)} token offsets")
    return token_word_matrix(offsets, spans).T @ values
