"""Fairness gates: thresholds on metrics, checked on the point value or the least favourable CI bound.

In an audit config::

    [gates]
    "fairness.crows_pairs.metric_score" = { max = 60.0, use = "ci", clause = "EU AI Act Art. 10(2)(f)" }

``use = "ci"`` compares the CI bound that is least favourable to the model: the upper bound against a
``max``, the lower bound against a ``min``. Such a gate fails when the interval is no evidence about its
value (:func:`ci_problem`): the value lies outside its own interval, or the interval has zero width at a
small sample size (a bootstrap of five identical outcomes is ``[0, 0]``, which says nothing).
"""
from __future__ import annotations

import difflib
import fnmatch
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from raikit.audits.errors import RaikitInputError

__all__ = ["Gate", "GateOutcome", "parse_gates", "evaluate_gates", "check", "gates_from_config", "recorded_gates", "ci_problem",
           "SMALL_N"]

_KEYS = ("min", "max", "use", "clause")

#: Below this many observations, a zero-width 95% interval is taken as a failed interval estimate (a
#: bootstrap or percentile CI collapses to a point when every resample agrees), not as certainty.
SMALL_N = 30


def ci_problem(value: Any, ci95: Any, n: Any = None) -> str | None:
    """Why a 95% CI cannot be used as evidence about its value, or None when it can.

    Parameters
    ----------
    value : float
        The point value.
    ci95 : sequence of two floats, optional
        The interval as recorded (``[low, high]``); None or a missing bound is not a problem here.
    n : int, optional
        The number of observations behind the value.

    Returns
    -------
    str or None
        ``"the value 0.4 lies outside its own 95% CI [0, 0.2]"`` or ``"the 95% CI [1, 1] has zero width at
        n = 5 (below 30)"``; None when neither applies.
    """
    if not _number(value) or ci95 is None or len(ci95) != 2 or not all(_number(b) for b in ci95):
        return None
    low, high = float(ci95[0]), float(ci95[1])
    tol = 1e-9 * max(1.0, abs(low), abs(high), abs(float(value)))
    if not low - tol <= float(value) <= high + tol:
        return f"the value {float(value):.4g} lies outside its own 95% CI [{low:.4g}, {high:.4g}]"
    small = n is None or (_number(n) and n < SMALL_N)
    if high - low <= tol and small:
        size = "unknown n" if n is None else f"n = {int(n)}"
        return f"the 95% CI [{low:.4g}, {high:.4g}] has zero width at {size} (below {SMALL_N})"
    return None


@dataclass(frozen=True)
class Gate:
    """One threshold on one metric.

    Parameters
    ----------
    metric : str
        Dotted metric name, e.g. ``fairness.crows_pairs.metric_score``.
    min, max : float, optional
        Bounds the metric must respect (at least one).
    use : {"value", "ci"}
        Compare the point value, or the least favourable bound of its 95% CI.
    clause : str, optional
        The regulatory clause this gate gives evidence for, shown in failure messages.
    """

    metric: str
    min: float | None = None
    max: float | None = None
    use: Literal["value", "ci"] = "value"
    clause: str | None = None

    def describe(self) -> str:
        """``40 <= x <= 60``-style text of the threshold."""
        parts = []
        if self.min is not None:
            parts.append(f">= {self.min:g}")
        if self.max is not None:
            parts.append(f"<= {self.max:g}")
        target = "CI bound" if self.use == "ci" else "value"
        return f"{target} {' and '.join(parts)}"


