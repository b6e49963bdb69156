"""Findings: the worst groups and largest effects of a run, across all sections, ranked by effect.

What a reader should act on first, in the spirit of Giskard's scan report and Evidently's test summaries:
each finding is one measured effect with its 95% CI, the model it concerns, concrete examples where the
run recorded them (failing behaviour-test texts, flipped counterfactuals, hurtful completions, the word
sets of an association test) and the anchor of its section in the HTML report.

Effects of different kinds are put on one scale by the share of their range by which they depart from
"no bias", as each section's findings rules say (:class:`raikit.audits.sections.Rule`, recorded in
``results["sections"][key]["findings_rules"]``): a Cohen's d over its maximum of 2, a benchmark
percentage's distance from 50 over 50, a rate gap as it is. A results file written before sections recorded
their rules (no ``findings_rules`` in a section) is read with the rules the installed section of its table
declares (:func:`raikit.audits.sections.section_rules`). Findings whose 95% CI excludes "no bias" rank above those whose CI does
not (or that have no usable CI), and failed gates rank first. The same finding on a retrained copy of a
model (the runner's re-audit) is folded into one line that names the other models.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from raikit.audits.gates import ci_problem
from raikit.audits.sections import FindingKind as Kind
from raikit.audits.sections import Rule, section_rules
from raikit.reports._format import fmt, fmt_ci

__all__ = ["Finding", "FindingsView", "Rule", "findings", "findings_view", "headline", "verdict_scope",
           "has_no_bias_value"]


_FAMILY = re.compile(r"^(?P<head>.+?)\.(?P<axis>by_[A-Za-z0-9_]+)\.(?P<group>[^.]+)(?:\.(?P<tail>.+))?$")
_HIGHER_IS_BETTER = ("accuracy", "true_positive_rate", "true_negative_rate", "precision", "recall")
_MAX_EXAMPLES = 4


@dataclass(frozen=True)
class Finding:
    """One thing the run found, with its uncertainty and where to read more.

    Attributes
    ----------
    kind : str
        ``"gate"``, ``"group gap"``, ``"worst group"``, ``"association"``, ``"benchmark"``, ``"behaviour"``,
        ``"counterfactual"``, ``"hurtful completions"``, ``"privacy"`` or ``"retraining cost"``.
    title : str
        One sentence stating the effect with its numbers.
    metric : str
        The metric it rests on.
    section : str
        The section key (the HTML anchor is ``sec-<section>``).
    model : str
        The model key, and ``model_id`` its id.
    model_id : str
    value, ci95, n
        The number behind the effect (the gap, for a group gap) with its 95% CI and sample size.
    effect : float
        Departure from "no bias" as a share of the metric's range, 0 to 1 (1 for a failed gate).
    clear : bool
        Whether the 95% CI excludes "no bias" (a failed gate is clear).
    caveat : str
        Why the CI does not settle it, when it does not ("CI includes 50", "no CI", an invalid interval).
    examples : tuple of str
        Concrete cases recorded by the section.
    also : tuple of str
        The same finding on other models (re-audited retrained copies), with their values.
    """

    kind: Kind
    title: str
    metric: str
    section: str
    model: str
    model_id: str
    value: float | None
    ci95: tuple[float, float] | None
    n: int | None
    effect: float
    clear: bool
    caveat: str = ""
    examples: tuple[str, ...] = ()
    also: tuple[str, ...] = ()

    @property
    def anchor(self) -> str:
        """The id of the finding's section in the HTML report (the verdict, for a gate on a missing metric)."""
        return f"sec-{self.section}" if self.section else "verdict"

    @property
    def ci_text(self) -> str:
        """``[lo, hi]`` or ``-``."""
        return fmt_ci(self.ci95)

    @property
    def value_text(self) -> str:
        """The value, formatted."""
        return fmt(self.value)

    @property
    def model_text(self) -> str:
        """``sentiment (builtin:minilm-sentiment)``."""
        return f"{self.model} ({self.model_id})" if self.model_id and self.model_id != self.model else self.model


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _ci(entry: Mapping[str, Any]) -> tuple[float, float] | None:
    ci = entry.get("ci95")
    if not isinstance(ci, (list, tuple)) or len(ci) != 2:
        return None
    low, high = _num(ci[0]), _num(ci[1])
    return None if low is None or high is None else (low, high)


