"""The self-contained HTML report, rendered from Jinja2 templates with autoescaping.

Everything the page needs is inside the file: CSS inline, figures as inline SVG, and one small script of
ours (``templates/report.js``: sortable and filterable tables, every ``<details>`` opened for print). A
Content-Security-Policy meta tag forbids every request (``default-src 'none'``) and allows that script
only by its SHA-256, so even a crafted completion or lexicon entry cannot make the page load or run
anything; all text from results is escaped.
"""
from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raikit.audits.escape import clean_tree
from raikit.reports._cap import cap_texts
from raikit.reports._compliance import compliance_mapping
from raikit.reports._findings import findings_view
from raikit.reports._view import (MetricRow, faithfulness_rows, fmt, fmt_ci, forest_families, gate_rows, is_number,
                                  limitations, metric_rows, report_options, section_keys, to_json, verdict,
                                  verdict_badge)

__all__ = ["render_html", "CSP"]

_SCRIPT = (Path(__file__).parent / "templates" / "report.js").read_text(encoding="utf-8")
#: The page may load nothing: inline styles, data: images, and the one script of ours (by its hash).
CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src 'none'; "
       f"script-src 'sha256-{base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()}'; "
       "connect-src 'none'; media-src 'none'; object-src 'none'; frame-src 'none'; form-action 'none'; "
       "base-uri 'none'")
#: Rows of a details table shown in full (the page filters and sorts them); the CSV beside it has all.
_MAX_ROWS = 1000
_MAX_WORDS = 30
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_MAX_TEXTS = 20


@dataclass(frozen=True)
class TableView:
    """A table of records from a section's details."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""
    legend: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Segment:
    """A piece of an explained text: a word with its heat, or the gap between words."""

    text: str
    style: str = ""
    title: str = ""


@dataclass(frozen=True)
class HeatMatrix:
    """A word-by-word attention matrix."""

    name: str
    words: tuple[str, ...]
    rows: tuple[tuple[tuple[str, str], ...], ...]
    note: str = ""


@dataclass(frozen=True)
class TextView:
    """One explained text: a heatmap line per method and its attention maps."""

    label: str
    text: str
    predicted: str
    probabilities: str
    methods: tuple[tuple[str, tuple[Segment, ...]], ...]
    attention: tuple[HeatMatrix, ...] = ()


@dataclass(frozen=True)
class SectionView:
    """Everything the template shows for one section."""

    key: str
    capability: str
    description: str
    citation: str
    model: str
    seconds: str
    notes: tuple[str, ...]
    metrics: tuple[MetricRow, ...]
    facts: tuple[tuple[str, str], ...] = ()
    forests: tuple[tuple[str, Any], ...] = ()
    tables: tuple[TableView, ...] = ()
    texts: tuple[TextView, ...] = ()
    faithfulness: tuple[dict[str, Any], ...] = ()
    advice: str = ""
    figures: tuple[tuple[str, Any], ...] = ()
    raw: str = ""
    definition: str = ""


#: Where each section's formulas are stated (docs/definitions.md in the repository). The link is relative to
#: a report written to ``out/<run-id>/`` inside a checkout; the anchor names the section wherever it is read.
DEFINITIONS_DOC = "../../docs/definitions.md"
_DEFINITION_ANCHORS = {"crows_pairs": "crows-pairs", "stereoset": "stereoset", "aul": "aul-aula",
                       "honest": "honest", "fill_mask": "fill-mask", "seat": "seat-weat",
                       "template_seat": "template-seat", "counterfactual": "counterfactual",
                       "behaviour": "behaviour", "groups": "groups", "explain": "explain", "bbq": "bbq",
                       "generation": "generation"}


def definition_link(key: str) -> str:
    """``docs/definitions.md#<anchor>`` for a section key (``fairness.crows_pairs``, ``explain``), or ""."""
    anchor = _DEFINITION_ANCHORS.get(key.rsplit(".", 1)[-1])
    return f"{DEFINITIONS_DOC}#{anchor}" if anchor else ""


@dataclass
class _Budget:
    """Counts figures so every SVG of a page gets a unique key (its element ids derive from it)."""

    n: int = 0

    def key(self, name: str) -> str:
        self.n += 1
        return f"f{self.n}"


def _heat(score: float, scale: float) -> str:
    if not is_number(score) or scale <= 0:
        return ""
    alpha = min(1.0, abs(score) / scale) * 0.8
    rgb = "220,38,38" if score > 0 else "37,99,235"
    return f"background-color: rgba({rgb},{alpha:.3f})"


