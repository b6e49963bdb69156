"""Intervals that are no evidence are flagged where the report shows them (issue 14 item 1)."""
from __future__ import annotations

from raikit.reports import render_html


def test_metric_tables_flag_an_interval_outside_its_value_and_a_degenerate_one(results):
    results["metrics"]["fairness.groups.demographic_parity_difference"] = {"value": 0.4, "ci95": [0.0, 0.2], "n": 137}
    results["metrics"]["fairness.groups.accuracy.by_group.other"] = {"value": 1.0, "ci95": [1.0, 1.0], "n": 5}
    html = render_html(results)
    section = html.split('id="sec-fairness.groups"')[1].split("</article>")[0]
    assert "CI is no evidence: the value 0.4 lies outside its own 95% CI [0, 0.2]" in section
    assert "CI is no evidence: the 95% CI [1, 1] has zero width at n = 5 (below 30)" in section
    assert section.count("CI is no evidence") == 2  # the fixture's sound intervals are not flagged