@dataclass(frozen=True)
class GateOutcome:
    """The verdict of one gate on one set of results."""

    gate: Gate
    value: float | None
    ci95: tuple[float, float] | None
    compared: float | None
    passed: bool
    message: str
    ci_problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The form stored under ``gates`` in ``results.json``."""
        return {
            "metric": self.gate.metric, "min": self.gate.min, "max": self.gate.max, "use": self.gate.use,
            "clause": self.gate.clause, "value": self.value,
            "ci95": None if self.ci95 is None else list(self.ci95), "compared": self.compared,
            "passed": self.passed, "message": self.message, "ci_problem": self.ci_problem,
        }


def _number(value: Any) -> bool:
    """A finite int or float (TOML allows ``nan`` and ``inf``; no threshold can be either)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def parse_gates(table: Mapping[str, Any], *, where: str, known_metrics: Sequence[str] = ()
                ) -> tuple[list[Gate], list[str]]:
    """Read a ``[gates]`` table, collecting every problem.

    Parameters
    ----------
    table : mapping
        Metric name -> ``{min, max, use, clause}``.
    where : str
        ``file: [gates]`` prefix for problems.
    known_metrics : sequence of str
        Metric names (``*`` wildcards allowed) the configured sections can produce; when given, a gate on
        any other name is a problem that lists close matches.

    Returns
    -------
    (gates, problems)
    """
    gates: list[Gate] = []
    problems: list[str] = []
    for metric, spec in table.items():
        at = f"{where}: {metric!r}"
        if not isinstance(spec, Mapping):
            problems.append(f"{at}: must be a table like {{ max = 60.0 }}, got {spec!r}")
            continue
        bad = [k for k in spec if k not in _KEYS]
        problems += [f"{at}: unknown key {k!r}; allowed: {', '.join(_KEYS)}" for k in bad]
        for bound in ("min", "max"):
            if bound in spec and not _number(spec[bound]):
                problems.append(f"{at}: key {bound!r} must be a finite number, got {spec[bound]!r}")
        if _number(spec.get("min")) and _number(spec.get("max")) and spec["min"] > spec["max"]:
            problems.append(f"{at}: min {spec['min']!r} is greater than max {spec['max']!r}; no value can pass")
        if "min" not in spec and "max" not in spec:
            problems.append(f"{at}: needs min, max or both")
        if spec.get("use", "value") not in ("value", "ci"):
            problems.append(f"{at}: key 'use' must be 'value' or 'ci', got {spec.get('use')!r}")
        if "clause" in spec and not isinstance(spec["clause"], str):
            problems.append(f"{at}: key 'clause' must be a string, got {spec['clause']!r}")
        if known_metrics and not any(fnmatch.fnmatchcase(metric, pattern) for pattern in known_metrics):
            concrete = [p for p in known_metrics if "*" not in p]
            close = difflib.get_close_matches(metric, concrete, n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(known_metrics[:12])}"
            problems.append(f"{at}: no configured section produces this metric{hint}")
        if not bad and not any(p.startswith(at) for p in problems):
            gates.append(Gate(metric=metric, min=None if "min" not in spec else float(spec["min"]),
                              max=None if "max" not in spec else float(spec["max"]),
                              use=spec.get("use", "value"), clause=spec.get("clause")))
    return gates, problems


def _evaluate(gate: Gate, entry: Mapping[str, Any] | None) -> GateOutcome:
    name = gate.metric
    if entry is None or entry.get("value") is None or not math.isfinite(float(entry["value"])):
        return GateOutcome(gate, None, None, None, False, f"{name}: missing from the results (threshold "
                           f"{gate.describe()})")
    value = float(entry["value"])
    ci = entry.get("ci95")
    ci95 = None
    if ci is not None:
        ci95 = (float("nan") if ci[0] is None else float(ci[0]), float("nan") if ci[1] is None else float(ci[1]))
    failures = []
    compared = value
    problem = ci_problem(value, ci95, entry.get("n")) if gate.use == "ci" else None
    if problem:
        failures.append(f"{problem}, so the interval is no evidence for a CI-based gate")
    if gate.min is None and gate.max is None:
        failures.append("no threshold (min or max) is set")
    for bound, limit in (("min", gate.min), ("max", gate.max)):
        if limit is None:
            continue
        x = value
        if gate.use == "ci" and ci95 is not None:
            x = ci95[0] if bound == "min" else ci95[1]
        compared = x
        # Written so that NaN on either side fails: a comparison with NaN is never true.
        if not math.isfinite(float(limit)):
            failures.append(f"threshold {bound} {limit!r} is not a finite number")
        elif not math.isfinite(x):
            failures.append(f"the compared {'CI bound' if x is not value else 'value'} is not a finite number")
        elif not (x >= limit if bound == "min" else x <= limit):
            failures.append(f"{x:.4g} {'<' if bound == 'min' else '>'} {bound} {limit:g}")
    ci_text = f" [95% CI {ci95[0]:.4g}, {ci95[1]:.4g}]" if ci95 else ""
    clause = f" (supports {gate.clause})" if gate.clause else ""
    if gate.use == "ci" and ci95 is None:
        failures_note = " (no CI: point value used)"
    else:
        failures_note = ""
    if failures:
        msg = f"{name} = {value:.4g}{ci_text}: {'; '.join(failures)}{failures_note}{clause}"
    else:
        msg = f"{name} = {value:.4g}{ci_text} meets {gate.describe()}{failures_note}{clause}"
    return GateOutcome(gate, value, ci95, compared, not failures, msg, problem)


