"""Turn a results dict into plain view objects for the report templates (no markup here).

The HTML, Markdown and model-card renderers all read a results dict through these helpers, so that
every format shows the same numbers, gates and limitations.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from raikit.audits.gates import ci_problem
from raikit.reports._compliance import clauses_for_metric
from raikit.reports._findings import findings
from raikit.reports._format import fmt, fmt_ci
from raikit.reports._load import ci_of, finite

__all__ = ["fmt", "fmt_ci", "GateRow", "MetricRow", "gate_rows", "metric_rows", "section_keys", "forest_families",
           "limitations", "report_options", "verdict", "verdict_badge", "ungated_findings", "faithfulness_rows", "NOT_RUN", "metric_meanings"]

#: Capabilities whose absence from a run is listed under limitations.
NOT_RUN = {
    "fairness": "Fairness: not run (no bias probe was part of this audit).",
    "explain": "Explanations: not run (no prediction was explained).",
    "privacy": "Privacy: not run (no differential-privacy training or membership-inference attack).",
    "federated": "Federated learning: not run (no federated training or per-client evaluation).",
}
_KEYWORDS = {"fairness": ("bias", "fairness"), "explain": ("explanation", "explain"),
             "privacy": ("privacy", "membership"), "federated": ("federated",)}
_FAMILY = re.compile(r"^(?P<head>.+?)\.(?P<axis>by_[A-Za-z0-9_]+)\.(?P<group>[^.]+)(?:\.(?P<tail>.+))?$")


def threshold_text(gate: Mapping[str, Any]) -> str:
    """``CI bound <= 60`` style text of a recorded gate."""
    parts = []
    if gate.get("min") is not None:
        parts.append(f">= {fmt(gate['min'])}")
    if gate.get("max") is not None:
        parts.append(f"<= {fmt(gate['max'])}")
    target = "CI bound" if gate.get("use") == "ci" else "value"
    return f"{target} {' and '.join(parts) or '(no bound)'}"


@dataclass(frozen=True)
class GateRow:
    """One recorded gate, formatted."""

    metric: str
    passed: bool
    value: str
    ci: str
    compared: str
    threshold: str
    clauses: tuple[str, ...]
    message: str


@dataclass(frozen=True)
class MetricRow:
    """One metric, formatted."""

    name: str
    short: str
    value: str
    ci: str
    n: str
    gate: str
    value_num: float | None
    ci_num: tuple[float, float] | None
    extra: str = ""

    label: str = ""
    meaning: str = ""


def _pattern(declared: str) -> re.Pattern[str]:
    """A declared metric name (``by_group.*.failure_rate``) as a regex: ``*`` is one or more dotted parts."""
    return re.compile("^" + r"([^.]+(?:\.[^.]+)*?)".join(re.escape(p) for p in declared.split("*")) + "$")


def metric_meanings(results: Mapping[str, Any], key: str) -> list[tuple[re.Pattern[str], str, str]]:
    """The section's declared ``(pattern, label, meaning)`` per metric name, most specific pattern first.

    The runner copies each section's declaration (``Section.meanings``) into
    ``results["sections"][key]["metric_meanings"]`` as ``{name pattern: [label, one-line meaning]}``.
    """
    declared = ((results.get("sections") or {}).get(key) or {}).get("metric_meanings") or {}
    if not isinstance(declared, Mapping):
        return []
    out = [(name, str(v[0]), str(v[1])) for name, v in declared.items()
           if isinstance(v, Sequence) and not isinstance(v, str) and len(v) == 2]
    out.sort(key=lambda item: (item[0].count("*"), -len(item[0])))
    return [(_pattern(name), label, meaning) for name, label, meaning in out]


def _label_of(short: str, meanings: Sequence[tuple[re.Pattern[str], str, str]]) -> tuple[str, str]:
    for pattern, label, meaning in meanings:
        found = pattern.match(short)
        if found:
            for part in found.groups():  # each "{}" in the label names what the "*" matched, in order
                label = label.replace("{}", part, 1)
            return label, meaning
    return "", ""

def gate_rows(results: Mapping[str, Any]) -> list[GateRow]:
    """The gates recorded in ``results["gates"]``, formatted (clauses from the gate or the mapping)."""
    rows = []
    for g in results.get("gates") or []:
        metric = str(g.get("metric", "?"))
        clauses = (g["clause"],) if g.get("clause") else tuple(clauses_for_metric(metric))
        rows.append(GateRow(metric=metric, passed=bool(g.get("passed")), value=fmt(g.get("value")),
                            ci=fmt_ci(g.get("ci95")), compared=compared_text(g), threshold=threshold_text(g),
                            clauses=clauses, message=str(g.get("message", ""))))
    return rows


def compared_text(gate: Mapping[str, Any]) -> str:
    """What a gate judged, named: ``"upper 95% bound 0.27"`` (both bounds for a min and max CI gate), or the value."""
    ci = gate.get("ci95")
    if gate.get("use") != "ci" or not isinstance(ci, (list, tuple)) or len(ci) != 2:
        return f"value {fmt(gate.get('value'))}" if gate.get("value") is not None else fmt(gate.get("compared"))
    parts = ([f"lower 95% bound {fmt(ci[0])}"] if gate.get("min") is not None else []) + (
        [f"upper 95% bound {fmt(ci[1])}"] if gate.get("max") is not None else [])
    return "; ".join(parts) or fmt(gate.get("compared"))


def verdict(results: Mapping[str, Any]) -> str:
    """``"PASS"`` (every gate passed and no finding goes ungated), ``"PARTIAL"`` (every gate passed, but findings
    whose 95% CI excludes no bias are judged by no gate), ``"FAIL"`` (a gate failed), ``"NO GATES"``, or
    ``"NOTHING MEASURED"`` (no metric and no gate: the run examined nothing)."""
    gates = results.get("gates") or []
    if not gates:
        return "NO GATES" if results.get("metrics") else "NOTHING MEASURED"
    if not all(g.get("passed") for g in gates):
        return "FAIL"
    return "PARTIAL" if ungated_findings(results) else "PASS"


def ungated_findings(results: Mapping[str, Any]) -> list[Any]:
    """Findings whose 95% CI excludes no bias on metrics that no gate of the run judges."""
    gated = {str(g.get("metric")) for g in results.get("gates") or [] if isinstance(g, Mapping)}
    return [f for f in findings(results) if f.clear and f.kind != "gate" and f.metric not in gated]


def verdict_badge(results: Mapping[str, Any]) -> str:
    """The verdict's words: ``"3 gates passed; 2 findings not gated"`` when it is PARTIAL, else the verdict."""
    state = verdict(results)
    if state != "PARTIAL":
        return state
    gates, loose = len(results.get("gates") or []), len(ungated_findings(results))
    return (f"{gates} gate{'s' if gates != 1 else ''} passed; "
            f"{loose} finding{'s' if loose != 1 else ''} not gated")