def _int(value: Any) -> int | None:
    x = _num(value)
    return None if x is None else int(x)


def _judge(value: float, ci: tuple[float, float] | None, n: int | None, ideal: float) -> tuple[bool, str]:
    """(clear, caveat): clear when a valid CI excludes ``ideal``."""
    if ci is None:
        return False, "no 95% CI recorded"
    problem = ci_problem(value, list(ci), n)
    if problem:
        return False, f"{problem}: not evidence"
    if ci[0] <= ideal <= ci[1]:
        return False, f"the 95% CI includes {fmt(ideal)} (no effect)"
    return True, ""


@dataclass(frozen=True)
class _Source:
    """One section of the run: its key, the original section it re-audits, its model, details and rules."""

    key: str
    base: str
    model: str
    model_id: str
    details: Mapping[str, Any]
    rules: tuple[Rule, ...] = ()


def _sources(results: Mapping[str, Any]) -> list[_Source]:
    models = results.get("models") or {}
    out = []
    for key, section in (results.get("sections") or {}).items():
        if not isinstance(section, Mapping):
            continue
        model = str(section.get("model") or "")
        entry = models.get(model) if isinstance(models.get(model), Mapping) else {}
        details = section.get("details") if isinstance(section.get("details"), Mapping) else {}
        # a table run on a list of models (fairness.seat.<model>) reads as the table itself
        out.append(_Source(key=key, base=str(section.get("variant_of") or section.get("reaudit_of") or key), model=model,
                           model_id=str(entry.get("id") or model), details=details, rules=section_rules(section, key)))
    # longest key first, so privacy.dp.fairness.groups owns its metrics rather than privacy
    return sorted(out, key=lambda s: -len(s.key))


def _owner(name: str, sources: Sequence[_Source]) -> _Source | None:
    return next((s for s in sources if name == s.key or name.startswith(s.key + ".")), None)


def _rule(name: str, source: _Source) -> Rule | None:
    """The first of the source's rules that applies to metric ``name`` (named relative to the section)."""
    relative = name[len(source.key) + 1:]
    return next((r for r in source.rules if r.applies(relative)), None)


def _clip(text: Any, limit: int = 160) -> str:
    text = str(text)
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "\u2026"


def _examples_for(rule_key: str, source: _Source, metric: Mapping[str, Any], *, group: str = "") -> tuple[str, ...]:
    d = source.details
    if rule_key.startswith("bbq_"):
        condition = "ambiguous" if rule_key.startswith("bbq_amb") else "disambiguated"
        return tuple(f'{f.get("category")} ({condition}, {f.get("polarity")} question): "{_clip(f.get("context"))}" '
                     f'{f.get("question")} -> "{f.get("answer")}" (right: "{f.get("right_answer")}")'
                     for f in (d.get("worst_items") or []) if isinstance(f, Mapping)
                     and f.get("condition") == condition and (not group or f.get("category") == group)
                     )[:_MAX_EXAMPLES]
    if rule_key in ("behaviour", "behaviour_gaps"):
        return tuple(f'"{f.get("text")}": expected {f.get("label")}, predicted {f.get("predicted")}'
                     + (f' (perturbed: "{f.get("perturbed")}")' if f.get("perturbed") else "")
                     for f in (d.get("failures") or [])[:_MAX_EXAMPLES] if isinstance(f, Mapping))
    if rule_key == "counterfactual":
        return tuple(f'"{f.get("original")}" -> "{f.get("counterfactual")}": {f.get("label_original")} '
                     f'({fmt(f.get("p_original"), 3)}) became {f.get("label_counterfactual")} '
                     f'({fmt(f.get("p_counterfactual"), 3)})'
                     for f in (d.get("flipped") or [])[:_MAX_EXAMPLES] if isinstance(f, Mapping))
    if rule_key in ("honest", "honest_gaps"):
        return tuple(f'"{f.get("template")}" ({f.get("group")}): {f.get("count")} hurtful of the top '
                     f'completions: {f.get("completions")}'
                     for f in (d.get("most_hurtful") or [])[:_MAX_EXAMPLES]
                     if isinstance(f, Mapping) and _num(f.get("count")))
    if rule_key == "generation_gaps":
        return tuple(f'{f.get("group")} ({f.get("worst by")}, {f.get("score")}): "{f.get("prompt")}" -> '
                     f'"{f.get("completion")}" (model output; content note in the section)'
                     for f in (d.get("worst_completions") or [])[:_MAX_EXAMPLES] if isinstance(f, Mapping))
    if rule_key == "associations":
        details = metric.get("details") or {}
        cats, d = details.get("categories"), _num(metric.get("value"))
        if isinstance(cats, Mapping) and {"targ1", "targ2", "attr1", "attr2"} <= set(cats) and d is not None:
            first, second = (cats["attr1"], cats["attr2"]) if d >= 0 else (cats["attr2"], cats["attr1"])
            direction = "positive d: the stereotypical direction" if d >= 0 else "negative d: the reverse direction"
            return (f"{cats['targ1']} is associated with {first} and {cats['targ2']} with {second} ({direction})",)
        groups, targets = details.get("groups"), details.get("target_groups")
        if isinstance(groups, list) and isinstance(targets, list) and len(groups) == len(targets) == 2:
            return (f"groups {groups[0]} vs {groups[1]}, target words {targets[0]} vs {targets[1]}",)
    return ()


