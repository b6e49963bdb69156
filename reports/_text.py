"""Text reports: a short Markdown summary for a pull request, JUnit XML for CI, a model-card section."""
from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from raikit.audits.escape import clean_tree, for_markdown, for_xml, md_code
from raikit.reports._view import (fmt, fmt_ci, gate_rows, limitations, report_options, threshold_text, verdict,
                                  verdict_badge)

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

    results = clean_tree(results)
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


def _yaml_str(text: Any) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(str(text), ensure_ascii=False)


def _task(kind: str | None) -> tuple[str, str]:
    return {"classifier": ("text-classification", "Text Classification"),
            "masked_lm": ("fill-mask", "Fill-Mask"), "causal_lm": ("text-generation", "Text Generation"),
            "encoder": ("feature-extraction", "Feature Extraction")}.get(str(kind), ("other", "Other"))


#: Sections whose data set is a data set on the Hugging Face Hub: probe -> (Hub id, name). Only these go
#: into a card's ``model-index``; the others (raikit's templates and lexicons) are in the card's text only.
HUB_DATASETS = {"crows_pairs": ("nyu-mll/crows_pairs", "CrowS-Pairs"),
                "stereoset": ("McGill-NLP/stereoset", "StereoSet"),
                "honest": ("MilaNLProc/honest", "HONEST")}

#: What is known of raikit's built-in models: Hub base model, how it relates, licence.
BUILTIN_CARD_FACTS = {
    "builtin:smollm2-135m": {"base_model": "HuggingFaceTB/SmolLM2-135M-Instruct", "base_model_relation": "quantized",
                             "license": "apache-2.0"},
    "builtin:minilm-l6": {"base_model": "sentence-transformers/all-MiniLM-L6-v2", "license": "apache-2.0"},
    "builtin:minilm-sentiment": {"base_model": "sentence-transformers/all-MiniLM-L6-v2",
                                 "base_model_relation": "finetune"},
}


def card_models(results: Mapping[str, Any]) -> list[str]:
    """Keys of the models that get a model card: those at least one section ran on."""
    sections = results.get("sections") or {}
    used = {str(s.get("model")) for s in sections.values() if isinstance(s, Mapping) and s.get("model")}
    return [k for k in (results.get("models") or {}) if k in used]


def _own_metrics(results: Mapping[str, Any], skey: str) -> list[tuple[str, Mapping[str, Any]]]:
    """The finite metrics of section ``skey`` that no longer section key owns."""
    metrics = results.get("metrics") or {}
    longer = [k for k in (results.get("sections") or {}) if k != skey and k.startswith(skey + ".")]
    return [(n, e) for n, e in metrics.items()
            if n.startswith(skey + ".") and not any(n.startswith(k + ".") for k in longer)
            and isinstance(e, Mapping) and isinstance(e.get("value"), (int, float))
            and not isinstance(e.get("value"), bool) and math.isfinite(e["value"])]


def render_model_card(results: Mapping[str, Any], *, model: str) -> str:
    """The Hugging Face model card of one audited model, with a ``model-index`` of its results only.

    The YAML front matter holds ``license`` and ``base_model`` where they are known (raikit's built-in
    models), tags, and one ``model-index`` entry for this model whose results are the sections run on it
    that use a data set on the Hub (:data:`HUB_DATASETS`; each metric with its 95% CI as ``args``). The
    body follows the sections of the Hub's model card template: Model Details, Uses, Bias, Risks, and
    Limitations (this model's findings and the run's limitations), Evaluation (every metric of this
    model with its CI, the gates on it), Technical Specifications and Citation. It loads with
    ``huggingface_hub.ModelCard.load``.

    Parameters
    ----------
    results : mapping
        A parsed ``results.json``.
    model : str
        The model's key in ``results["models"]``.

    Returns
    -------
    str
        Markdown starting with ``---`` YAML front matter.

    Raises
    ------
    RaikitInputError
        When ``model`` is not a model of the run.
    """
    from raikit.audits.errors import RaikitInputError
    from raikit.reports._findings import findings

    results = clean_tree(results)
    models = results.get("models") or {}
    if model not in models:
        raise RaikitInputError(f"no model {model!r} in the results; models: {', '.join(models) or 'none'}",
                               where="model card")
    return _card(results, model, findings(results))


