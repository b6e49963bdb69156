"""pytest plugin: audit TOML files become tests, one item per gate.

Registered through the ``pytest11`` entry point. In a project::

    tests/raikit_fairness.toml      # an audit config with a [gates] table
    pytest                          # runs the audit once, one test per gate
    pytest --raikit-results out/<run>/results.json   # gate precomputed results, no models

Options live under ``pytest --help`` in the "raikit" group; the ``raikit_audit`` fixture gives a test the
results dict of one audit, run or loaded once per session.
"""
from __future__ import annotations

import fnmatch
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

__all__ = ["GateFailure", "RaikitFile", "GateItem", "raikit_audit", "results_for", "assert_gate"]

_RESULTS_CACHE = pytest.StashKey[dict[str, dict[str, Any]]]()


class GateFailure(Exception):
    """A gate did not pass; carries the outcome for a readable report."""

    def __init__(self, outcome: Any, clauses: list[str]) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome
        self.clauses = clauses


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("raikit", "raikit fairness gates")
    group.addoption("--raikit-pattern", default=None,
                    help="glob of audit TOML files to collect (default: ini raikit_pattern or raikit_*.toml)")
    group.addoption("--raikit-results", default=None, metavar="PATH",
                    help="gate this precomputed results.json instead of running the audits")
    group.addoption("--raikit-out", default=None, metavar="DIR",
                    help="where audits run by the plugin write their results (default: a temporary folder)")
    parser.addini("raikit_pattern", "glob of audit TOML files to collect", default="raikit_*.toml")
    parser.addini("raikit_config", "audit TOML the raikit_audit fixture runs", default="")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "raikit_gate: a fairness gate collected from a raikit audit file")
    config.stash[_RESULTS_CACHE] = {}


def _pattern(config: pytest.Config) -> str:
    return config.getoption("--raikit-pattern") or config.getini("raikit_pattern") or "raikit_*.toml"


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix == ".toml" and fnmatch.fnmatch(file_path.name, _pattern(parent.config)):
        return RaikitFile.from_parent(parent, path=file_path)
    return None


def _results_for(config: pytest.Config, audit_path: Path | None) -> dict[str, Any]:
    """Results of an audit: the --raikit-results file, or the audit run once and cached for the session."""
    cache = config.stash[_RESULTS_CACHE]
    given = config.getoption("--raikit-results")
    key = f"results:{given}" if given else f"audit:{audit_path}"
    if key not in cache:
        if given:
            from raikit.reports import load_results

            cache[key] = load_results(given)
        else:
            if audit_path is None:
                raise pytest.UsageError("raikit_audit: set the ini option raikit_config or pass --raikit-results")
            from raikit.audits.runner import run_audit

            out = config.getoption("--raikit-out")
            if out:
                cache[key] = run_audit(audit_path, out_dir=Path(out), progress=False).results
            else:  # no --raikit-out: the run's files are not kept (its results stay in memory for the session)
                with tempfile.TemporaryDirectory(prefix="raikit-") as tmp:
                    cache[key] = run_audit(audit_path, out_dir=Path(tmp), progress=False).results
    return cache[key]


def results_for(config: pytest.Config, audit_path: str | Path) -> dict[str, Any]:
    """The results of the audit in ``audit_path``, run once per session (``--raikit-results`` is read instead).

    For test files written by ``raikit scan --write-pytest``.
    """
    return _results_for(config, Path(audit_path))


def assert_gate(results: Mapping[str, Any], gate: Any) -> None:
    """Assert that ``results`` meet one gate; the message names the metric, its value and CI, the bound it
    broke, and the report's finding on that metric (what the number means), when there is one."""
    from raikit.audits.gates import evaluate_gates

    outcome = evaluate_gates([gate], results.get("metrics", {}))[0]
    if outcome.passed:
        return
    from raikit.reports import findings

    said = [f.title for f in findings(results) if f.metric == gate.metric and f.kind != "gate"]
    clauses = "; ".join(_clauses(gate)) or "none mapped"
    raise AssertionError(f"raikit gate failed: {outcome.message}" + (f"\n  finding: {said[0]}" if said else "")
                         + f"\n  supports: {clauses}")


def _clauses(gate: Any) -> list[str]:
    """The clauses a gate supports: its own ``clause``, else those the compliance mapping ties to its metric."""
    if gate.clause:
        return [gate.clause]
    from raikit.reports import clauses_for_metric

    return clauses_for_metric(gate.metric)


class RaikitFile(pytest.File):
    """An audit TOML file; each gate in its ``[gates]`` table is one test item."""

    def collect(self) -> Iterator[pytest.Item]:
        from raikit.audits.errors import RaikitInputError
        from raikit.audits.gates import gates_from_config

        try:
            gates = gates_from_config(self.path)
        except RaikitInputError as exc:
            raise self.CollectError(str(exc)) from None
        for gate in gates:
            item = GateItem.from_parent(self, name=gate.metric, gate=gate)
            item.add_marker("raikit_gate")
            yield item


class GateItem(pytest.Item):
    """One gate of one audit."""

    def __init__(self, *, gate: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gate = gate

    def runtest(self) -> None:
        from raikit.audits.gates import evaluate_gates

        results = _results_for(self.config, self.path)
        outcome = evaluate_gates([self.gate], results.get("metrics", {}))[0]
        if not outcome.passed:
            raise GateFailure(outcome, _clauses(self.gate))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, GateFailure):
            o = excinfo.value.outcome
            ci = f"[{o.ci95[0]:.4g}, {o.ci95[1]:.4g}]" if o.ci95 else "none"
            value = "missing" if o.value is None else f"{o.value:.4g}"
            clauses = "; ".join(excinfo.value.clauses) or "none mapped"
            return "\n".join([
                f"raikit gate failed: {self.gate.metric}",
                f"  value:     {value}",
                f"  95% CI:    {ci}",
                f"  threshold: {self.gate.describe()}",
                f"  supports:  {clauses}",
                f"  {o.message}",
            ])
        from raikit.audits.errors import RaikitInputError

        if isinstance(excinfo.value, RaikitInputError):
            return f"raikit: {excinfo.value}"
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"raikit gate: {self.gate.metric}"


@pytest.fixture(scope="session")
def raikit_audit(pytestconfig: pytest.Config) -> Mapping[str, Any]:
    """The results dict of one audit (``--raikit-results``, or the ini ``raikit_config`` run once)."""
    configured = pytestconfig.getini("raikit_config")
    path = Path(pytestconfig.rootpath, configured) if configured else None
    return _results_for(pytestconfig, path)