def _single(rule_key: str, rule: Rule, name: str, entry: Mapping[str, Any], source: _Source,
            metrics: Mapping[str, Any]) -> Finding | None:
    value = _num(entry.get("value"))
    if value is None:
        return None
    effect = min(1.0, abs(value - rule.ideal) / rule.scale)
    if effect <= 0:
        return None
    ci, n = _ci(entry), _int(entry.get("n"))
    clear, caveat = _judge(value, ci, n, rule.ideal)
    relative = source.base + name[len(source.key):]
    what = relative.split(".", 1)[-1]
    title = f"{rule.label}: {what} = {fmt(value)} {fmt_ci(ci)} ({rule.null}: {fmt(rule.ideal)})"
    if rule_key == "behaviour":
        fails = [f for f in (source.details.get("failures") or []) if isinstance(f, Mapping)]
        prefix = f"{source.key}.by_group."
        groups = [(k[len(prefix):].rsplit(".", 1)[0], _num(e.get("value"))) for k, e in metrics.items()
                  if k.startswith(prefix) and k.endswith(".failure_rate") and isinstance(e, Mapping)]
        failing = sorted(((g, v) for g, v in groups if v), key=lambda x: -x[1])
        where = (f"; failures only in {', '.join(f'{g} ({fmt(v)})' for g, v in failing)}"
                 if failing and len(failing) < len(groups) else "")
        # the count comes from the rate over all n tests; the details keep only the first few failures
        failed = round(value * n) if n is not None else len(fails)
        title = (f"{failed} of {n if n is not None else '?'} behaviour tests failed: failure rate "
                 f"{fmt(value)} {fmt_ci(ci)}{where}")
    return Finding(kind=rule.kind, title=title, metric=name, section=source.key, model=source.model,
                   model_id=source.model_id, value=value, ci95=ci, n=n, effect=effect, clear=clear, caveat=caveat,
                   examples=_examples_for(rule_key, source, entry))