def _segments(text: str, words: Sequence[str], spans: Sequence[Sequence[int]] | None,
              scores: Sequence[Any]) -> tuple[Segment, ...]:
    finite = [abs(s) for s in scores if is_number(s)]
    scale = max(finite) if finite else 0.0
    out: list[Segment] = []
    pos = 0
    use_spans = bool(spans) and len(spans) == len(words) and all(
        isinstance(s, Sequence) and len(s) == 2 and all(isinstance(v, int) for v in s) for s in spans)
    for i, word in enumerate(words):
        score = scores[i] if i < len(scores) else None
        if use_spans:
            start, end = spans[i]
            if start > pos:
                out.append(Segment(text[pos:start]))
            pos = max(pos, end)
        elif i:
            out.append(Segment(" "))
        out.append(Segment(str(word), _heat(score, scale), f"{fmt(score)}" if is_number(score) else "n/a"))
    if use_spans and pos < len(text):
        out.append(Segment(text[pos:]))
    return tuple(out)


def _matrix(name: str, words: Sequence[str], values: Any) -> HeatMatrix | None:
    if not isinstance(values, list) or not values or not all(isinstance(r, list) for r in values):
        return None
    n = min(len(words), len(values), _MAX_WORDS)
    flat = [v for r in values[:n] for v in r[:n] if is_number(v)]
    scale = max(flat) if flat else 0.0
    rows = tuple(tuple((fmt(v, 3), _heat(v, scale) if is_number(v) else "") for v in r[:n]) for r in values[:n])
    note = f"first {n} of {len(words)} words" if len(words) > n else ""
    return HeatMatrix(name=name, words=tuple(str(w) for w in words[:n]), rows=rows, note=note)


def _text_view(entry: Mapping[str, Any], label: str) -> TextView | None:
    words = entry.get("words")
    attributions = entry.get("attributions")
    if not isinstance(words, list) or not isinstance(attributions, Mapping):
        return None
    text = str(entry.get("text", " ".join(map(str, words))))
    methods = tuple((str(m), _segments(text, words, entry.get("spans"), list(s)))
                    for m, s in attributions.items() if isinstance(s, list))
    probs = entry.get("probabilities") or {}
    prob_text = ", ".join(f"{k} {fmt(v, 3)}" for k, v in probs.items()) if isinstance(probs, Mapping) else ""
    maps = []
    attention = entry.get("attention") or {}
    if isinstance(attention, Mapping):
        for key, title in (("last_layer_mean", "last-layer attention (mean over heads)"),
                           ("rollout", "attention rollout")):
            matrix = _matrix(title, words, attention.get(key))
            if matrix:
                maps.append(matrix)
    return TextView(label=label, text=text, predicted=str(entry.get("predicted", "")), probabilities=prob_text,
                    methods=methods, attention=tuple(maps))


def _marked(text: str, hurtful: str) -> str:
    """HONEST completions (``a | b | c``) with each hurtful word (from ``"word (category) | ..."``) in ``<mark>``."""
    from markupsafe import Markup, escape

    words = {w.rsplit(" (", 1)[0].strip() for w in hurtful.split(" | ") if w.strip()}
    if not words:
        return text
    pattern = re.compile(r"(?<!\w)(" + "|".join(map(re.escape, sorted(words, key=len, reverse=True))) + r")(?!\w)")
    out, pos = Markup(""), 0
    for m in pattern.finditer(text):
        out += escape(text[pos:m.start()]) + Markup("<mark>") + escape(m.group(1)) + Markup("</mark>")
        pos = m.end()
    return out + escape(text[pos:])


def _cell(record: Mapping[str, Any], column: str) -> str:
    value = record.get(column)
    if is_number(value):
        return fmt(value)
    if value is None:
        return ""
    if column == "completions" and isinstance(record.get("hurtful"), str):
        return _marked(str(value), record["hurtful"])
    return str(value)


#: Titles of detail tables that need more than their key to be read (the rest are titled by their key).
_TABLE_TITLES = {
    "worst_items": "Worst items: biased wrong answers, largest margin first (margin: the chosen answer's score "
                   "minus the right answer's)",
    "target_not_found": "Items whose stereotyped target could not be found (left out of the bias scores)",
}


def _records_table(title: str, records: list[Any]) -> TableView | None:
    if not records or not all(isinstance(r, Mapping) for r in records):
        return None
    columns = list(dict.fromkeys(k for r in records for k in r))
    if len(columns) > 14 or any(isinstance(r.get(c), (Mapping, list)) for r in records for c in columns):
        return None
    rows = tuple(tuple(_cell(r, c) for c in columns) for r in records[:_MAX_ROWS])
    note = f"first {_MAX_ROWS} of {len(records)} rows" if len(records) > _MAX_ROWS else ""
    return TableView(title=title, columns=tuple(columns), rows=rows, note=note)


