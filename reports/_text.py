"""Text reports: a short Markdown summary for a pull request, JUnit XML for CI, a model-card section."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

from raikit.audits.escape import clean_tree, for_markdown, for_xml, md_code
from raikit.reports._view import fmt, fmt_ci, gate_rows, limitations, report_options, threshold_text, verdict

__all__ = ["render_markdown", "render_junit", "render_model_card"]

_TOP = 15


def _top_metrics(results: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """Metrics with gates first, then the headline ones (not per-group), in results order."""
    metrics = results.get("metrics") or {}
    gated = [g.get("metric") for g in results.get("gates") or []]
    names = [n for n in dict.fromkeys(gated) if n in metrics]
    names += [n for n in metrics if n not in names and ".by_" not in n]
    return [(n, metrics[n]) for n in names[:_TOP]]


def render_markdown(results: Mapping[str, Any]) -> str:
    """A short summary for a pull-request comment: verdict, gates table, top metrics with CIs.

    Parameters
    ----------
    results : mapping
        A parsed ``results.json``.

    Returns
    -------
    str
        GitHub-flavoured Markdown; text from results is escaped.
    """
    results = clean_tree(results)
    run = results.get("run") or {}
    options = report_options(results)
    state = verdict(results)
    icon = {"PASS": "✅", "FAIL": "❌"}.get(state, "➖")
    gates = gate_rows(results)
    lines = [f"## {icon} {for_markdown(options['title'])}: {state}", ""]
    passed = sum(g.passed for g in gates)
    when = run.get("finished") or run.get("started") or "-"
    lines.append(f"Run {md_code(run.get('id', '-'))} ({for_markdown(when)}), "
                 f"raikit {for_markdown(run.get('raikit_version', '?'))}, seed {fmt(run.get('seed'))}, config sha256 "
                 f"{md_code(str(run.get('config_sha256') or '-')[:12])}.")
    lines.append("")
    if gates:
        lines += [f"**Gates: {passed} of {len(gates)} passed.**", "",
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


def _yaml_str(text: Any) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(str(text), ensure_ascii=False)


def _task(kind: str | None) -> tuple[str, str]:
    return {"classifier": ("text-classification", "Text Classification"),
            "masked_lm": ("fill-mask", "Fill-Mask"), "causal_lm": ("text-generation", "Text Generation"),
            "encoder": ("feature-extraction", "Feature Extraction")}.get(str(kind), ("other", "Other"))


def render_model_card(results: Mapping[str, Any]) -> str:
    """An evaluation section in HuggingFace model-card format, with ``model-index`` YAML front matter.

    Each model of the run is one ``model-index`` entry; each section run on it is one result (task from
    the model kind, dataset = the section, metrics with type, value and name). The body repeats the
    numbers with their 95% CIs, the gates and the limitations.

    Returns
    -------
    str
        Markdown starting with ``---`` YAML front matter.
    """
    results = clean_tree(results)
    run = results.get("run") or {}
    metrics = results.get("metrics") or {}
    sections = results.get("sections") or {}
    models = results.get("models") or {}
    options = report_options(results)
    front = ["---", "tags:", "- raikit", "- responsible-ai", "- bias-evaluation", "model-index:"]
    entries = 0
    for key, model in models.items():
        task_type, task_name = _task(model.get("kind"))
        results_yaml = []
        for skey, section in sections.items():
            if section.get("model") != key:
                continue
            own = [(n, e) for n, e in metrics.items() if n.startswith(skey + ".") and
                   isinstance(e.get("value"), (int, float)) and not isinstance(e.get("value"), bool)]
            if not own:
                continue
            results_yaml += ["  - task:", f"      type: {task_type}", f"      name: {_yaml_str(task_name)}",
                             "    dataset:", f"      type: {_yaml_str('raikit/' + skey)}",
                             f"      name: {_yaml_str(section.get('description') or skey)}", "    metrics:"]
            for name, entry in own:
                results_yaml += [f"      - type: {_yaml_str(name)}", f"        value: {float(entry['value'])!r}",
                                 f"        name: {_yaml_str(name[len(skey) + 1:])}"]
                if entry.get("ci95") and None not in entry["ci95"]:
                    results_yaml.append(f"        args: {{ci95_low: {float(entry['ci95'][0])!r}, "
                                        f"ci95_high: {float(entry['ci95'][1])!r}}}")
        if results_yaml:
            front += [f"- name: {_yaml_str(model.get('id', key))}", "  results:", *results_yaml]
            entries += 1
    if not entries:
        front[-1] = "model-index: []"
    front.append("---")
    body = ["", "## Evaluation", "",
            f"Evaluated with raikit {for_markdown(run.get('raikit_version', '?'))} on "
            f"{for_markdown(run.get('finished') or run.get('started') or '?')} "
            f"(run {md_code(run.get('id', '-'))}, seed {fmt(run.get('seed'))}, config sha256 "
            f"{md_code(str(run.get('config_sha256') or '-')[:12])})."]
    if options["intended_use"]:
        body += ["", f"Intended use of this evaluation: {for_markdown(options['intended_use'])}"]
    for key, model in models.items():
        body.append(f"- {md_code(key, table=False)}: {for_markdown(model.get('id', '-'))} "
                    f"({for_markdown(model.get('kind', '?'))}), "
                    f"weights sha256 {md_code(model.get('weights_sha256') or 'not recorded', table=False)}")
    body += ["", "### Results", "", "| metric | value | 95% CI | n |", "|---|---:|---:|---:|"]
    body += [f"| {md_code(n)} | {fmt(e.get('value'))} | {fmt_ci(e.get('ci95'))} | {fmt(e.get('n'))} |"
             for n, e in metrics.items()] or ["| (none) | | | |"]
    gates = results.get("gates") or []
    if gates:
        body += ["", f"### Gates: {verdict(results)}", ""]
        body += [f"- {'pass' if g.get('passed') else 'FAIL'}: {md_code(g.get('metric'), table=False)} "
                 f"{for_markdown(threshold_text(g))}"
                 for g in gates]
    cites = [(k, s.get("citation")) for k, s in sections.items() if s.get("citation")]
    if cites:
        body += ["", "### Methods", ""] + [f"- {md_code(k, table=False)}: {for_markdown(c)}" for k, c in cites]
    limits = limitations(results)
    if limits:
        body += ["", "### Limitations", ""] + [f"- {for_markdown(x)}" for x in limits]
    return "\n".join(front + body) + "\n"
