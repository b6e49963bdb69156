"""Before/after metrics shared by the retraining capabilities (privacy, federated, mitigation), which may not
import each other, and by the runner's re-audit tables.

They compare models on the same items: each model's accuracy with a Wilson score interval, and the
difference of two models' metric with a paired percentile bootstrap over the items (resampling whole
clusters, e.g. every counterfactual of one original text, where the items are clustered).

A section whose metric is a mean over items returns a table named :data:`ITEMS_TABLE` (columns
``metric``, ``item``, ``value`` and optionally ``cluster``) beside its metrics; the re-audit pairs the
items of the original and of the retrained model by ``item`` and judges "moved" with
:func:`paired_change` and, over the whole table, Holm's step-down adjustment (:func:`holm`), never by
whether two marginal intervals overlap (overlap ignores that the same items were scored twice, so it misses
consistent per-item changes; Schenker and Gentleman 2001).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from raikit.audits.results import Metric
from raikit.audits.stats import PairedChange, holm, paired_change, proportion_ci

__all__ = ["accuracy_metric", "paired_difference", "paired_change", "holm", "metric_items", "ITEMS_TABLE",
           "PairedChange"]

ITEMS_TABLE = "metric_items"


def accuracy_metric(correct: np.ndarray, *, details: Mapping[str, Any] | None = None) -> Metric:
    """Share of correct predictions with its 95% Wilson score interval (:func:`raikit.audits.stats.proportion_ci`)."""
    k, n = int(np.sum(correct)), len(correct)
    return Metric(value=k / n, ci95=proportion_ci(np.asarray(correct, dtype=float)), n=n,
                  details={"ci_method": "Wilson score", **dict(details or {})})


def paired_difference(a: np.ndarray, b: np.ndarray, *, seed: int, what: str,
                      unit: str = "held-out examples") -> Metric:
    """``mean(a) - mean(b)`` over the same examples, with a paired percentile bootstrap interval (2000).

    The interval is :func:`raikit.audits.stats.paired_change`'s, with ``b`` as before and ``a`` as after.
    """
    change = paired_change(np.asarray(b, dtype=float), np.asarray(a, dtype=float), seed=seed)
    return Metric(value=change.change, ci95=change.ci95, n=change.n,
                  details={"what": what, "ci_method": f"paired percentile bootstrap over {unit} (2000)"})


def metric_items(metric: str, values: np.ndarray, *, items: Sequence[str],
                 clusters: Sequence[str] | None = None) -> pd.DataFrame:
    """Rows of an :data:`ITEMS_TABLE` for one metric that is the mean of ``values`` (one per item)."""
    frame = pd.DataFrame({"metric": metric, "item": [str(i) for i in items],
                          "value": np.asarray(values, dtype=float)})
    if clusters is not None:
        frame["cluster"] = [str(c) for c in clusters]
    return frame


def _paired(before: pd.DataFrame | None, after: pd.DataFrame | None, metric: str, seed: int) -> PairedChange | None:
    """The paired change of ``metric`` between two :data:`ITEMS_TABLE` frames (None: no shared items)."""
    if before is None or after is None:
        return None
    a, b = before[before["metric"] == metric], after[after["metric"] == metric]
    if a.empty or b.empty:
        return None
    joined = a.merge(b, on="item", suffixes=("_before", "_after"))
    if joined.empty:
        return None
    clusters = joined["cluster_before"].to_numpy() if "cluster_before" in joined else None
    return paired_change(joined["value_before"].to_numpy(), joined["value_after"].to_numpy(), clusters=clusters,
                         seed=seed)


def before_after_rows(original: Mapping[str, Mapping[str, Any]], variants: Mapping[str, Mapping[str, Any]], *,
                      original_items: pd.DataFrame | None, variant_items: Mapping[str, pd.DataFrame | None],
                      seed: int) -> tuple[list[dict[str, Any]], str]:
    """The re-audit's before/after table: one row per metric, each retrained model's change with a paired CI.

    Parameters
    ----------
    original : mapping
        Metric name -> metric dict (``value``, ``ci95``) of the original model.
    variants : mapping
        Retrained model name -> (metric name -> metric dict), names as in ``original``.
    original_items, variant_items
        :data:`ITEMS_TABLE` frames of the original and of each retrained model (None: the section gives none).
    seed : int
        Seeds the bootstraps.

    Returns
    -------
    rows : list of dict
        ``metric``, each model's value and interval, and per retrained model ``<name> change`` with its paired
        interval, ``<name> p`` (bootstrap) and ``<name> p (Holm)``; ``moved`` is True when some retrained
        model's change is significant after Holm's adjustment over every comparison of the table, False when
        none is, None when no comparison had per-item values (not judged: marginal intervals are not used).
    note : str
        The multiplicity note for the table.
    """
    rows: list[dict[str, Any]] = []
    tests: list[tuple[int, str, float]] = []
    for metric, before in original.items():
        row: dict[str, Any] = {"metric": metric}
        cells = {"original": before, **{v: m.get(metric) or {} for v, m in variants.items()}}
        for name, cell in cells.items():
            ci = cell.get("ci95") or [None, None]
            row.update({name: cell.get("value"), f"{name} low": ci[0], f"{name} high": ci[1]})
        for variant in variants:
            change = _paired(original_items, variant_items.get(variant), metric, seed)
            if change is None:
                row.update({f"{variant} change": None, f"{variant} change low": None,
                            f"{variant} change high": None, f"{variant} p": None, "paired n": row.get("paired n")})
                continue
            row.update({f"{variant} change": change.change, f"{variant} change low": change.ci95[0],
                        f"{variant} change high": change.ci95[1], f"{variant} p": change.p_value,
                        "paired n": change.n})
            tests.append((len(rows), variant, change.p_value))
        row["moved"] = None
        rows.append(row)
    adjusted = holm([p for _, _, p in tests]) if tests else []
    for (index, variant, _), p_holm in zip(tests, adjusted):
        row = rows[index]
        row[f"{variant} p (Holm)"] = p_holm
        row["moved"] = bool(row["moved"]) or p_holm < 0.05
    judged = len(tests)
    note = (f"'moved': a paired bootstrap (2000 resamples of the same items, clustered where the metric is) of each "
            f"retrained model's change, significant at 5% after Holm's adjustment over the {judged} comparison(s) "
            "of this table (family-wise error 5%); each change's own 95% interval is unadjusted. Rows without "
            "per-item values are not judged (moved is empty), since overlapping marginal intervals say nothing "
            "about a paired change.") if judged else (
        "No metric of this table has per-item values, so no change is judged.")
    return rows, note
