"""Hugging Face model cards: one per audited model, its headline metrics in ``model-index``.

Which model a metric describes: a section's metrics describe the model it ran on, except in a section that
retrained models (``retrained_models``: privacy's ``baseline`` and ``dp``, federated's ``global`` and
``centralized``). There a metric whose name starts with a variant (``dp.accuracy``), ``mia.<variant>``
or ``<variant>_`` (``centralized_accuracy``) describes that retrained model, ``original.*`` the model the
section started from, and the section's other metrics (``accuracy_gap``, ``rounds``) its main product,
the first variant that is not a comparison (:data:`COMPARISON_VARIANTS`).
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from raikit.audits.escape import clean_tree, for_markdown, md_code
from raikit.reports._cap import cap_texts
from raikit.reports._view import fmt, fmt_ci, limitations, metric_rows, report_options, threshold_text

__all__ = ["render_model_card", "render_model_cards", "card_models", "card_metrics", "HUB_DATASETS",
           "BUILTIN_CARD_FACTS", "COMPARISON_VARIANTS"]

#: Probes whose benchmark has a copy on the Hugging Face Hub: probe -> (Hub id, name). The card's
#: ``dataset.type`` is that id (so the Hub links the benchmark); ``dataset.revision`` is the upstream commit the
#: files were read at (``dataset.args.source`` says where), from raikit's data catalog.
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

#: Retrained variants trained only to be compared against (they get their own metrics, not the section's).
COMPARISON_VARIANTS = ("baseline", "centralized", "original")

#: Bookkeeping of the DP guarantee: shown with epsilon (its ``args``), not as metrics of their own.
_DP_FACTS = ("dp.delta", "dp.noise_multiplier", "dp.sample_rate", "dp.steps", "dp.max_grad_norm")

#: Training options of a retraining section that make up the recipe a card states.
_RECIPE = ("data", "max_examples", "held_out", "epochs", "rounds", "local_epochs", "clients", "partition", "strategy",
           "runtime", "batch_size", "physical_batch_size", "learning_rate", "max_length", "scope", "last_layers",
           "lora_rank", "max_grad_norm", "poisson_sampling", "grad_sample_mode", "client_dp", "central_dp")


def _task(kind: str | None) -> tuple[str, str]:
    return {"classifier": ("text-classification", "Text Classification"),
            "masked_lm": ("fill-mask", "Fill-Mask"), "causal_lm": ("text-generation", "Text Generation"),
            "encoder": ("feature-extraction", "Feature Extraction")}.get(str(kind), ("other", "Other"))


def _yaml(value: Any) -> str:
    """A YAML flow value (JSON is valid YAML): strings quoted, numbers as numbers."""
    return json.dumps(value, ensure_ascii=False)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def card_models(results: Mapping[str, Any]) -> list[str]:
    """Keys of the models that get a model card: those at least one section ran on or retrained."""
    sections = results.get("sections") or {}
    used = {str(s.get("model")) for s in sections.values() if isinstance(s, Mapping) and s.get("model")}
    for key, s in sections.items():
        if isinstance(s, Mapping) and isinstance(s.get("retrained_models"), Mapping):
            used |= {f"{key}.{v}" for v in s["retrained_models"]}
    return [k for k in (results.get("models") or {}) if k in used]


def _variants(section: Mapping[str, Any]) -> list[str]:
    return [str(v) for v in section.get("retrained_models") or {}] if isinstance(
        section.get("retrained_models"), Mapping) else []


def _model_of(results: Mapping[str, Any], skey: str, name: str) -> str:
    """The model key a metric of section ``skey`` describes (see the module docstring)."""
    section = (results.get("sections") or {}).get(skey) or {}
    model = str(section.get("model") or "")
    variants = _variants(section)
    if not variants:
        return model
    rel = name[len(skey) + 1:]
    parts = rel.split(".")
    if parts[0] == "original":
        return model
    for v in variants:
        if parts[0] == v or (parts[0] == "mia" and len(parts) > 1 and parts[1] == v) or parts[0].startswith(v + "_"):
            return f"{skey}.{v}"
    main = next((v for v in variants if v not in COMPARISON_VARIANTS), None)
    return f"{skey}.{main}" if main else model


def _owned(results: Mapping[str, Any]) -> dict[str, str]:
    """Metric name -> the section key that owns it (the longest section key that prefixes it)."""
    keys = sorted((results.get("sections") or {}), key=len, reverse=True)
    out = {}
    for name in results.get("metrics") or {}:
        owner = next((k for k in keys if name.startswith(k + ".")), None)
        if owner is not None:
            out[name] = owner
    return out


def card_metrics(results: Mapping[str, Any], model: str) -> list[tuple[str, str, Mapping[str, Any]]]:
    """``(section key, metric name, entry)`` of every finite metric that describes ``model``, in results order."""
    metrics = results.get("metrics") or {}
    out = []
    for name, skey in _owned(results).items():
        entry = metrics[name]
        if isinstance(entry, Mapping) and _number(entry.get("value")) is not None and \
                _model_of(results, skey, name) == model:
            out.append((skey, name, entry))
    return out


def _headline(rel: str) -> bool:
    """A metric for ``model-index``: not one group's value, not a per-client or per-template breakdown."""
    parts = rel.split(".")
    return not any(p.startswith("by_") or p == "per_client" for p in parts) and rel not in _DP_FACTS