def _find_roc(value: Any, depth: int = 0) -> Mapping[str, Any] | None:
    if depth > 3:
        return None
    if isinstance(value, Mapping):
        if isinstance(value.get("fpr"), list) and isinstance(value.get("tpr"), list):
            return value
        for v in value.values():
            found = _find_roc(v, depth + 1)
            if found:
                return found
    return None


def _privacy_facts(key: str, details: Mapping[str, Any], metrics: Sequence[MetricRow]) -> list[tuple[str, str]]:
    facts = []
    for name in ("epsilon", "delta", "accountant", "noise_multiplier", "max_grad_norm", "attack_auc",
                 "one_run_epsilon_lower_bound", "perfect_attack_bound"):
        row = next((m for m in metrics if m.short == name or m.short.endswith("." + name)), None)
        if row is not None:
            facts.append((name, f"{row.value} {row.ci if row.ci != '-' else ''}".strip()))
        elif name in details and not isinstance(details[name], (Mapping, list)):
            facts.append((name, fmt(details[name]) if is_number(details[name]) else str(details[name])))
    return facts


def _privacy_tradeoff(results: Mapping[str, Any], key: str, details: Mapping[str, Any],
                      budget: _Budget) -> tuple[str, Any] | None:
    """Accuracy (with its CI) against the loss attack's AUC, one point per model: what privacy cost."""
    from markupsafe import Markup

    from raikit.reports._figures import tradeoff_svg

    metrics = results.get("metrics") or {}
    points = []
    for item in details.get("privacy_utility") or []:
        if not isinstance(item, Mapping) or not is_number(item.get("attack_auc")):
            continue
        name = str(item.get("model"))
        accuracy = metrics.get(f"{key}.{name}.accuracy") or {}
        ci = accuracy.get("ci95") if isinstance(accuracy, Mapping) else None
        epsilon = item.get("epsilon")
        label = f"{name} (epsilon {fmt(epsilon)})" if is_number(epsilon) else f"{name} (no DP)"
        if is_number(item.get("accuracy")):
            points.append((label, float(item["attack_auc"]), float(item["accuracy"]),
                           tuple(ci) if isinstance(ci, list) and len(ci) == 2 and all(map(is_number, ci)) else None))
    if not points:
        return None
    svg = tradeoff_svg(points, key=budget.key("tradeoff"), xlabel="membership-inference AUC (0.5 = chance)",
                       ylabel="held-out accuracy", reference=0.5)
    return ("privacy-utility trade-off: accuracy against attack success", Markup(svg))


def _rounds_figure(details: Mapping[str, Any], budget: _Budget) -> tuple[str, Any] | None:
    from markupsafe import Markup

    from raikit.reports._figures import lines_svg

    rounds = details.get("rounds") or details.get("history")
    series = []
    if isinstance(rounds, list) and rounds and all(isinstance(r, Mapping) for r in rounds):
        xs = [r.get("round", i + 1) for i, r in enumerate(rounds)]
        columns = [c for c in dict.fromkeys(k for r in rounds for k in r) if c != "round"]
        for c in columns:
            ys = [r.get(c) for r in rounds]
            if all(is_number(y) for y in ys):
                series.append((c, xs, ys))
    clients = details.get("clients") or details.get("per_client")
    if isinstance(clients, Mapping):
        for name, values in clients.items():
            if isinstance(values, list) and values and all(is_number(v) for v in values):
                series.append((f"client {name}", list(range(1, len(values) + 1)), values))
    if not series:
        return None
    svg = lines_svg(series, key=budget.key("rounds"), xlabel="round", ylabel="value")
    return ("per round" + (" and client" if isinstance(clients, Mapping) else ""), Markup(svg))