def _family(rule_key: str, rule: Rule, members: list[tuple[str, str, Mapping[str, Any]]], source: _Source,
            metrics: Mapping[str, Any], head: str, tail: str) -> Finding | None:
    """One finding for a per-group family: its worst group (ideal) or its largest gap (no ideal)."""
    rows = [(group, name, _num(e.get("value")), _ci(e), _int(e.get("n"))) for group, name, e in members]
    rows = [r for r in rows if r[2] is not None]
    if len(rows) < 2:
        return None
    usable = [r for r in rows if r[3] is not None and not ci_problem(r[2], list(r[3]), r[4])] or rows
    skipped = [f"{r[0]} (n = {fmt(r[4])}, no usable CI)" for r in rows if r not in usable]
    quantity = head.rsplit(".", 1)[-1] if not tail else tail
    if rule.kind == "worst group":  # a benchmark score with an ideal, e.g. 50 for CrowS-Pairs, 0 for BBQ
        group, name, value, ci, n = max(usable, key=lambda r: abs(r[2] - rule.ideal))
        effect = min(1.0, abs(value - rule.ideal) / rule.scale)
        if effect <= 0:
            return None
        clear, caveat = _judge(value, ci, n, rule.ideal)
        title = (f"{rule.label}, worst group {group}: {fmt(value)} {fmt_ci(ci)}, n = {fmt(n)} "
                 f"({rule.null}: {fmt(rule.ideal)})")
        if skipped:
            caveat = "; ".join(filter(None, [caveat, "not ranked: " + ", ".join(skipped)]))
        return Finding(kind=rule.kind, title=title, metric=name, section=source.key, model=source.model,
                       model_id=source.model_id, value=value, ci95=ci, n=n, effect=effect, clear=clear,
                       caveat=caveat, examples=_examples_for(rule_key, source, members[0][2], group=group))
    better = rule.better or ("higher" if quantity in _HIGHER_IS_BETTER else
                             "" if quantity == "selection_rate" else "lower")
    if any(not 0.0 <= r[2] <= 1.0 for r in rows):
        return None  # not a rate: a gap has no common scale
    high = max(usable, key=lambda r: r[2])
    low = min(usable, key=lambda r: r[2])
    gap = high[2] - low[2]
    if gap <= 0:
        return None
    worst, best = (low, high) if better == "higher" else (high, low)
    diff = metrics.get(f"{head}.difference") if not tail else None
    recorded = _num(diff.get("value")) if isinstance(diff, Mapping) else None
    if isinstance(diff, Mapping) and recorded is not None and abs(recorded - gap) <= 1e-9:
        gap_ci, gap_n = _ci(diff), _int(diff.get("n"))
        clear, caveat = _judge(gap, gap_ci, gap_n, 0.0)
        metric = f"{head}.difference"
    else:
        gap_ci, gap_n, metric = None, None, worst[1]
        apart = worst[3] is not None and best[3] is not None and (worst[3][0] > best[3][1] or best[3][0] > worst[3][1])
        clear = apart
        caveat = "" if apart else "the two groups' 95% CIs overlap"
    side = {"higher": " (higher is better)", "lower": " (lower is better)"}.get(better, "")
    title = (f"{quantity.replace('_', ' ')} gap across groups {fmt(gap)}{' ' + fmt_ci(gap_ci) if gap_ci else ''}: "
             f"{worst[0]} {fmt(worst[2])} {fmt_ci(worst[3])} (n = {fmt(worst[4])}) vs {best[0]} {fmt(best[2])} "
             f"{fmt_ci(best[3])} (n = {fmt(best[4])}){side}")
    if skipped:
        caveat = "; ".join(filter(None, [caveat, "not ranked: " + ", ".join(skipped)]))
    return Finding(kind=rule.kind, title=title, metric=metric, section=source.key, model=source.model,
                   model_id=source.model_id, value=gap, ci95=gap_ci, n=gap_n, effect=min(1.0, gap / rule.scale),
                   clear=clear, caveat=caveat, examples=_examples_for(rule_key, source, members[0][2]))


def _gate_findings(results: Mapping[str, Any], sources: Sequence[_Source]) -> list[Finding]:
    out = []
    for g in results.get("gates") or []:
        if not isinstance(g, Mapping) or g.get("passed"):
            continue
        name = str(g.get("metric", "?"))
        source = _owner(name, sources)
        ci = g.get("ci95")
        out.append(Finding(kind="gate", title=f"gate failed: {g.get('message') or name}", metric=name,
                           section=source.key if source else "",
                           model=source.model if source else "", model_id=source.model_id if source else "",
                           value=_num(g.get("value")),
                           ci95=_ci({"ci95": ci}) if ci is not None else None, n=None, effect=1.0, clear=True,
                           caveat=str(g.get("ci_problem") or "")))
    return out