def _dataset(results: Mapping[str, Any], skey: str) -> dict[str, Any]:
    """The ``dataset`` entry of a section: Hub id or source, name, revision and where the files came from."""
    from raikit.audits.datasets import catalog, set_of

    sections = results.get("sections") or {}
    section = sections.get(skey) or {}
    base = sections.get(str(section.get("reaudit_of") or "")) or section
    probe = str(base.get("probe") or "")
    options = base.get("options") if isinstance(base.get("options"), Mapping) else {}
    details = base.get("details") if isinstance(base.get("details"), Mapping) else {}
    version = str((results.get("run") or {}).get("raikit_version") or "?")
    data = details.get("data") if isinstance(details.get("data"), Mapping) else {}
    if data.get("source"):  # privacy, federated: labelled texts with their SHA-256
        source = str(data["source"])
        rows = f", {data['rows']} rows" if data.get("rows") is not None else ""
        return {"type": source.replace("builtin:", "raikit/"), "name": f"{source}{rows}",
                "revision": str(data.get("sha256") or "") or None, "args": {"revision_is": "sha256 of the texts read"}}
    paths = _paths(options)
    known = catalog()
    sets = list(dict.fromkeys(n for n in (set_of(t) for t in paths) if n in known))
    if paths and not paths[0].startswith("builtin:") and set_of(paths[0]) in known:
        name = set_of(paths[0])
        entry = known[name]
        hub = HUB_DATASETS.get(probe)
        args = {"source": f"https://github.com/{entry.repository}", "raikit_data_set": name}
        if len(sets) > 1:
            args["also"] = ", ".join(sets[1:])
        return {"type": hub[0] if hub else entry.repository, "name": hub[1] if hub else entry.title,
                "revision": entry.commit, "args": args}
    if not paths and probe in HUB_DATASETS and probe in known:  # a benchmark read from its default place
        entry = known[probe]
        return {"type": HUB_DATASETS[probe][0], "name": HUB_DATASETS[probe][1], "revision": entry.commit,
                "args": {"source": f"https://github.com/{entry.repository}", "raikit_data_set": probe}}
    builtin = [t for t in paths if t.startswith("builtin:")]
    if paths and paths[0].startswith("builtin:"):
        args = {"files": ", ".join(builtin)}
        if sets:
            args["also"] = ", ".join(f"{n} ({known[n].repository}@{known[n].commit[:12]})" for n in sets)
        return {"type": "raikit/starter-templates", "name": "raikit starter templates and lexicons",
                "revision": f"raikit {version}", "args": args}
    if paths:
        return {"type": "local", "name": ", ".join(paths)[:200], "revision": None,
                "args": {"note": "a file of the user's; its SHA-256 is in results.json where recorded"}}
    return {"type": "raikit/built-in-examples", "name": f"raikit {probe} built-in inputs", "revision": f"raikit {version}"}


