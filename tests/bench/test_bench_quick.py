"""Smoke test of ``python -m bench --quick``: every scoring benchmark's baseline and raikit path agree.

Timings are printed by the benchmark, never asserted (they mean nothing at this size or on a loaded machine).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

pytestmark = pytest.mark.integration


def test_quick_benchmarks_agree_with_their_baselines(shared_data):
    from bench import bench_adapters

    rows = bench_adapters.run_rows(quick=True)
    assert [r.name.split(" vs ")[0] for r in rows] == [
        "masked-LM PLL", "fill-mask", "causal sentence log-likelihood", "StereoSet option scores",
        "BBQ answer scores"]
    for row in rows:
        assert row.baseline_s > 0 and row.raikit_s > 0
        assert row.equal, row.markdown()
        # the head only where scored, nothing on padding, shared beginnings once: less matrix work, never more
        assert 0 < row.raikit_gflop < row.baseline_gflop, row.markdown()


def test_quick_scaling_run_scores_every_item_and_records_nothing(monkeypatch, tmp_path, capsys):
    import bench.__main__ as bench_main
    from bench import bench_scaling

    results = bench_scaling.measure(sizes=(50, 120))
    assert [(r["workload"], r["items"]) for r in results] == [
        ("fill-mask probe", 50), ("CrowS-style pair scoring", 50), ("fill-mask probe", 120),
        ("CrowS-style pair scoring", 120)]
    assert all(r["finite"] and r["seconds"] > 0 for r in results)
    monkeypatch.setattr(bench_main, "RESULTS", tmp_path / "RESULTS.md")
    assert bench_main.main(["--quick", "bench_scaling", "bench_privacy"]) == 0
    out = capsys.readouterr().out
    assert "| CrowS-style pair scoring (cpu) | 300 |" in out and "bench_privacy: skipped (no --quick mode)" in out
    assert not (tmp_path / "RESULTS.md").exists()


def test_record_appends_a_dated_block(monkeypatch, tmp_path):
    import bench.__main__ as bench_main

    target = tmp_path / "RESULTS.md"
    target.write_text("# Benchmark results\n\nold text\n")
    monkeypatch.setattr(bench_main, "RESULTS", target)
    bench_main.record("bench_x", ["| a | b |", "|---|---|", "| 1 | 2 |"], device="cpu", started="2026-11-27 05:00")
    bench_main.record("bench_y", ["| c |"], device="cuda", started="2026-11-27 05:01")
    text = target.read_text()
    assert text.startswith("# Benchmark results\n\nold text\n")
    assert text.count(bench_main.RUNS_HEADING) == 1
    assert "### bench_x, 2026-11-27 05:00 UTC, device cpu" in text and "| 1 | 2 |" in text
    assert text.index("bench_x") < text.index("bench_y") and "load average" in text


def test_quick_generation_benchmark_batched_text_equals_one_at_a_time():
    from bench import bench_generation

    rows = bench_generation.run(quick=True)
    cells = [c.strip() for c in rows[-1].strip("|").split("|")]
    assert cells[-1] == "8 of 8", rows[-1]  # greedy text identical for every prompt
    assert float(cells[3]) > 0 and float(cells[4]) > 0
