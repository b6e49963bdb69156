"""Report rendering: HTML content and escaping, any subset of results, Markdown, JUnit, model card, files."""
from __future__ import annotations

import copy
import json
import os
import re
import xml.etree.ElementTree as ET

import jsonschema
import pytest
from _report_results import XSS, build_results, with_privacy_and_federated

from raikit.audits.errors import RaikitInputError
from raikit.audits.gates import Gate, evaluate_gates
from raikit.reports._html import _SCRIPT
from raikit.reports._text import render_model_cards
from raikit.reports import (
    CSP, load_results, render_html, render_junit, render_markdown, results_schema, write_reports,
)

EMPTY = {"schema_version": "1.0", "run": {}, "metrics": {}}


def test_schema_accepts_realistic_results_and_rejects_broken_ones(results):
    schema = results_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    validator.validate(results)
    validator.validate(with_privacy_and_federated(results))
    validator.validate(EMPTY)
    bad = copy.deepcopy(results)
    bad["metrics"]["fairness.crows_pairs.metric_score"]["ci95"] = [1.0]
    bad["gates"][0]["use"] = "mean"
    del bad["schema_version"]
    messages = sorted(e.message for e in validator.iter_errors(bad))
    assert len(messages) == 3 and any("schema_version" in m for m in messages)


def test_html_is_self_contained_and_has_every_section(results):
    html = render_html(results)
    assert f'<meta http-equiv="Content-Security-Policy" content="{CSP.replace(chr(39), "&#39;")}">' in html
    assert "default-src &#39;none&#39;" in html
    assert not re.search(r"(src|href)=\"(https?:)?//", html)  # nothing to fetch
    # the only script is the report's own, allowed by its hash in the CSP
    assert "<script" not in html.replace(f"<script>{_SCRIPT}</script>", "", 1) and "<link" not in html
    for heading in ("Verdict", "Run provenance", "Sign-off", "Fairness", "Explanations", "Compliance mapping",
                    "Limitations"):
        assert f">{heading}</h" in html
    # verdict: the failing gate and its numbers
    assert re.search(r'class="fail"><td data-label="gate"><code class="name">fairness\.<wbr>counterfactual\.<wbr>'
                     r"flip_rate</code>.*?FAIL.*?0\.06.*?\[0\.03, 0\.09\].*?CI bound &lt;= 0\.05", html, re.S)
    # provenance: versions, hashes, seed, dates, reviewers
    for text in ("cd" * 32, "ab" * 32, "2026-01-01T12:05:00+00:00", "transformers", "A. Reviewer"):
        assert text in html
    # fairness: forest plots as inline SVG, worst examples
    assert html.count("<svg") == 3
    assert "value and 95% CI per group" in html and "Worst examples" in html
    # explanations: a heat span per word, strongest word fully coloured, faithfulness advice
    assert ('<span class="w" style="background-color: rgba(220,38,38,0.800)" title="0.45" data-score="0.45">'
            'Terrible</span>') in html
    assert 'title="-0.05" data-score="-0.05">come</span>' in html and "rgba(37,99,235," in html
    assert "Trust shap: it has the highest comprehensiveness and the lowest sufficiency" in html
    assert "attention rollout" in html
    # privacy and federated were not run: listed as limitations, no section
    assert "Privacy: not run" in html and "Federated learning: not run" in html
    assert 'id="cap-privacy"' not in html


def test_untrusted_text_is_escaped(results):
    html = render_html(results).replace(f"<script>{_SCRIPT}</script>", "", 1)  # the report's own script
    assert "<script>" not in html and "<img" not in html and "<b>demo" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt; &#34;quoted&#34; &#39;single&#39; &amp; &lt;/td&gt;" in html
    assert "<title>Audit of &lt;b&gt;demo&lt;/b&gt; models</title>" in html
    # inside the JSON <details> block too
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html.split("Other details (JSON)")[1]


def test_privacy_and_federated_sections_when_present(results):
    html = render_html(with_privacy_and_federated(results))
    assert 'id="cap-privacy"' in html and 'id="cap-federated"' in html
    assert "membership-inference attack ROC" in html and "<dt>accountant</dt><dd>prv</dd>" in html
    assert "<dt>delta</dt><dd>1e-05</dd>" in html and "per round and client" in html
    assert "Privacy: not run" not in html and "Federated learning: not run" not in html
    assert html.count("<svg") == 5