#: Options that name a section's own inputs, most telling first (the data set a card names is the first set).
_INPUT_KEYS = ("data", "texts", "texts_file", "templates", "data_dir", "lexicons", "swaps", "hurtlex")


def _paths(options: Mapping[str, Any]) -> list[str]:
    """The file options of a section (paths, ``builtin:`` files), its input keys first."""
    keys = [k for k in _INPUT_KEYS if k in options] + [k for k in options if k not in _INPUT_KEYS]
    out = []
    for key in keys:
        values = options[key] if isinstance(options[key], list) else [options[key]]
        out += [v for v in values if isinstance(v, str) and v and ("/" in v or v.startswith("builtin:"))]
    return out


def _metric_yaml(skey: str, name: str, entry: Mapping[str, Any], labels: Mapping[str, str],
                 dp: Mapping[str, Any]) -> list[str]:
    short = name[len(skey) + 1:]
    label = labels.get(name, "")
    ci = entry.get("ci95")
    n = entry.get("n")
    interval = (f"95% CI [{fmt(ci[0])}, {fmt(ci[1])}]" if isinstance(ci, list) and len(ci) == 2
                and all(_number(b) is not None for b in ci) else "no 95% CI")
    pretty = f"{name}: {label}, {interval}, n = {fmt(n)}" if label else f"{name}: {interval}, n = {fmt(n)}"
    args: dict[str, Any] = {}
    if interval != "no 95% CI":
        args.update(ci95_low=float(ci[0]), ci95_high=float(ci[1]))
    if _number(n) is not None:
        args["n"] = int(n)
    if short == "dp.epsilon" and dp:
        args.update({k: dp[k] for k in ("delta", "accountant", "noise_multiplier", "sample_rate", "steps",
                                       "max_grad_norm", "poisson_sampling") if k in dp})
        args["covers"] = "each example of the retraining data (example-level DP-SGD), not the starting model's data"
    lines = [f"      - type: {_yaml(short)}", f"        value: {float(entry['value'])!r}", f"        name: {_yaml(pretty)}"]
    if args:
        lines.append(f"        args: {_yaml(args)}")
    return lines


def _model_index(results: Mapping[str, Any], model: str, model_id: str, task: tuple[str, str],
                 rows: Sequence[tuple[str, str, Mapping[str, Any]]], dp: Mapping[str, Any]) -> list[str]:
    gated = {str(g.get("metric")) for g in results.get("gates") or [] if isinstance(g, Mapping)}
    by_section: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
    for skey, name, entry in rows:
        if name in gated or _headline(name[len(skey) + 1:]):
            by_section.setdefault(skey, []).append((name, entry))
    out: list[str] = []
    for skey, metrics in by_section.items():
        data = _dataset(results, skey)
        out += ["  - task:", f"      type: {task[0]}", f"      name: {_yaml(task[1])}", "    dataset:",
                f"      type: {_yaml(data['type'])}", f"      name: {_yaml(data['name'])}"]
        if data.get("revision"):
            out.append(f"      revision: {_yaml(data['revision'])}")
        if data.get("args"):
            out.append(f"      args: {_yaml(data['args'])}")
        out.append("    metrics:")
        labels = {row.name: row.label for row in metric_rows(results, skey)}
        for name, entry in metrics:
            out += _metric_yaml(skey, name, entry, labels, dp)
    if not out:
        return ["model-index: []"]
    return ["model-index:", f"- name: {_yaml(model_id)}", "  results:", *out]


