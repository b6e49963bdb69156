"""LIME (Ribeiro et al. 2016) with lime's ``LimeTextExplainer``, on raikit's word segmentation.

LIME removes random subsets of words, asks the classifier for every class's probability and fits a
weighted linear model per class. raikit passes its own word segmentation (``split_expression`` is
:func:`~raikit.explain._words.word_spans`) with ``bow=False``, so LIME's feature ``i`` is exactly
raikit's word ``i`` (same spans as SHAP and attention). A removed word leaves a word boundary, as in
the faithfulness deletions: lime replaces it by a space (``mask_string=" "``) and raikit collapses the
whitespace run around it to one space before the model sees the text (so "3.5" minus "." is "3 5",
never "35"; whitespace away from removed words is left as it is).

The perturbed texts of a group of texts go to the model in shared batches through
:func:`~raikit.explain._batching.run_in_lockstep`; each text gets its own sampler seeded with
``seed + index``, so results do not depend on the grouping.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import regex

from raikit.audits.models import ClassifierAdapter
from raikit.audits.progress import progress_bar
from raikit.explain._base import EXPLAINERS, Explanation, ExplainSettings, make_explanation
from raikit.explain._batching import Predict, run_in_lockstep
from raikit.explain._words import word_spans

__all__ = ["explain_lime"]


_GAP = "\x00"
_GAPS = regex.compile(r"[\s\x00]*\x00[\s\x00]*")


def _close_gaps(text: str) -> str:
    """A removed word (marked by lime's mask string) becomes one space in its whitespace run; ends stripped."""
    return _GAPS.sub(" ", text).strip() if _GAP in text else text


def _split(text: str) -> list[str]:
    return [text[s:e] for s, e in word_spans(text)]


def _lime_one(adapter: ClassifierAdapter, text: str, seed: int, predict: Predict, num_samples: int) -> np.ndarray:
    from lime.lime_text import LimeTextExplainer

    spans = word_spans(text)
    n_classes = len(adapter.labels)
    explainer = LimeTextExplainer(class_names=list(adapter.labels), split_expression=_split, bow=False,
                                  mask_string=_GAP, random_state=seed)
    result = explainer.explain_instance(text, lambda xs: np.asarray(predict([_close_gaps(x) for x in xs])),
                                        labels=tuple(range(n_classes)), num_features=len(spans),
                                        num_samples=num_samples)
    if result.domain_mapper.indexed_string.num_words() != len(spans):
        raise RuntimeError("LIME's words do not match raikit's word segmentation")
    scores = np.zeros((len(spans), n_classes))
    for label in range(n_classes):
        for feature, weight in result.local_exp[label]:
            scores[feature, label] = weight
    return scores


@EXPLAINERS.register("lime")
def explain_lime(adapter: ClassifierAdapter, texts: Sequence[str], *,
                 settings: ExplainSettings) -> list[Explanation]:
    """LIME word weights per class (coefficients of the local linear model); no base value."""
    items = list(enumerate(texts))
    bar = progress_bar(total=len(items), desc=f"{adapter.name}: LIME", unit="text",
                       disable=not settings.progress)
    try:
        scores = run_in_lockstep(
            items, lambda item, fn: _lime_one(adapter, item[1], settings.seed + item[0], fn,
                                              settings.lime_num_samples),
            adapter.predict_proba, group_size=settings.group_size, on_done=lambda: bar.update(1))
    finally:
        bar.close()
    probs = adapter.predict_proba(texts)
    return [make_explanation(adapter, text, word_spans(text), s, p, "lime")
            for text, s, p in zip(texts, scores, probs)]
