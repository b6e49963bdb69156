"""The pytest plugin, run with pytester: a passing gate, a changed threshold, a failing gate."""
from __future__ import annotations

import json

RESULTS = {
    "schema_version": "1.0",
    "run": {"id": "r1", "raikit_version": "0.1.0", "packages": {}, "config_path": "a.toml",
            "config_sha256": "0" * 64, "seed": 0, "started": "2026-01-01T00:00:00+00:00",
            "finished": "2026-01-01T00:01:00+00:00", "device": "cpu", "offline": True, "section_seconds": {}},
    "config": {}, "models": {}, "sections": {},
    "metrics": {"fairness.crows_pairs.metric_score": {"value": 57.0, "ci95": [52.0, 62.5], "n": 300,
                                                      "details": {}}},
    "gates": [], "limitations": [],
}


def test_gate_passes_then_fails_after_a_change(pytester):
    results = pytester.path / "results.json"
    results.write_text(json.dumps(RESULTS))
    audit = pytester.path / "raikit_bias.toml"
    audit.write_text('[gates]\n"fairness.crows_pairs.metric_score" = { max = 65.0, use = "ci" }\n')
    passed = pytester.runpytest("--raikit-results", str(results), "-v")
    passed.assert_outcomes(passed=1)
    passed.stdout.fnmatch_lines(["*raikit_bias.toml::fairness.crows_pairs.metric_score PASSED*"])

    audit.write_text('[gates]\n"fairness.crows_pairs.metric_score" = { max = 60.0, use = "ci", '
                     'clause = "EU AI Act Art. 10(2)(f)" }\n')
    failed = pytester.runpytest("--raikit-results", str(results))
    failed.assert_outcomes(failed=1)
    failed.stdout.fnmatch_lines(["*raikit gate failed: fairness.crows_pairs.metric_score*", "*value:*57*",
                                 "*95% CI:*[52, 62.5]*", "*threshold: CI bound <= 60*",
                                 "*supports:*EU AI Act Art. 10(2)(f)*"])


def test_bad_gate_table_is_a_collection_error(pytester):
    (pytester.path / "raikit_x.toml").write_text('[gates]\n"a.b" = { maxx = 1 }\n')
    result = pytester.runpytest("--raikit-results", "nothing.json")
    result.stdout.fnmatch_lines(["*unknown key 'maxx'*"])
    assert result.ret != 0


def test_fixture_loads_results_once(pytester):
    results = pytester.path / "results.json"
    results.write_text(json.dumps(RESULTS))
    pytester.makepyfile(test_user="""
        from raikit.audits.gates import check

        def test_bias(raikit_audit):
            assert raikit_audit["metrics"]["fairness.crows_pairs.metric_score"]["value"] == 57.0
            check(raikit_audit, fairness__crows_pairs__metric_score={"max": 65})
    """)
    result = pytester.runpytest("--raikit-results", str(results))
    result.assert_outcomes(passed=1)


def test_unreadable_results_file_is_a_one_line_failure(pytester):
    (pytester.path / "raikit_bias.toml").write_text('[gates]\n"fairness.crows_pairs.metric_score" = { max = 65.0 }\n')
    (pytester.path / "results.json").write_text('{"schema_version": "0.1", "metrics": {}}')
    result = pytester.runpytest("--raikit-results", "results.json")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*raikit: results.json: schema_version*0.1*"])


def test_failing_gate_without_clause_names_the_mapped_clauses(pytester):
    results = pytester.path / "results.json"
    results.write_text(json.dumps(RESULTS))
    (pytester.path / "raikit_bias.toml").write_text('[gates]\n"fairness.crows_pairs.metric_score" = { max = 50.0 }\n')
    result = pytester.runpytest("--raikit-results", str(results))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*supports:*EU AI Act*10(2)*"])