def _card(results: Mapping[str, Any], model: str, every: Sequence[Any]) -> str:
    """:func:`render_model_card` of cleaned ``results`` with the run's findings already computed."""
    models = results.get("models") or {}
    entry = models[model] if isinstance(models[model], Mapping) else {}
    model_id = str(entry.get("id") or model)
    run = results.get("run") or {}
    sections = {k: s for k, s in (results.get("sections") or {}).items()
                if isinstance(s, Mapping) and s.get("model") == model}
    options = report_options(results)
    facts = BUILTIN_CARD_FACTS.get(model_id, {})
    front = ["---"]
    if facts.get("license"):
        front.append(f"license: {facts['license']}")
    if facts.get("base_model"):
        front.append(f"base_model: {_yaml_str(facts['base_model'])}")
        if facts.get("base_model_relation"):
            front.append(f"base_model_relation: {facts['base_model_relation']}")
    task_type, task_name = _task(entry.get("kind"))
    if task_type != "other":
        front.append(f"pipeline_tag: {task_type}")
    front += ["tags:", "- raikit", "- responsible-ai", "- bias-evaluation", "model-index:"]
    results_yaml: list[str] = []
    for skey, section in sections.items():
        hub = HUB_DATASETS.get(str(section.get("probe") or ""))
        own = _own_metrics(results, skey)
        if hub is None or not own:
            continue
        results_yaml += ["  - task:", f"      type: {task_type}", f"      name: {_yaml_str(task_name)}",
                         "    dataset:", f"      type: {_yaml_str(hub[0])}", f"      name: {_yaml_str(hub[1])}",
                         "    metrics:"]
        for name, metric in own:
            results_yaml += [f"      - type: {_yaml_str(name[len(skey) + 1:])}",
                             f"        value: {float(metric['value'])!r}",
                             f"        name: {_yaml_str(name)}"]
            ci = metric.get("ci95")
            if isinstance(ci, list) and len(ci) == 2 and all(isinstance(b, (int, float)) for b in ci):
                results_yaml.append(f"        args: {{ci95_low: {float(ci[0])!r}, ci95_high: {float(ci[1])!r}}}")
    if results_yaml:
        front += [f"- name: {_yaml_str(model_id)}", "  results:", *results_yaml]
    else:
        front[-1] = "model-index: []"
    front.append("---")

    when = for_markdown(run.get("finished") or run.get("started") or "?")
    meta = entry.get("metadata") if isinstance(entry.get("metadata"), Mapping) else {}
    body = ["", f"# Model card for {for_markdown(model_id)}", "",
            f"Evaluated by raikit {for_markdown(run.get('raikit_version', '?'))} on {when} (run "
            f"{md_code(run.get('id', '-'), table=False)}, seed {fmt(run.get('seed'))}, config sha256 "
            f"{md_code(str(run.get('config_sha256') or '-')[:12], table=False)}); audit key "
            f"{md_code(model, table=False)}.", "", "## Model Details", "", "### Model Description", ""]
    described = [("model", model_id), ("kind", entry.get("kind")), ("architecture", entry.get("architecture")),
                 ("parameters", fmt(entry.get("n_parameters")) if entry.get("n_parameters") is not None else None),
                 ("dtype", entry.get("dtype")), ("source", meta.get("source")),
                 ("retrained from", entry.get("retrained_from")), ("base model", facts.get("base_model")),
                 ("license", facts.get("license") or "More Information Needed")]
    body += [f"- **{k}**: {for_markdown(v)}" for k, v in described if v not in (None, "")]
    body += ["", "## Uses", "", for_markdown(options["intended_use"]) if options["intended_use"] else
             "More Information Needed", "", "## Bias, Risks, and Limitations", ""]
    own_findings = [f for f in every if f.model == model]
    if own_findings:
        body.append("What raikit found on this model, largest effect first (95% CI; clear = the CI excludes "
                    "no bias):")
        body.append("")
        for f in own_findings:
            body.append(f"- {'clear' if f.clear else 'uncertain'} {for_markdown(f.kind)}: {for_markdown(f.title)}"
                        + (f" ({for_markdown(f.caveat)})" if f.caveat else ""))
            body += [f"  - example: {for_markdown(e)}" for e in f.examples[:2]]
    else:
        body.append("raikit measured no effect on this model that departs from its no-bias value.")
    limits = [x for x in limitations(results) if any(x.startswith(k + ":") for k in sections)]
    if limits:
        body += ["", "Limits of this evaluation:", ""] + [f"- {for_markdown(x)}" for x in limits]
    trained = [(k, v) for k, v in meta.items()
               if k not in ("alias", "source") and isinstance(v, (str, int, float, bool)) and not isinstance(v, bool)]
    training = ["", "## Training Details", ""]
    training += ([f"- {for_markdown(k.replace('_', ' '))}: {for_markdown(fmt(v) if not isinstance(v, str) else v)}"
                  for k, v in trained] or ["More Information Needed"])
    body += ["", "### Recommendations", "",
             "Read the findings above before deploying the model for any group they name; a passed gate covers "
             "only its own metric and threshold.", *training, "", "## Evaluation", "",
             "### Testing Data, Factors & Metrics", ""]
    body += [f"- {md_code(k, table=False)}: {for_markdown(s.get('description') or k)}" for k, s in sections.items()]
    body += ["", "### Results", "", "| metric | value | 95% CI | n |", "|---|---:|---:|---:|"]
    rows = [(n, e) for k in sections for n, e in _own_metrics(results, k)]
    body += [f"| {md_code(n)} | {fmt(e.get('value'))} | {fmt_ci(e.get('ci95'))} | {fmt(e.get('n'))} |"
             for n, e in rows] or ["| (none) | | | |"]
    gates = [g for g in results.get("gates") or []
             if isinstance(g, Mapping) and any(str(g.get("metric", "")).startswith(k + ".") for k in sections)]
    if gates:
        body += ["", "#### Summary", ""]
        body += [f"- {'pass' if g.get('passed') else 'FAIL'}: {md_code(g.get('metric'), table=False)} "
                 f"{for_markdown(threshold_text(g))}" for g in gates]
    body += ["", "## Technical Specifications", "", f"- weights sha256: "
             f"{md_code(entry.get('weights_sha256') or 'not recorded', table=False)}",
             f"- evaluated on: {for_markdown(entry.get('device') or run.get('device') or '?')}"]
    cites = [(k, s.get("citation")) for k, s in sections.items() if s.get("citation")]
    body += ["", "## Citation", ""]
    body += [f"- {md_code(k, table=False)}: {for_markdown(c)}" for k, c in cites] or ["More Information Needed"]
    return "\n".join(front + body) + "\n"


def render_model_cards(results: Mapping[str, Any]) -> dict[str, str]:
    """One model card per audited model (:func:`card_models`): model key -> card text."""
    from raikit.reports._findings import findings

    results = clean_tree(results)
    every = findings(results)
    return {key: _card(results, key, every) for key in card_models(results)}