def _section_view(results: Mapping[str, Any], key: str, budget: _Budget) -> SectionView:
    from markupsafe import Markup

    from raikit.reports._figures import forest_svg, roc_svg

    section = (results.get("sections") or {}).get(key) or {}
    capability = str(section.get("capability") or key.split(".")[0])
    rows = metric_rows(results, key)
    details = section.get("details") or {}
    details = details if isinstance(details, Mapping) else {"details": details}
    reference = details.get("ideal") if is_number(details.get("ideal")) else None
    forests = tuple((fam.title, Markup(forest_svg(fam.rows, key=budget.key(fam.title), xlabel=fam.title,
                                                   reference=reference)))
                    for fam in forest_families(rows))
    used: set[str] = set()
    texts: list[TextView] = []
    tables: list[TableView] = []
    facts: list[tuple[str, str]] = []
    figures: list[tuple[str, Any]] = []
    faith: list[dict[str, Any]] = []
    advice = ""
    if capability == "explain":
        faith, advice = faithfulness_rows(results, key)
        for dkey, prefix in (("texts", "text"), ("flagged", "flagged text")):
            entries = details.get(dkey)
            if isinstance(entries, list):
                views = [_text_view(e, f"{prefix} {e.get('id', i) if isinstance(e, Mapping) else i}")
                         for i, e in enumerate(entries[:_MAX_TEXTS])]
                texts += [v for v in views if v is not None]
                used.add(dkey)
    if capability == "privacy":
        facts += _privacy_facts(key, details, rows)
        attacks = details.get("attacks") if isinstance(details.get("attacks"), Mapping) else {}
        rocs = [(f"membership-inference ROC: {name.replace('.', ' model, ')} attack", a.get("roc"))
                for name, a in attacks.items() if isinstance(a, Mapping)] or [("membership-inference attack ROC",
                                                                               _find_roc(details))]
        for title, roc in rocs:
            if (isinstance(roc, Mapping) and isinstance(roc.get("fpr"), list) and isinstance(roc.get("tpr"), list)
                    and len(roc["fpr"]) == len(roc["tpr"]) and all(map(is_number, roc["fpr"] + roc["tpr"]))):
                auc = roc.get("auc") if is_number(roc.get("auc")) else None
                figures.append((title, Markup(roc_svg(roc["fpr"], roc["tpr"], key=budget.key("roc"), auc=auc))))
        tradeoff = _privacy_tradeoff(results, key, details, budget)
        if tradeoff is not None:
            figures.append(tradeoff)
        used.update({"attacks", "roc"})
    if capability == "mitigation":  # the plain before/after verdict leads the section
        for dkey in ("verdict", "held_out_verdict"):
            if isinstance(details.get(dkey), str):
                facts.append((dkey.replace("_", " "), details[dkey]))
                used.add(dkey)
    if capability == "federated":
        fig = _rounds_figure(details, budget)
        if fig:
            figures.append(fig)
    if isinstance(details.get("flipped"), list):
        table = _records_table("Worst examples: counterfactuals that flipped the prediction", details["flipped"])
        if table:
            tables.append(table)
        elif not details["flipped"]:
            facts.append(("flipped", "no counterfactual flipped the prediction"))
        used.add("flipped")
    legend = details.get("hurtlex_categories")  # HONEST: what each HurtLex category code means
    legend = tuple((str(k), str(v)) for k, v in legend.items()) if isinstance(legend, Mapping) else ()
    if legend:
        used.add("hurtlex_categories")
    for dkey, value in details.items():
        if dkey in used:
            continue
        if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            table = _records_table(_TABLE_TITLES.get(dkey, dkey.replace("_", " ")), value)
            if table:
                if legend and "hurtful" in table.columns:
                    table = dataclasses.replace(table, legend=legend)
                tables.append(table)
                used.add(dkey)
        elif value is None or isinstance(value, (str, int, float, bool)):
            if not any(f[0] == dkey for f in facts):
                facts.append((dkey.replace("_", " "), fmt(value) if is_number(value) else str(value)))
            used.add(dkey)
    rest = {k: v for k, v in details.items() if k not in used}
    seconds = section.get("seconds")
    return SectionView(
        key=key, capability=capability, description=str(section.get("description") or ""),
        citation=str(section.get("citation") or ""), model=str(section.get("model") or ""),
        seconds=f"{fmt(seconds, 3)} s" if is_number(seconds) else "", notes=tuple(map(str, section.get("notes") or [])),
        metrics=tuple(rows), facts=tuple(facts), forests=forests, tables=tuple(tables), texts=tuple(texts),
        faithfulness=tuple(faith), advice=advice, figures=tuple(figures), raw=to_json(rest) if rest else "",
        definition=definition_link(key))


def dotted(name: Any) -> Any:
    """Escaped text with a line-break opportunity after each dot (long metric names wrap at their dots)."""
    from markupsafe import Markup, escape

    return Markup(".<wbr>").join(escape(part) for part in str(name).split("."))


