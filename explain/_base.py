"""The shared protocol: one result type, one settings object, one registry of explainers.

Every explainer is a function ``explainer(adapter, texts, *, settings) -> list[Explanation]``
registered by name in :data:`EXPLAINERS`; :func:`explain` checks the inputs and dispatches.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from raikit.audits.errors import RaikitInputError
from raikit.audits.models import ClassifierAdapter
from raikit.audits.registry import Registry

__all__ = ["Explanation", "ExplainSettings", "Explainer", "EXPLAINERS", "explain", "check_inputs"]

@dataclass(frozen=True)
class Explanation:
    """Word-level attributions of one text by one method.

    Attributes
    ----------
    text : str
        The text explained, unchanged.
    words : tuple of str
        The words (see :mod:`raikit.explain._words` for the segmentation rule);
        ``words[i] == text[spans[i][0]:spans[i][1]]``.
    spans : tuple of (int, int)
        Character span of each word in ``text``.
    attributions : ndarray, shape (n_words, n_classes)
        Score of each word for each class (higher: pushes that class up). Class-agnostic methods
        (attention, rollout, random) repeat the same column for every class.
    predicted : int
        Index of the most probable class of the full text.
    probabilities : ndarray, shape (n_classes,)
        The model's class probabilities for the full text.
    labels : tuple of str
        Class names.
    method : str
        Registry name of the explainer.
    base_values : ndarray or None, shape (n_classes,)
        The expected output that attributions are measured from (SHAP: output with every token
        masked); ``None`` where the method defines none.
    signed : bool
        Whether scores can be negative (SHAP, LIME) or are never negative (attention, rollout, random);
        agreement compares magnitudes unless both explanations are signed.
    """

    text: str
    words: tuple[str, ...]
    spans: tuple[tuple[int, int], ...]
    attributions: np.ndarray = field(repr=False)
    predicted: int
    probabilities: np.ndarray = field(repr=False)
    labels: tuple[str, ...]
    method: str
    base_values: np.ndarray | None = field(default=None, repr=False)
    signed: bool = True

    @property
    def scores(self) -> np.ndarray:
        """Attributions for the predicted class, shape (n_words,)."""
        return self.attributions[:, self.predicted]

    def ranking(self) -> np.ndarray:
        """Word indices from most to least important for the predicted class (ties: earlier first)."""
        return np.lexsort((np.arange(len(self.words)), -self.scores))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (attributions for the predicted class only)."""
        out: dict[str, Any] = {
            "method": self.method, "words": list(self.words), "spans": [list(s) for s in self.spans],
            "predicted": self.labels[self.predicted], "scores": [round(float(v), 6) for v in self.scores],
        }
        if self.base_values is not None:
            out["base_value"] = float(self.base_values[self.predicted])
        return out

@dataclass(frozen=True)
class ExplainSettings:
    """Budgets and knobs shared by the explainers.

    Parameters
    ----------
    shap_max_evals : int
        Model evaluations per text for the SHAP Partition explainer (shap's ``max_evals``).
    shap_batch_size : int
        Cluster nodes that SHAP expands per step (shap's ``batch_size``; 5 is shap's default for text).
    lime_num_samples : int
        Perturbed texts per text for LIME.
    group_size : int
        Texts explained side by side; their model calls are merged into shared batches.
    seed : int
        Seed for LIME's sampling and the random baseline.
    progress : bool
        Show a progress bar over texts.
    """

    shap_max_evals: int = 500
    shap_batch_size: int = 5
    lime_num_samples: int = 500
    group_size: int = 16
    seed: int = 0
    progress: bool = False

class Explainer(Protocol):
    """What every registered explainer is."""

    def __call__(self, adapter: ClassifierAdapter, texts: Sequence[str], *,
                 settings: ExplainSettings) -> list[Explanation]: ...

EXPLAINERS: Registry[Explainer] = Registry("explainer")

def check_inputs(adapter: Any, texts: Sequence[str], *, where: str | None = None) -> list[str]:
    """Validate a classifier adapter and texts; return the texts as a list.

    Raises
    ------
    RaikitInputError
        If the adapter is not a :class:`~raikit.audits.models.ClassifierAdapter` or a text is empty.
    """
    if not isinstance(adapter, ClassifierAdapter):
        what = getattr(adapter, "name", type(adapter).__name__)
        kind = getattr(adapter, "kind", "raw model, not an adapter")
        raise RaikitInputError(f"model {what!r} ({kind}) has no classification head; explanations need a "
                               "sequence classifier (ClassifierAdapter)", where=where)
    if isinstance(texts, str):
        raise RaikitInputError("texts must be a list of strings, not one string", where=where)
    out = []
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise RaikitInputError(f"text {i} is empty ({text!r}); every text needs at least one word", where=where)
        out.append(text)
    return out

def make_explanation(adapter: ClassifierAdapter, text: str, spans: Sequence[tuple[int, int]],
                     word_scores: np.ndarray, probabilities: np.ndarray, method: str,
                     base_values: np.ndarray | None = None, signed: bool = True) -> Explanation:
    """Build an :class:`Explanation`, broadcasting a class-agnostic score vector to every class."""
    scores = np.asarray(word_scores, dtype=np.float64)
    if scores.ndim == 1:
        scores = np.repeat(scores[:, None], len(adapter.labels), axis=1)
    probs = np.asarray(probabilities, dtype=np.float64)
    return Explanation(text=text, words=tuple(text[s:e] for s, e in spans), spans=tuple(map(tuple, spans)),
                       attributions=scores, predicted=int(probs.argmax()), probabilities=probs,
                       labels=tuple(adapter.labels), method=method,
                       base_values=None if base_values is None else np.asarray(base_values, dtype=np.float64),
                       signed=signed)

def explain(adapter: ClassifierAdapter, texts: Sequence[str], *, method: str = "shap",
            settings: ExplainSettings | None = None) -> list[Explanation]:
    """Explain each text's prediction with one registered method.

    Parameters
    ----------
    adapter : ClassifierAdapter
        The classifier (``load_model(...)`` or ``wrap_model(...)`` of a sequence classifier).
    texts : sequence of str
        Non-empty texts.
    method : str
        A name in :data:`EXPLAINERS`: ``shap``, ``lime``, ``attention``, ``rollout``, ``random``.
    settings : ExplainSettings, optional
        Budgets; defaults to ``ExplainSettings()``.

    Returns
    -------
    list of Explanation
        One per text, in order.

    Raises
    ------
    RaikitInputError
        For an unknown method, a model without a classification head or an empty text.
    """
    fn = EXPLAINERS.get(method)
    items = check_inputs(adapter, texts)
    return fn(adapter, items, settings=settings or ExplainSettings())
