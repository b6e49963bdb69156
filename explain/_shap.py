"""SHAP (Lundberg & Lee 2017): the Partition explainer with shap's Text masker.

shap's Partition explainer computes Owen values over a hierarchical clustering of the tokens
(shap's Text masker masks a token by replacing it with the tokenizer's mask token, or ``...``);
the model output is the classifier's full probability vector, so every class gets attributions and
``base_value + sum(attributions) == probability`` holds for each class (efficiency).

Two departures from plain shap usage, both for exactness:

* the text is explained as it is: shap's Text masker rebuilds every masked string and then collapses
  all whitespace (``re.sub(r"[\\s]+", " ", out).strip()``), so with byte-level BPE, where newlines and
  repeated spaces are tokens, ``base + sum`` equalled the model output on the *normalised* text. raikit's
  masker keeps each token's own characters and whitespace, puts the mask token in place of a masked
  token's characters, and collapses nothing, so the unmasked string is the text itself;
* shap breaks ties between equally promising cluster nodes with the global ``np.random.randn()``;
  raikit gives each explained text its own generator, seeded from ``settings.seed`` and the text's
  position, so the same seed gives the same attributions (and worker threads do not share one stream).

Speed: the model function is the adapter's ``predict_proba`` (length-sorted batches, cache of
repeated texts; the all-masked input, for one, recurs across texts), and the texts of a group run
side by side with their model calls merged into shared batches
(:func:`~raikit.explain._batching.run_in_lockstep`). shap's own algorithm and batch size are
unchanged, so at the same ``max_evals`` the attributions equal those of plain ``shap`` usage.
"""
from __future__ import annotations

from collections.abc import Sequence
import threading
import warnings
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from raikit.audits.models import ClassifierAdapter
from raikit.audits.progress import progress_bar
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
    """shap's Text masker with :func:`_segments` as its token segmentation and no whitespace rewriting."""

    class _TextMasker(shap.maskers.Text):  # type: ignore[name-defined,misc]
        def token_segments(self, s: str) -> tuple[list[str], list[int]]:
            enc = self.tokenizer(s, return_offsets_mapping=True)
            offsets = [(0, 0) if o is None else (int(o[0]), int(o[1])) for o in enc["offset_mapping"]]
            return _segments(s, offsets), list(enc["input_ids"])

        def __call__(self, mask: Any, s: str) -> tuple[np.ndarray]:
            if self.output_type != "string":
                return super().__call__(mask, s)
            mask = self._standardize_mask(mask, s)
            self._update_s_cache(s)
            if self.keep_prefix > 0:
                mask = mask.copy()
                mask[: self.keep_prefix] = True
            if self.keep_suffix > 0:
                mask = mask.copy()
                mask[-self.keep_suffix:] = True
            sep = getattr(self.tokenizer, "sep_token", None)
            parts: list[str] = []
            previous_masked = False
            for keep, segment in zip(mask, self._segments_s):
                if keep or segment == sep or not segment.strip():
                    parts.append(segment)
                    previous_masked = previous_masked and not segment.strip() and not keep
                    continue
                lead = segment[:len(segment) - len(segment.lstrip())]
                tail = segment[len(segment.rstrip()):]
                if self.collapse_mask_token and previous_masked:
                    parts[-1] = parts[-1].rstrip() + tail  # one mask token for a run of masked tokens
                else:
                    parts.append(lead + self.mask_token + tail)
                previous_masked = True
            return (np.array(["".join(parts)]),)

    return _TextMasker(tokenizer)


class _ThreadRandom:
    """Stands in for ``numpy`` inside shap's partition module: ``np.random`` is this thread's generator.

    shap calls ``np.random.randn()`` only to break ties in its priority queue; every other attribute is
    numpy's own.
    """

    _local = threading.local()

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)

    @property
    def random(self) -> Any:
        return getattr(self._local, "rng", None) or np.random


_THREAD_RANDOM = _ThreadRandom()


def _seed_shap_ties(shap: ModuleType, seed: int) -> None:
    """Route shap's tie-breaking draws in this thread to a generator seeded with ``seed``."""
    module = shap.explainers._partition  # noqa: SLF001 - the only module that draws from np.random
    if module.np is not _THREAD_RANDOM:
        module.np = _THREAD_RANDOM
    _ThreadRandom._local.rng = np.random.RandomState(seed % 2**32)


def _explain_one(adapter: ClassifierAdapter, text: str, predict: Predict, *, max_evals: int,
                 batch_size: int, seed: int = 0) -> TokenShap:
    shap = _import_shap()
    _seed_shap_ties(shap, seed)
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
                      batch_size: int = 5, group_size: int = 16, progress: bool = False,
                      seed: int = 0) -> list[TokenShap]:
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
    seed : int
        Text ``i`` breaks shap's ties with a generator seeded ``seed + i``.

    Returns
    -------
    list of TokenShap
    """
    items = list(enumerate(check_inputs(adapter, texts)))
    _import_shap()  # once, in this thread, before the worker threads start
    bar = progress_bar(total=len(items), desc=f"{adapter.name}: SHAP", unit="text", disable=not progress)
    try:
        return run_in_lockstep(
            items, lambda item, fn: _explain_one(adapter, item[1], fn, max_evals=max_evals, batch_size=batch_size,
                                                 seed=seed + item[0]),
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
                                     progress=settings.progress, seed=settings.seed)
    probs = adapter.predict_proba(texts)
    out = []
    for text, tv, p in zip(texts, token_values, probs):
        spans = word_spans(text)
        orphan = token_word_matrix(tv.offsets, spans).sum(axis=1) == 0
        base = tv.base_values + tv.values[orphan].sum(axis=0)
        out.append(make_explanation(adapter, text, spans, merge_to_words(tv.values, tv.offsets, spans), p, "shap",
                                    base_values=base))
    return out