def render_model_card(results: Mapping[str, Any], *, model: str) -> str:
    """The Hugging Face model card of one audited model, with a ``model-index`` of its headline results.

    The YAML front matter holds ``license`` and ``base_model`` where they are known (raikit's built-in
    models), tags, and one ``model-index`` entry for this model: per section that measured it, the task,
    the data set (Hub id or source, its revision) and every gated or headline metric (not per-group
    breakdowns), each with its 95% CI and n in ``name`` and ``args``; a DP model's epsilon carries its
    delta, accountant and what it covers. The body follows the Hub's model card template: Model Details,
    Uses, Bias, Risks, and Limitations (this model's findings, or what was measured and found at its
    no-bias value), Training Details (a retrained model's recipe and DP guarantee), Evaluation (every metric
    of this model with its CI, the gates on it), Technical Specifications and Citation. Texts longer
    than :data:`raikit.reports._cap.TEXT_CAP` are cut, saying so. It loads with
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

    results = cap_texts(clean_tree(results))
    models = results.get("models") or {}
    if model not in models:
        raise RaikitInputError(f"no model {model!r} in the results; models: {', '.join(models) or 'none'}",
                               where="model card")
    return _card(results, model, findings(results, merge=False))


def render_model_cards(results: Mapping[str, Any]) -> dict[str, str]:
    """One model card per audited model (:func:`card_models`): model key -> card text."""
    from raikit.reports._findings import findings

    results = cap_texts(clean_tree(results))
    every = findings(results, merge=False)
    return {key: _card(results, key, every) for key in card_models(results)}


def _retraining(results: Mapping[str, Any], model: str) -> tuple[str, str, Mapping[str, Any]] | None:
    """``(section key, variant, section)`` of the section that retrained ``model``, or None."""
    for key, s in (results.get("sections") or {}).items():
        if isinstance(s, Mapping) and model.startswith(key + ".") and model[len(key) + 1:] in _variants(s):
            return key, model[len(key) + 1:], s
    return None


def _dp_facts(entry: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = entry.get("metadata") if isinstance(entry.get("metadata"), Mapping) else {}
    dp = meta.get("dp")
    return dp if isinstance(dp, Mapping) and _number(dp.get("epsilon")) is not None else {}


def _training_lines(results: Mapping[str, Any], model: str, entry: Mapping[str, Any]) -> list[str]:
    meta = entry.get("metadata") if isinstance(entry.get("metadata"), Mapping) else {}
    lines = [f"- {for_markdown(k.replace('_', ' '))}: {for_markdown(v if isinstance(v, str) else fmt(v))}"
             for k, v in meta.items() if k not in ("alias", "source", "dp") and isinstance(v, (str, int, float))
             and not isinstance(v, bool)]
    found = _retraining(results, model)
    if found is not None:
        key, variant, section = found
        options = section.get("options") if isinstance(section.get("options"), Mapping) else {}
        unused = {"lora_rank"} if options.get("scope") != "lora" else set()
        unused |= {"last_layers"} if options.get("scope") != "last_layers" else set()
        unused |= {"max_grad_norm"} if section.get("capability") == "federated" and not options.get("client_dp") else set()
        recipe = ", ".join(f"{k} = {v if isinstance(v, str) else json.dumps(v)}" for k, v in options.items()
                           if k in _RECIPE and k not in unused)
        lines.insert(0, f"- recipe: the {for_markdown(variant)} model of {md_code(key, table=False)}, retrained from "
                        f"{md_code(section.get('model'), table=False)} with {for_markdown(recipe)}")
    dp = _dp_facts(entry)
    if dp:
        delta = dp.get("delta")
        lines += ["", "### Differential privacy", "",
                  f"Trained with DP-SGD (Opacus) under an (epsilon, delta) = ({fmt(dp.get('epsilon'))}, {fmt(delta)}) "
                  f"guarantee, certified by the {for_markdown(str(dp.get('accountant') or '?').upper())} accountant "
                  f"(target epsilon {fmt(dp.get('target_epsilon'))}) over {fmt(dp.get('steps'))} steps at sample rate "
                  f"{fmt(dp.get('sample_rate'))}, noise multiplier {fmt(dp.get('noise_multiplier'))}, per-example "
                  f"clipping norm {fmt(dp.get('max_grad_norm'))}, Poisson sampling "
                  f"{'on' if dp.get('poisson_sampling') else 'off (the guarantee is then approximate)'}.",
                  "",
                  f"What the epsilon covers: each of the {fmt(meta.get('examples'))} retraining examples (example-level "
                  "DP: adding or removing one of them changes the probability of any outcome of training by at most a "
                  "factor e^epsilon, except with probability delta); it says nothing about the data the starting model "
                  "was trained on."]
    return lines or ["More Information Needed"]


def _card(results: Mapping[str, Any], model: str, every: Sequence[Any]) -> str:
    """:func:`render_model_card` of cleaned, capped ``results`` with the run's unmerged findings already computed."""
    from raikit.reports._findings import has_no_bias_value

    models = results.get("models") or {}
    entry = models[model] if isinstance(models[model], Mapping) else {}
    model_id = str(entry.get("id") or model)
    run = results.get("run") or {}
    all_sections = results.get("sections") or {}
    rows = card_metrics(results, model)
    keys = list(dict.fromkeys([k for k, s in all_sections.items() if isinstance(s, Mapping) and s.get("model") == model]
                              + [skey for skey, _, _ in rows]))
    sections = {k: all_sections[k] for k in keys}
    options = report_options(results)
    facts = BUILTIN_CARD_FACTS.get(model_id, {})
    task = _task(entry.get("kind"))
    dp = _dp_facts(entry)
    front = ["---"]
    if facts.get("license"):
        front.append(f"license: {facts['license']}")
    if facts.get("base_model"):
        front.append(f"base_model: {_yaml(facts['base_model'])}")
        if facts.get("base_model_relation"):
            front.append(f"base_model_relation: {facts['base_model_relation']}")
    if task[0] != "other":
        front.append(f"pipeline_tag: {task[0]}")
    front += ["tags:", "- raikit", "- responsible-ai", "- bias-evaluation"]
    if dp:
        front.append("- differential-privacy")
    front += _model_index(results, model, model_id, task, rows, dp)
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
    if dp:
        described.append(("differential privacy", f"(epsilon, delta) = ({fmt(dp.get('epsilon'))}, "
                                                   f"{fmt(dp.get('delta'))}), {str(dp.get('accountant') or '?').upper()} "
                                                   "accountant; see Training Details"))
    body += [f"- **{k}**: {for_markdown(v)}" for k, v in described if v not in (None, "")]
    body += ["", "## Uses", "", for_markdown(options["intended_use"]) if options["intended_use"] else
             "More Information Needed", "", "## Bias, Risks, and Limitations", ""]
    mine = {name for _, name, _ in rows}
    own_findings = [f for f in every if f.metric in mine or (f.model == model and f.section in sections)]
    if own_findings:
        body.append("What raikit found on this model, largest effect first (95% CI; clear = the CI excludes "
                    "no bias):")
        body.append("")
        for f in own_findings:
            body.append(f"- {'clear' if f.clear else 'uncertain'} {for_markdown(f.kind)}: {for_markdown(f.title)}"
                        + (f" ({for_markdown(f.caveat)})" if f.caveat else ""))
            body += [f"  - example: {for_markdown(e)}" for e in f.examples[:2]]
    else:
        judged = [name for _, name, _ in rows if has_no_bias_value(results, name)]
        if judged:
            body.append(f"raikit measured {len(judged)} metric(s) with a no-bias value on this model and none departs "
                        f"from it: {for_markdown(', '.join(judged[:12]))}"
                        + (f" and {len(judged) - 12} more" if len(judged) > 12 else "") + " (values in Results).")
        else:
            body.append("No metric of this model has a no-bias value to compare with (accuracy, privacy and training "
                        "facts only; values in Results): this card makes no claim about bias.")
    limits = [x for x in limitations(results) if any(x.startswith(k + ":") for k in sections)]
    if limits:
        body += ["", "Limits of this evaluation:", ""] + [f"- {for_markdown(x)}" for x in limits]
    body += ["", "### Recommendations", "",
             "Read the findings above before deploying the model for any group they name; a passed gate covers "
             "only its own metric and threshold.", "", "## Training Details", "", *_training_lines(results, model, entry),
             "", "## Evaluation", "", "### Testing Data, Factors & Metrics", ""]
    body += [f"- {md_code(k, table=False)}: {for_markdown(s.get('description') or k)}" for k, s in sections.items()]
    body += ["", "### Results", "", "| metric | value | 95% CI | n |", "|---|---:|---:|---:|"]
    body += [f"| {md_code(n)} | {fmt(e.get('value'))} | {fmt_ci(e.get('ci95'))} | {fmt(e.get('n'))} |"
             for _, n, e in rows] or ["| (none) | | | |"]
    gates = [g for g in results.get("gates") or [] if isinstance(g, Mapping) and str(g.get("metric", "")) in mine]
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