def evaluate_gates(gates: Sequence[Gate], metrics: Mapping[str, Mapping[str, Any]]) -> list[GateOutcome]:
    """Check each gate against the ``metrics`` of a results dict (a missing metric fails its gate)."""
    return [_evaluate(g, metrics.get(g.metric)) for g in gates]


def gates_from_config(path: str | Path) -> list[Gate]:
    """The gates of an audit TOML file.

    Raises
    ------
    RaikitInputError
        When the file cannot be read or its ``[gates]`` table has problems (all listed, one per line).
    """
    from raikit.audits.config import ConfigError, read_config

    raw, _ = read_config(path)
    table = raw.get("gates", {})
    if not isinstance(table, Mapping):
        raise RaikitInputError("[gates] must be a table", where=str(path))
    gates, problems = parse_gates(table, where=f"{path}: [gates]")
    if problems:
        raise ConfigError(problems)
    return gates


def recorded_gates(results: Mapping[str, Any], *, where: str) -> list[Gate]:
    """The gates a run was judged by: its recorded config's ``[gates]``, else its ``gates`` outcomes.

    Parameters
    ----------
    results : mapping
        A parsed ``results.json``.
    where : str
        The results file, named in errors.

    Raises
    ------
    RaikitInputError
        When the recorded gates are malformed (all problems listed).
    """
    from raikit.audits.config import ConfigError

    config = results.get("config")
    if isinstance(config, Mapping) and "gates" in config:
        table = config["gates"]
    else:  # an older results.json: rebuild the table from the judged gates
        table = {str(g.get("metric")): {k: g[k] for k in _KEYS if g.get(k) is not None}
                 for g in results.get("gates") or [] if isinstance(g, Mapping) and g.get("metric")}
    if not isinstance(table, Mapping):
        raise RaikitInputError("the recorded [gates] is not a table", where=f"{where}: config")
    gates, problems = parse_gates(table, where=f"{where}: recorded [gates]")
    if problems:
        raise ConfigError(problems)
    return gates


def check(results: Mapping[str, Any], *, gates: Sequence[Gate] | None = None,
          **thresholds: Mapping[str, Any]) -> None:
    """Assert that results meet gates, for plain ``assert``-style use in a test suite.

    Parameters
    ----------
    results : mapping
        A parsed ``results.json``.
    gates : sequence of Gate, optional
        Gates to check; by default those recorded in ``results["gates"]``.
    **thresholds
        More gates as keywords, ``__`` standing for each dot of the metric name, e.g.
        ``fairness__crows_pairs__metric_score={"max": 60}``.

    Raises
    ------
    AssertionError
        Listing every failing gate.
    """
    chosen = list(gates) if gates is not None else [
        Gate(metric=g["metric"], min=g.get("min"), max=g.get("max"), use=g.get("use", "value"),
             clause=g.get("clause")) for g in results.get("gates", [])]
    for key, spec in thresholds.items():
        chosen.append(Gate(metric=key.replace("__", "."), min=spec.get("min"), max=spec.get("max"),
                           use=spec.get("use", "value"), clause=spec.get("clause")))
    failed = [o for o in evaluate_gates(chosen, results.get("metrics", {})) if not o.passed]
    if failed:
        raise AssertionError("raikit gates failed:\n" + "\n".join(f"  {o.message}" for o in failed))