@pytest.mark.parametrize("keep", ["fairness", "explain", "nothing"])
def test_any_subset_renders(results, keep):
    sub = copy.deepcopy(results)
    sub["metrics"] = {k: v for k, v in sub["metrics"].items() if k.startswith(keep)}
    sub["sections"] = {k: v for k, v in sub["sections"].items() if k.startswith(keep)}
    sub["gates"] = [g for g in sub["gates"] if g["metric"].startswith(keep)]
    sub["limitations"] = []
    for text in (render_html(sub), render_markdown(sub), render_junit(sub)):
        assert text
    cards = render_model_cards(sub)
    assert all(cards.values()) and bool(cards) == (keep != "nothing")
    html = render_html(sub)
    assert ("Fairness: not run" in html) == (keep != "fairness")
    assert ("Explanations: not run" in html) == (keep != "explain")
    if keep == "nothing":
        assert "NOTHING MEASURED" in html and "Nothing was measured" in html and "No finding" not in html  # not a clean bill
    for minimal in (EMPTY, {"schema_version": "1.0", "metrics": {"x.y": {"value": None}}}):
        assert ">not run</span>" in render_html(minimal)
        ET.fromstring(render_junit(minimal))


def test_markdown_summary(results):
    md = render_markdown(results)
    assert md.startswith("## Audit of \\<b\\>demo\\</b\\> models\n\n### Findings\n")
    assert "### Verdict: ❌ FAIL" in md
    assert "**Gates: 2 of 3 passed.**" in md
    assert "| `fairness.counterfactual.flip_rate` | **FAIL** | 0.06 | [0.03, 0.09] | CI bound \\<= 0.05 |" in md
    assert "| `fairness.crows_pairs.metric_score` | 58.5 | [54.1, 62.9] | 200 |" in md
    assert len(md.splitlines()) < 90


def test_junit_is_valid_and_follows_gates(results):
    root = ET.fromstring(render_junit(results))
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [g["metric"] for g in results["gates"]]
    assert suite.get("tests") == "3" and suite.get("failures") == "1" and suite.get("errors") == "0"
    failures = [c for c in cases if c.find("failure") is not None]
    assert [c.get("name") for c in failures] == ["fairness.counterfactual.flip_rate"]
    assert "0.09 > max 0.05" in failures[0].find("failure").get("message")
    # gates re-evaluated with a looser threshold: the same metric now passes and the XML follows
    outcomes = evaluate_gates([Gate("fairness.counterfactual.flip_rate", max=0.10, use="ci")], results["metrics"])
    relaxed = dict(results, gates=[o.to_dict() for o in outcomes])
    root = ET.fromstring(render_junit(relaxed))
    assert root.get("failures") == "0" and len(root.iter("testcase").__next__().findall("failure")) == 0


def test_write_reports_atomically(results, tmp_path):
    files = write_reports(results, tmp_path)
    assert [f.relative_to(tmp_path).as_posix() for f in files] == [
        "report.html", "summary.md", "junit.xml", "model_cards/smollm/README.md", "model_cards/sentiment/README.md"]
    assert sorted(os.listdir(tmp_path)) == ["junit.xml", "model_cards", "report.html", "summary.md"]
    assert files[0].read_text(encoding="utf-8") == render_html(results)
    only = write_reports(results, tmp_path / "x", formats=["junit"])
    assert [f.name for f in only] == ["junit.xml"]
    with pytest.raises(RaikitInputError, match="unknown report format 'pdf'"):
        write_reports(results, tmp_path / "y", formats=["html", "pdf"])
    assert not (tmp_path / "y").exists()


def test_load_results(results, tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    assert load_results(path) == results
    cases = {
        "missing.json": None,
        "bad.json": "{not json",
        "list.json": "[1, 2]",
        "old.json": json.dumps({**results, "schema_version": "0.3"}),
        "nover.json": json.dumps({"metrics": {}}),
        "metric.json": json.dumps({**results, "metrics": {"a.b": {"value": "high"}}}),
        "nan.json": '{"schema_version": "1.0", "metrics": {"a": {"value": NaN}}}',
    }
    for name, text in cases.items():
        file = tmp_path / name
        if text is not None:
            file.write_text(text)
        with pytest.raises(RaikitInputError) as info:
            load_results(file)
        message = str(info.value)
        assert message.startswith(str(file)) and "\n" not in message, message
    assert "not supported" in _error(tmp_path / "old.json") and "'a.b'" in _error(tmp_path / "metric.json")


def _error(path):
    with pytest.raises(RaikitInputError) as info:
        load_results(path)
    return str(info.value)


def test_xss_constant_is_what_the_fixture_uses():
    """Guard for the escaping tests: the payload really is in the fixture's texts and examples."""
    results = build_results()
    assert results["sections"]["explain"]["details"]["texts"][1]["text"] == XSS
    assert results["sections"]["fairness.counterfactual"]["details"]["flipped"][1]["original"] == XSS


def test_diff_of_a_run_with_itself_moves_nothing():
    from raikit.reports import diff_results

    results = build_results()
    results["metrics"]["odd.metric"] = {"value": 0.1, "ci95": [0.4, 1.0], "n": 10, "details": {}}
    diff = diff_results(results, results)
    assert not diff.moved and not diff.regressions