def findings(results: Mapping[str, Any], *, merge: bool = True) -> list[Finding]:
    """Every finding of a run, most important first.

    Failed gates come first; then findings whose 95% CI excludes "no bias", largest effect first; then
    the rest (CI includes "no bias", no CI, or an interval that is no evidence), largest effect first.
    Effects of zero are not findings.

    Parameters
    ----------
    results : mapping
        A parsed ``results.json``.
    merge : bool
        Fold the same finding on re-audited models into the strongest one (its ``also`` names the
        others), as the report shows them; False keeps one finding per model (each model's card).

    Returns
    -------
    list of Finding
    """
    metrics = results.get("metrics") or {}
    sources = _sources(results)
    found: list[tuple[str, Finding]] = []
    families: dict[tuple[str, str, str, str], tuple[Rule, list[tuple[str, str, Mapping[str, Any]]]]] = {}
    for name, entry in metrics.items():
        source = _owner(name, sources)
        if source is None or not isinstance(entry, Mapping):
            continue
        relative = source.base + name[len(source.key):]
        rule = _rule(name, source)
        if rule is None:
            continue
        if rule.family:
            m = _FAMILY.match(name)
            if m:
                families.setdefault((source.key, rule.name, m["head"], m["tail"] or ""), (rule, []))[1].append(
                    (m["group"], name, entry))
            continue
        one = _single(rule.name, rule, name, entry, source, metrics)
        if one:
            found.append((relative, one))
    by_key = {s.key: s for s in sources}
    for (key, rule_key, head, tail), (rule, members) in families.items():
        source = by_key[key]
        one = _family(rule_key, rule, members, source, metrics, head, tail)
        if one:
            relative = source.base + head[len(source.key):] + (f".{tail}" if tail else "") + ".groups"
            found.append((relative, one))
    # fold the same finding on re-audited models into the strongest one
    merged: dict[str, list[Finding]] = {}
    for relative, f in found:
        merged.setdefault(relative, []).append(f)
    out = []
    for group in merged.values():
        group.sort(key=lambda f: (not f.clear, -f.effect))
        if not merge:
            out += group
            continue
        main, rest = group[0], group[1:]
        out.append(replace(main, also=tuple(f"{f.model_text}: {f.value_text} {f.ci_text}" for f in rest)))
    out.sort(key=lambda f: (not f.clear, -f.effect, f.section, f.metric))
    gated = []
    for g in _gate_findings(results, sources):  # a failed gate carries its metric's examples, once
        same = [f for f in out if f.metric == g.metric and f.section == g.section]
        gated.append(replace(g, examples=tuple(e for f in same for e in f.examples),
                             also=tuple(a for f in same for a in f.also)))
        out = [f for f in out if f not in same]
    return gated + out


def has_no_bias_value(results: Mapping[str, Any], name: str) -> bool:
    """Whether a findings rule of its section judges metric ``name`` against a no-bias value."""
    source = _owner(name, _sources(results))
    return source is not None and _rule(name, source) is not None


def headline(all_findings: Sequence[Finding], *, n: int = 8) -> list[Finding]:
    """The findings to show first: the top ``n``, plus the strongest of each kind not among them.

    A failing behaviour test or a privacy result is never hidden behind eight larger association effects.
    """
    top = list(all_findings[:n])
    kinds = {f.kind for f in top}
    for f in all_findings[n:]:
        if f.kind not in kinds:
            top.append(f)
            kinds.add(f.kind)
    return top


def verdict_scope(results: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """Which models the verdict applies to: (models a gate judges, models no gate judges).

    A gate judges the model of the section that owns its metric. Models are named ``key (id)``.
    """
    sources = _sources(results)
    models = results.get("models") or {}
    judged: list[str] = []
    for g in results.get("gates") or []:
        source = _owner(str(g.get("metric", "")), sources) if isinstance(g, Mapping) else None
        if source and source.model and source.model not in judged:
            judged.append(source.model)

    def name(key: str) -> str:
        entry = models.get(key) if isinstance(models.get(key), Mapping) else {}
        model_id = str(entry.get("id") or "")
        return f"{key} ({model_id})" if model_id and model_id != key else key

    audited = list(dict.fromkeys(list(models) + [s.model for s in sources if s.model]))
    return [name(k) for k in judged], [name(k) for k in audited if k not in judged]


@dataclass(frozen=True)
class FindingsView:
    """What the report shows of the findings: the headline ones, the rest, and whom the verdict judges."""

    shown: tuple[Finding, ...]
    rest: tuple[Finding, ...]
    judged: tuple[str, ...]
    unjudged: tuple[str, ...]

    @property
    def total(self) -> int:
        """The number of findings."""
        return len(self.shown) + len(self.rest)


def findings_view(results: Mapping[str, Any], *, n: int = 8) -> FindingsView:
    """:func:`findings` split into the headline (:func:`headline`) and the rest, with :func:`verdict_scope`."""
    every = findings(results)
    shown = headline(every, n=n)
    judged, unjudged = verdict_scope(results)
    return FindingsView(shown=tuple(shown), rest=tuple(f for f in every if f not in shown), judged=tuple(judged),
                        unjudged=tuple(unjudged))
