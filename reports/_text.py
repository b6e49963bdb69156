"""Text reports: a short Markdown summary for a pull request, JUnit XML for CI, a model-card section."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from raikit.audits.escape import clean_tree, for_markdown, for_xml, md_code
from raikit.reports._cap import cap_texts
from raikit.reports._card import BUILTIN_CARD_FACTS, HUB_DATASETS, card_models, render_model_card, render_model_cards
from raikit.reports._view import fmt, fmt_ci, gate_rows, limitations, report_options, verdict, verdict_badge

__all__ = ["render_markdown", "render_junit", "render_model_card", "render_model_cards", "card_models",
           "HUB_DATASETS", "BUILTIN_CARD_FACTS"]

_TOP = 15


def _top_metrics(results: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """Metrics with gates first, then the headline ones (not per-group), in results order."""
    metrics = results.get("metrics") or {}
    gated = [g.get("metric") for g in results.get("gates") or []]
    names = [n for n in dict.fromkeys(gated) if n in metrics]
    names += [n for n in metrics if n not in names and ".by_" not in n]
    return [(n, metrics[n]) for n in names[:_TOP]]


def _finding_lines(items: Any, *, start: int = 1, html: str = "report.html") -> list[str]:
    """Numbered Markdown lines for findings, each with its model, section link, caveat and examples."""
    lines = []
    for i, f in enumerate(items, start):
        mark = "🔴" if f.clear else "⚪"
        lines.append(f"{i}. {mark} **{for_markdown(f.kind)}**: {for_markdown(f.title)}  ")
        target = f"section {for_markdown(f.section)}" if f.section else "the verdict"
        model = f"model {md_code(f.model_text, table=False)}, " if f.model else ""
        where = f"{model}[{target}]({html}#{quote(f.anchor, safe='')})"
        lines.append(f"   {where}" + (f"; {for_markdown(f.caveat)}" if f.caveat else ""))
        lines += [f"   - {for_markdown(e)}" for e in f.examples]
        if f.also:
            lines.append(f"   - also on: {for_markdown('; '.join(f.also))}")
    return lines


def render_markdown(results: Mapping[str, Any]) -> str:
    """A short summary for a pull-request comment: findings first, then verdict, gates and top metrics.

    Parameters
    ----------
    results : mapping
        A parsed ``results.json``.

    Returns
    -------
    str
        GitHub-flavoured Markdown; text from results is escaped. After the title comes the list of
        findings (:func:`raikit.reports._findings.findings_view`), each linking to its section of
        ``report.html``.
    """
    from raikit.reports._findings import findings_view

    results = cap_texts(clean_tree(results))
    run = results.get("run") or {}
    options = report_options(results)
    state = verdict(results)
    icon = {"PASS": "✅", "FAIL": "❌"}.get(state, "➖")
    gates = gate_rows(results)
    view = findings_view(results)
    lines = [f"## {for_markdown(options['title'])}", "", "### Findings", ""]
    if view.total:
        lines.append(f"Largest effects and worst groups across all sections, ranked by effect; 🔴 the 95% CI "
                     f"excludes no bias, ⚪ it does not. {len(view.shown)} of {view.total}:")
        lines.append("")
        lines += _finding_lines(view.shown)
        if view.rest:
            lines += ["", f"<details><summary>{len(view.rest)} more findings</summary>", ""]
            lines += _finding_lines(view.rest, start=len(view.shown) + 1)
            lines += ["", "</details>"]
    elif not results.get("metrics"):
        lines.append("Nothing was measured: no section ran, so there is no finding to report and no evidence of "
                     "its absence.")
    else:
        lines.append("No finding: no measured effect departs from its no-bias value.")
    passed = sum(g.passed for g in gates)
    when = run.get("finished") or run.get("started") or "-"
    lines += ["", f"### Verdict: {icon} {verdict_badge(results)}", ""]
    lines.append(f"Run {md_code(run.get('id', '-'))} ({for_markdown(when)}), "
                 f"raikit {for_markdown(run.get('raikit_version', '?'))}, seed {fmt(run.get('seed'))}, config sha256 "
                 f"{md_code(str(run.get('config_sha256') or '-')[:12])}.")
    lines.append("")
    if gates:
        scope = f"The verdict applies to {for_markdown(', '.join(view.judged))} only"
        if view.unjudged:
            scope += f"; no gate judges {for_markdown(', '.join(view.unjudged))}"
        lines += [f"**Gates: {passed} of {len(gates)} passed.** {scope}.", "",
                  "| gate | result | value | 95% CI | threshold | supports |", "|---|---|---:|---:|---|---|"]
        lines += [f"| {md_code(g.metric)} | {'pass' if g.passed else '**FAIL**'} | {g.value} | {g.ci} | "
                  f"{for_markdown(g.threshold)} | {for_markdown('; '.join(g.clauses))} |" for g in gates]
    else:
        lines.append("No gates were configured: this run makes no pass/fail claim.")
    top = _top_metrics(results)
    if top:
        lines += ["", "| metric | value | 95% CI | n |", "|---|---:|---:|---:|"]
        lines += [f"| {md_code(name)} | {fmt(e.get('value'))} | {fmt_ci(e.get('ci95'))} | {fmt(e.get('n'))} |"
                  for name, e in top]
        rest = len(results.get("metrics") or {}) - len(top)
        if rest > 0:
            lines.append(f"\n{rest} more metrics in the full report.")
    limits = limitations(results)
    if limits:
        lines += ["", "<details><summary>Limitations</summary>", ""]
        lines += [f"- {for_markdown(x)}" for x in limits]
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def render_junit(results: Mapping[str, Any]) -> str:
    """JUnit XML with one ``<testcase>`` per gate and a ``<failure>`` for each failed gate.

    Returns
    -------
    str
        An XML document with a ``<testsuites>`` root holding one ``<testsuite name="raikit">``.
    """
    results = clean_tree(results)  # XML 1.0 cannot hold most control characters, even escaped
    run = results.get("run") or {}
    gates = gate_rows(results)
    failures = sum(not g.passed for g in gates)
    seconds = sum(float(v) for v in (run.get("section_seconds") or {}).values() if isinstance(v, (int, float)))
    root = ET.Element("testsuites", name="raikit", tests=str(len(gates)), failures=str(failures), errors="0",
                      time=f"{seconds:.3f}")
    suite = ET.SubElement(root, "testsuite", name="raikit", tests=str(len(gates)), failures=str(failures),
                          errors="0", skipped="0", time=f"{seconds:.3f}")
    if run.get("finished") or run.get("started"):
        suite.set("timestamp", str(run.get("finished") or run.get("started")))
    props = ET.SubElement(suite, "properties")
    for key in ("id", "raikit_version", "config_path", "config_sha256", "seed", "device"):
        if run.get(key) is not None:
            ET.SubElement(props, "property", name=f"raikit.{key}", value=for_xml(run[key]))
    for g in gates:
        case = ET.SubElement(suite, "testcase", classname="raikit.gates", name=for_xml(g.metric), time="0")
        text = (f"value {g.value}, 95% CI {g.ci}, compared {g.compared}, threshold {g.threshold}; "
                f"supports: {'; '.join(g.clauses) or 'none mapped'}")
        if g.passed:
            ET.SubElement(case, "system-out").text = text
        else:
            failure = ET.SubElement(case, "failure", message=g.message or f"{g.metric} failed its gate",
                                    type="GateFailed")
            failure.text = text
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