def snake(name: Any) -> Any:
    """Escaped text with a line-break opportunity after each dot and underscore (column names, cell values).

    Numbers (``0.45``, ``-1e-05``) stay unbreakable.
    """
    from markupsafe import Markup, escape

    text = str(name)
    if _NUMBER.fullmatch(text):
        return escape(text)
    return Markup("_<wbr>").join(dotted(part) for part in text.split("_"))


def css_string(text: str) -> Any:
    """``text`` as a quoted CSS string (for ``@page`` margin boxes): anything but plain characters hex-escaped."""
    from markupsafe import Markup

    return Markup('"' + "".join(c if c.isalnum() and c.isascii() or c in " -_.:" else f"\\{ord(c):x} "
                                 for c in text) + '"')


def model_facts(models: Mapping[str, Any]) -> dict[str, list[str]]:
    """Per model key, what the model is: its source (e.g. a GGUF conversion) and recorded held-out accuracy."""
    out: dict[str, list[str]] = {}
    for key, model in models.items():
        meta = model.get("metadata") if isinstance(model, Mapping) else None
        facts = []
        if isinstance(model, Mapping) and model.get("retrained_from"):
            facts.append(f"retrained from {model['retrained_from']} in this run")
        if isinstance(meta, Mapping):
            if meta.get("source"):
                facts.append(str(meta["source"]))
            if is_number(meta.get("held_out_accuracy")):
                n = meta.get("held_out_examples")
                facts.append(f"held-out accuracy {fmt(meta['held_out_accuracy'])}"
                             + (f" on {fmt(n)} texts" if is_number(n) else "") + " (measured when it was trained)")
        out[str(key)] = facts
    return out


def resolved_config(results: Mapping[str, Any]) -> str:
    """The config as the run read it: each section's options with ``{data_dir}`` and relative paths expanded."""
    run = results.get("run") or {}
    resolved = run.get("resolved_options")
    if not isinstance(resolved, Mapping) or not resolved:
        return ""
    config = dict(results.get("config") or {})
    return to_json({"run": config.get("run", {}), "models": config.get("models", config.get("model", {})),
                    "sections (resolved)": resolved, "gates": config.get("gates", {})})


@functools.cache
def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                             autoescape=True, trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["num"] = lambda value: fmt(None if isinstance(value, jinja2.Undefined) else value)
    env.filters["ci"] = fmt_ci
    env.filters["dotted"] = dotted
    env.filters["snake"] = snake
    env.tests["markup"] = lambda value: hasattr(value, "__html__")
    env.tests["numeric"] = lambda value: bool(_NUMBER.fullmatch(str(value))) or str(value) in ("True", "False")
    return env


_TITLES = {"fairness": "Fairness", "explain": "Explanations", "mitigation": "Bias mitigation (retraining)",
           "privacy": "Privacy", "federated": "Federated learning"}


def render_html(results: Mapping[str, Any]) -> str:
    """The report as one self-contained HTML page.

    Parameters
    ----------
    results : mapping
        A parsed ``results.json`` (any subset of sections; missing parts are listed as limitations).

    Returns
    -------
    str
        The page. It makes no network request (enforced by its Content-Security-Policy), runs no script
        but its own (allowed by hash), and escapes every text that came from models, templates or data.
    """
    results = cap_texts(clean_tree(results))  # no control or bidi character, no 50 MB text reaches the page
    budget = _Budget()
    views = [_section_view(results, key, budget) for key in section_keys(results)]
    groups: dict[str, list[SectionView]] = {}
    for view in views:
        groups.setdefault(view.capability, []).append(view)
    order = [c for c in _TITLES if c in groups] + [c for c in groups if c not in _TITLES]
    ordered = [(c, _TITLES.get(c, c.title()), groups[c]) for c in order]
    from markupsafe import Markup

    run = results.get("run") or {}
    packages = run.get("packages") or {}
    title = report_options(results)["title"]
    return _environment().get_template("report.html.j2").render(
        csp=CSP, script=Markup(_SCRIPT), page_header=css_string(f"{title} \u00b7 run {run.get('id') or '-'}"),
        model_facts=model_facts(results.get("models") or {}), resolved_config=resolved_config(results),
        data_files=[f for f in run.get("data_files") or [] if isinstance(f, Mapping)],
        options=report_options(results), verdict=verdict(results), badge=verdict_badge(results),
        gates=gate_rows(results),
        run=run, packages=sorted(packages.items()) if isinstance(packages, Mapping) else [],
        models=list((results.get("models") or {}).items()), groups=ordered,
        compliance=compliance_mapping(results), limitations=limitations(results),
        findings=findings_view(results),
        schema_version=str(results.get("schema_version", "")), n_metrics=len(results.get("metrics") or {}))