def _gate_state(results: Mapping[str, Any]) -> dict[str, str]:
    state: dict[str, str] = {}
    for g in results.get("gates") or []:
        name = g.get("metric")
        ok = bool(g.get("passed")) and state.get(name, "pass") == "pass"
        state[name] = "pass" if ok else "fail"
    return state


def section_keys(results: Mapping[str, Any]) -> list[str]:
    """Section keys: those in ``results["sections"]``, then metric prefixes that no section claims."""
    keys = list((results.get("sections") or {}).keys())
    for name in results.get("metrics") or {}:
        if not any(name == k or name.startswith(k + ".") for k in keys):
            parts = name.split(".")
            keys.append(".".join(parts[:2]) if len(parts) > 2 else parts[0])
    return list(dict.fromkeys(keys))


def _owner(name: str, keys: Sequence[str]) -> str | None:
    best = None
    for k in keys:
        if (name == k or name.startswith(k + ".")) and (best is None or len(k) > len(best)):
            best = k
    return best


def metric_rows(results: Mapping[str, Any], key: str) -> list[MetricRow]:
    """The metrics of one section (the longest section key that prefixes a metric owns it)."""
    keys = section_keys(results)
    state = _gate_state(results)
    meanings = metric_meanings(results, key)
    rows = []
    for name, entry in (results.get("metrics") or {}).items():
        if _owner(name, keys) != key or not isinstance(entry, Mapping):
            continue
        details = entry.get("details") or {}
        extra = "; ".join(f"{k} {fmt(details[k])}" for k in ("p_value", "effect_size") if k in details)
        problem = ci_problem(entry.get("value"), entry.get("ci95"), entry.get("n"))
        if problem:  # an interval that contradicts its value, or a degenerate one, is flagged, not shown as evidence
            extra = "; ".join(filter(None, [extra, f"CI is no evidence: {problem}"]))
        short = name[len(key) + 1:] or name
        label, meaning = _label_of(short, meanings)
        rows.append(MetricRow(name=name, short=short, value=fmt(entry.get("value")),
                              ci=fmt_ci(entry.get("ci95")), n=fmt(entry.get("n")), gate=state.get(name, ""),
                              value_num=finite(entry.get("value")), ci_num=ci_of(entry), extra=extra, label=label,
                              meaning=meaning))
    return rows


@dataclass(frozen=True)
class Family:
    """Metrics of one quantity across groups: ``<head>.<by_axis>.<group>[.<tail>]``."""

    head: str
    axis: str
    tail: str
    rows: tuple[tuple[str, float, tuple[float, float] | None], ...] = field(default=())

    @property
    def title(self) -> str:
        what = f"{self.head}.{self.tail}" if self.tail else self.head
        return f"{what} {self.axis.replace('_', ' ')}"


