"""The re-audit's before/after "moved": a paired bootstrap on the same items with Holm's adjustment, never
interval overlap (issue 21 item 8). Known answers on hand-built items."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from raikit.audits.retrain_metrics import before_after_rows, holm, metric_items, paired_change


def _wilson(values: np.ndarray) -> list[float]:
    from scipy.stats import binomtest

    ci = binomtest(int(values.sum()), len(values)).proportion_ci(method="wilson")
    return [float(ci.low), float(ci.high)]


def _overlap(a: list[float], b: list[float]) -> bool:
    """Today's (pre-fix) rule: moved only when the two 95% intervals do not overlap."""
    return not (a[1] < b[0] or b[1] < a[0])


def test_a_consistent_paired_drop_is_moved_though_the_intervals_overlap():
    # 100 texts, 20 flip before; the retrained model un-flips 9 of them and flips no other: a sure, paired drop
    before = np.zeros(100)
    before[:20] = 1
    after = before.copy()
    after[:9] = 0
    items = [f"t{i}" for i in range(100)]
    original = {"flip_rate": {"value": before.mean(), "ci95": _wilson(before)}}
    variant = {"cda": {"flip_rate": {"value": after.mean(), "ci95": _wilson(after)}}}
    assert _overlap(original["flip_rate"]["ci95"], variant["cda"]["flip_rate"]["ci95"])  # overlap: "not moved"
    rows, note = before_after_rows(original, variant, original_items=metric_items("flip_rate", before, items=items),
                                   variant_items={"cda": metric_items("flip_rate", after, items=items)}, seed=0)
    [row] = rows
    assert row["moved"] is True
    assert row["cda change"] == pytest.approx(-0.09)
    assert row["cda change high"] < 0 and row["paired n"] == 100
    assert "Holm" in note and "1 comparison" in note


def test_items_are_paired_by_key_not_by_position_and_clusters_resample_together():
    before = metric_items("m", np.array([1, 0, 1, 0.0]), items=["a", "b", "c", "d"], clusters=["x", "x", "y", "y"])
    after = metric_items("m", np.array([0, 1, 0, 1.0]), items=["b", "a", "d", "c"])  # same values per key
    rows, _ = before_after_rows({"m": {"value": 0.5}}, {"v": {"m": {"value": 0.5}}}, original_items=before,
                                variant_items={"v": after}, seed=0)
    assert rows[0]["v change"] == 0 and rows[0]["v p"] == 1.0 and rows[0]["moved"] is False
    change = paired_change(np.zeros(6), np.r_[np.ones(3), np.zeros(3)], clusters=np.array(list("aaabbb")), seed=0)
    assert change.clusters == 2 and change.ci95 == (0.0, 1.0)  # two clusters: all of one, or none, moved


def test_no_item_values_means_not_judged_and_holm_controls_the_table():
    rows, note = before_after_rows({"gap": {"value": 0.1, "ci95": [0.0, 0.2]}},
                                   {"dp": {"gap": {"value": 0.9, "ci95": [0.8, 1.0]}}},
                                   original_items=None, variant_items={"dp": None}, seed=0)
    assert rows[0]["moved"] is None  # intervals far apart, yet no paired values: no claim either way
    assert "No metric" in note
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    # twenty noise comparisons, each with a p-value near 0.03: unadjusted some would "move", Holm none
    assert all(p >= 0.05 for p in holm([0.03] * 20))


def test_counterfactual_and_groups_sections_give_items_that_reproduce_their_metrics():
    from raikit.fairness.classifier import ITEMS_TABLE, group_metrics

    res = group_metrics([1, 0, 1, 0, 1, 1], [1, 1, 0, 0, 1, 1], ["a", "a", "a", "b", "b", "b"]).to_section()
    items: pd.DataFrame = res.tables[ITEMS_TABLE]
    for name, metric in res.metrics.items():
        rows = items[items["metric"] == name]
        if len(rows):
            assert rows["value"].mean() == pytest.approx(metric.value), name
    assert set(items["metric"]) >= {"accuracy.overall", "accuracy.by_group.a", "false_positive_rate.by_group.b"}
