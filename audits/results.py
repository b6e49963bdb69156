"""Plain result types shared by every capability and the runner.

A capability returns a :class:`SectionResult`: headline metrics (each a :class:`Metric` with a 95%
confidence interval and the number of items behind it), per-item tables (pandas DataFrames, saved
as CSV beside ``results.json``), JSON-able details for the report, and notes on limitations.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

__all__ = ["Metric", "SectionResult", "RetrainedModel", "SCHEMA_VERSION"]

SCHEMA_VERSION = "1.0"


def _clean(value: Any) -> Any:
    """Make numpy scalars, tuples and NaN JSON-friendly (NaN becomes None)."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass(frozen=True)
class Metric:
    """One headline number.

    Parameters
    ----------
    value : float
        The point estimate.
    ci95 : tuple of float or None
        The 95% confidence interval ``(low, high)``, or None where none is defined.
    n : int
        The number of items (pairs, templates, examples) behind the number.
    details : mapping
        Extra JSON-able facts (p-value, method, citation, ...).
    """

    value: float
    ci95: tuple[float, float] | None = None
    n: int = 0
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The ``{value, ci95, n, details}`` form stored in ``results.json``."""
        return {
            "value": _clean(float(self.value)),
            "ci95": None if self.ci95 is None else [_clean(float(x)) for x in self.ci95],
            "n": int(self.n),
            "details": _clean(dict(self.details)),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Metric":
        """Inverse of :meth:`to_dict`."""
        ci = data.get("ci95")
        value = data.get("value")
        return cls(
            value=float("nan") if value is None else float(value),
            ci95=None if ci is None else (float(ci[0]), float(ci[1])),
            n=int(data.get("n", 0)),
            details=dict(data.get("details") or {}),
        )


@dataclass(frozen=True)
class RetrainedModel:
    """A model a capability trained (privacy, federated), for the runner to save and re-audit.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        The trained model, a plain transformers model on the CPU.
    tokenizer
        Its tokenizer.
    description : mapping
        JSON-able facts about how it was trained (shown with the model in results and reports).
    """

    model: Any
    tokenizer: Any
    description: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SectionResult:
    """What one audit section (a probe, an explainer run, ...) produces.

    Parameters
    ----------
    metrics : mapping of str to Metric
        Headline numbers under full dotted names, e.g. ``fairness.crows_pairs.metric_score``.
    tables : mapping of str to DataFrame
        Per-item scores; the runner saves each as ``<section>.<name>.csv``.
    details : mapping
        JSON-able material for the report (examples, per-text explanations, ...).
    notes : tuple of str
        Limitations the reader must know (subsamples, skipped items).
    models : mapping of str to RetrainedModel
        Models the section trained (``{"dp": ..., "baseline": ...}``). Capabilities write no files:
        the runner saves each as a model folder in the run and re-runs the audit's classifier
        sections on it.
    """

    metrics: Mapping[str, Metric] = field(default_factory=dict)
    tables: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    models: Mapping[str, RetrainedModel] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (tables excluded: they are written as CSV files)."""
        return {
            "metrics": {k: m.to_dict() for k, m in self.metrics.items()},
            "details": _clean(dict(self.details)),
            "notes": list(self.notes),
        }