def forest_families(rows: Sequence[MetricRow]) -> list[Family]:
    """Group per-group metrics (``...by_group.<g>...``) into families of at least two groups."""
    found: dict[tuple[str, str, str], list[tuple[str, float, tuple[float, float] | None]]] = {}
    for r in rows:
        m = _FAMILY.match(r.name)
        if not m or r.value_num is None:
            continue
        found.setdefault((m["head"], m["axis"], m["tail"] or ""), []).append((m["group"], r.value_num, r.ci_num))
    return [Family(head=h, axis=a, tail=t, rows=tuple(v)) for (h, a, t), v in found.items() if len(v) >= 2]


def faithfulness_rows(results: Mapping[str, Any], key: str) -> tuple[list[dict[str, Any]], str]:
    """Per explainer: comprehensiveness, sufficiency and AOPC with CIs, and which explainer to trust.

    The explainer to trust has the highest comprehensiveness (removing its top words changes the
    prediction most) and the lowest sufficiency (its top words alone keep the prediction); the
    ``random`` baseline is the floor and never recommended.
    """
    metrics = results.get("metrics") or {}
    methods = []
    for name in metrics:
        m = re.match(re.escape(key) + r"\.([^.]+)\.comprehensiveness$", name)
        if m:
            methods.append(m[1])
    rows = []
    for method in methods:
        row: dict[str, Any] = {"method": method}
        for k in ("comprehensiveness", "sufficiency", "aopc"):
            entry = metrics.get(f"{key}.{method}.{k}") or {}
            row[k] = finite(entry.get("value"))
            row[f"{k}_text"] = fmt(entry.get("value"))
            row[f"{k}_ci"] = fmt_ci(entry.get("ci95"))
        rows.append(row)
    real = [r for r in rows if r["method"] != "random"]
    random = next((r for r in rows if r["method"] == "random"), None)
    if not real:
        return rows, ""
    comp = [r for r in real if r["comprehensiveness"] is not None]
    suff = [r for r in real if r["sufficiency"] is not None]
    best_c = max(comp, key=lambda r: r["comprehensiveness"])["method"] if comp else None
    best_s = min(suff, key=lambda r: r["sufficiency"])["method"] if suff else None
    for r in rows:
        r["best_comprehensiveness"] = r["method"] == best_c
        r["best_sufficiency"] = r["method"] == best_s
        r["below_random"] = bool(random and r is not random and r["comprehensiveness"] is not None
                                 and random["comprehensiveness"] is not None
                                 and r["comprehensiveness"] <= random["comprehensiveness"])
    if best_c and best_c == best_s:
        advice = (f"Trust {best_c}: it has the highest comprehensiveness and the lowest sufficiency of the "
                  "explainers compared.")
    else:
        advice = (f"No single explainer is best: {best_c} has the highest comprehensiveness, {best_s} the lowest "
                  "sufficiency; prefer the one whose top words matter most for your use (comprehensiveness).")
    weak = [r["method"] for r in real if r.get("below_random")]
    if weak:
        advice += f" No better than the random baseline on comprehensiveness: {', '.join(weak)}."
    return rows, advice


def report_options(results: Mapping[str, Any]) -> dict[str, Any]:
    """The ``[report]`` table of the config (title, organisation, reviewers, intended use), defaults filled."""
    raw = (results.get("config") or {}).get("report") or {}
    reviewers = raw.get("reviewers") or []
    return {"title": str(raw.get("title") or "raikit audit"), "organisation": str(raw.get("organisation") or ""),
            "reviewers": [str(r) for r in reviewers] if isinstance(reviewers, list) else [str(reviewers)],
            "intended_use": str(raw.get("intended_use") or "")}


def capabilities(results: Mapping[str, Any]) -> set[str]:
    """Capabilities with at least one section or metric in the run."""
    caps = {str(s.get("capability") or k.split(".")[0]) for k, s in (results.get("sections") or {}).items()}
    caps |= {name.split(".")[0] for name in results.get("metrics") or {}}
    return caps


def limitations(results: Mapping[str, Any]) -> list[str]:
    """What the run did not test: recorded limitations, section notes, and capabilities not run."""
    out = [str(x) for x in results.get("limitations") or []]
    for key, section in (results.get("sections") or {}).items():
        for note in section.get("notes") or []:
            if not any(str(note) in line for line in out):
                out.append(f"{key}: {note}")
    ran = capabilities(results)
    for cap, text in NOT_RUN.items():
        if cap not in ran:
            # the runner records its own "No ... was run" line; show one "not run" line per capability
            out = [line for line in out if not (line.startswith("No ") and
                                                any(w in line.lower() for w in _KEYWORDS[cap]))]
            out.append(text)
    return out


def to_json(value: Any) -> str:
    """Indented JSON for a ``<details>`` block (escaped by the template)."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str, sort_keys=False)


def is_number(value: Any) -> bool:
    """A real, finite number (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
