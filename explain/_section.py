"""The ``[explain]`` audit section: explain texts with several methods, score faithfulness and agreement."""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raikit.audits.errors import RaikitInputError
from raikit.audits.escape import clean_input
from raikit.audits.results import Metric, SectionResult
from raikit.audits.sections import RunContext, Section, data_key
from raikit.audits.stats import bootstrap_ci
from raikit.explain._attention import pooled_position, rollout, word_attention_map
from raikit.explain._base import EXPLAINERS, Explanation, ExplainSettings, check_inputs
from raikit.explain._faithfulness import AOPC_BINS, DELETION_BINS, ERASER_BINS, agreement, faithfulness

__all__ = ["ExplainOptions", "DEFAULT_TEXTS", "run_explain", "SECTION", "read_texts"]

#: Used when the table gives neither ``texts`` nor ``texts_file``.
DEFAULT_TEXTS: tuple[str, ...] = (
    "The staff were friendly and the food was excellent.",
    "I waited two hours and nobody answered my call.",
    "The movie was boring, but the music was great!",
    "What a fantastic day, I love this city.",
    "The update broke everything and support was useless.",
    "It was okay, nothing special.",
    "Terrible service, I will never come back.",
    "Thanks so much for the quick help, really appreciated.",
)
_WHERE = "[explain]"
_ERASER = "DeYoung et al. 2020, ERASER (ACL)"


@dataclass(frozen=True)
class ExplainOptions:
    """Options of the ``[explain]`` table.

    Parameters
    ----------
    methods : list of {"shap", "lime", "attention", "rollout"}
        Explainers to run and compare (names in ``raikit.explain.EXPLAINERS``; ``random``, the floor, is
        added by ``random_baseline``).
    texts : list of str
        Texts to explain, inline. With neither ``texts`` nor ``texts_file``, :data:`DEFAULT_TEXTS`.
    texts_file : str or None
        A ``.txt`` file (one text per line, blank lines skipped) or a ``.csv`` file with a ``text``
        column; relative to the config's folder, ``{data_dir}`` expanded. Added after ``texts``.
    max_items : int
        Explain at most this many texts (the first ones; formerly ``max_texts``).
    shap_max_evals : int
        SHAP evaluations per text.
    lime_num_samples : int
        LIME perturbations per text.
    top_k : int
        Size of the top-word sets compared by the top-k overlap.
    random_baseline : bool
        Also score the ``random`` explainer as the faithfulness floor.
    max_flagged : int
        Explain at most this many flagged texts from other sections (0: none).
    group_size : int
        Texts whose model calls are merged into shared batches.
    """

    methods: list[str] = field(default_factory=lambda: ["shap", "lime", "attention", "rollout"])
    texts: list[str] = field(default_factory=list)
    texts_file: str | None = None
    max_items: int = 20
    shap_max_evals: int = 500
    lime_num_samples: int = 500
    top_k: int = 3
    random_baseline: bool = True
    max_flagged: int = 10
    group_size: int = 16


def read_texts(path: Path) -> list[str]:
    """Texts of a ``.txt`` (one per line, blank lines skipped) or ``.csv`` (``text`` column) file."""
    suffix = path.suffix.lower()
    if suffix == ".txt":
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if suffix == ".csv":
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        if "text" not in frame.columns:
            raise RaikitInputError(f"column 'text' missing (columns: {', '.join(frame.columns)})", where=str(path))
        return frame["text"].tolist()
    raise RaikitInputError(f"texts_file must be .txt or .csv, not {suffix or 'no suffix'!r}", where=str(path))


def _check_options(options: ExplainOptions) -> None:
    if not options.methods:
        raise RaikitInputError("methods is empty; name at least one explainer", where=f"{_WHERE} methods")
    for name in options.methods:
        EXPLAINERS.get(name, where=f"{_WHERE} methods")
    for key in ("max_items", "shap_max_evals", "lime_num_samples", "top_k", "group_size"):
        if getattr(options, key) < 1:
            raise RaikitInputError(f"{key} must be at least 1, not {getattr(options, key)}", where=f"{_WHERE} {key}")
    if options.shap_max_evals < 3:
        raise RaikitInputError("shap_max_evals must be at least 3", where=f"{_WHERE} shap_max_evals")


def check_explain(options: ExplainOptions, ctx: RunContext) -> None:
    """Options and the texts file, checked before any model loads."""
    try:
        _check_options(options)
    except RaikitInputError as exc:  # "[explain] max_items" -> "key 'max_items'" (the runner names the table)
        key = (exc.where or "").removeprefix(_WHERE).strip()
        raise RaikitInputError(exc.problem, where=f"key {key!r}" if key else None) from None
    if options.texts_file:
        path = ctx.existing_path(options.texts_file, where="key 'texts_file'")
        with data_key("texts_file", path):
            read_texts(path)


def _text_entry(i: int, text: str, by_method: dict[str, Explanation], scores: dict[str, Any], maps: Any) -> dict:
    first = next(iter(by_method.values()))
    entry: dict[str, Any] = {
        "id": i, "text": text, "words": list(first.words), "spans": [list(s) for s in first.spans],
        "predicted": first.labels[first.predicted],
        "probabilities": {label: round(float(p), 6) for label, p in zip(first.labels, first.probabilities)},
        "attributions": {m: [round(float(v), 6) for v in e.scores] for m, e in by_method.items()},
        "base_values": {m: float(e.base_values[e.predicted]) for m, e in by_method.items()
                        if e.base_values is not None},
        "faithfulness": scores,
    }
    pos = pooled_position(maps.attentions)
    last = maps.attentions[-1].astype(np.float64).mean(0)
    entry["attention"] = {
        "pooled_token": maps.tokens[pos],
        "last_layer_mean": np.round(word_attention_map(last, maps, first.spans), 5).tolist(),
        "rollout": np.round(word_attention_map(rollout(maps.attentions), maps, first.spans), 5).tolist(),
    }
    return entry


def _words_beyond_window(adapter: Any, text: str, spans: Any) -> int:
    """How many words of ``text`` start after the last character the model reads (its token window).

    The model sees at most ``adapter.max_length`` tokens; words past them get no attribution from any
    method, and the reader must be told so.
    """
    enc = adapter.tokenizer(text, truncation=True, max_length=adapter.max_length, return_offsets_mapping=True)
    covered = max((int(e) for s, e in enc["offset_mapping"] if e > s), default=0)
    return sum(1 for start, _ in spans if start >= covered)


def _mark_window(entry: dict[str, Any], adapter: Any, notes: list[str], what: str) -> None:
    """Record in a text's entry (and in the notes) how many of its words were beyond the model's window."""
    beyond = _words_beyond_window(adapter, entry["text"], entry["spans"])
    entry["words_beyond_window"] = beyond
    entry["window_tokens"] = int(adapter.max_length)
    if beyond:
        notes.append(f"{what} {entry['id']}: {beyond} of {len(entry['spans'])} words lie beyond the model's "
                     f"{adapter.max_length}-token window; the model never reads them, so they get no attribution.")


def _explain_set(adapter: Any, texts: list[str], methods: list[str],
                 settings: ExplainSettings) -> tuple[dict[str, list[Explanation]], dict[str, list[Any]]]:
    explanations = {m: EXPLAINERS.get(m)(adapter, texts, settings=settings) for m in methods}
    flat = [e for m in methods for e in explanations[m]]
    scores = faithfulness(flat, adapter.predict_proba)
    n = len(texts)
    return explanations, {m: scores[j * n:(j + 1) * n] for j, m in enumerate(methods)}


def run_explain(adapter: Any, options: ExplainOptions, ctx: RunContext) -> SectionResult:
    """Run the ``[explain]`` section (see :data:`SECTION`)."""
    check_inputs(adapter, [], where=_WHERE)
    _check_options(options)
    texts = list(options.texts)
    if options.texts_file:
        texts += read_texts(ctx.existing_path(options.texts_file, where=f"{_WHERE} texts_file"))
    notes = []
    if not texts:
        texts = list(DEFAULT_TEXTS)
        notes.append(f"No texts were configured; the {len(texts)} built-in example sentences were explained.")
    texts = [clean_input(t) if isinstance(t, str) else t for t in texts]  # NUL, ESC, bidi controls -> spaces
    texts = list(dict.fromkeys(check_inputs(adapter, texts, where=f"{_WHERE} texts")))
    if len(texts) > options.max_items:
        notes.append(f"Only the first {options.max_items} of {len(texts)} texts were explained (max_items).")
        texts = texts[:options.max_items]
    methods = list(dict.fromkeys(options.methods))
    scored = methods + (["random"] if options.random_baseline and "random" not in methods else [])
    settings = ExplainSettings(shap_max_evals=options.shap_max_evals, lime_num_samples=options.lime_num_samples,
                               group_size=options.group_size, seed=ctx.seed, progress=ctx.progress)

    explanations, faith = _explain_set(adapter, texts, scored, settings)
    metrics: dict[str, Metric] = {}
    for m in scored:
        for key, bins, better, cite in (
                ("comprehensiveness", ERASER_BINS, "higher", _ERASER), ("sufficiency", ERASER_BINS, "lower", _ERASER),
                ("aopc", AOPC_BINS, "higher", _ERASER + "; AOPC of comprehensiveness, equal to comprehensiveness"),
                ("deletion_area", DELETION_BINS, "higher",
                 "raikit, not ERASER: mean comprehensiveness at 10%..100% of the words (Samek et al. 2017 style)")):
            values = np.array([getattr(f, key) for f in faith[m]])
            metrics[f"{m}.{key}"] = Metric(
                value=float(values.mean()), ci95=bootstrap_ci(values, seed=ctx.seed), n=len(values),
                details={"bins": list(bins), "better": better, "method": m, "citation": cite,
                         "k": "distinct ceil(q * n_words) per text, each counted once"})
    agreements: dict[str, Any] = {}
    for a, b in itertools.combinations(methods, 2):
        both_signed = explanations[a][0].signed and explanations[b][0].signed if texts else False
        taus, overlaps = agreement(explanations[a], explanations[b], top_k=options.top_k, on="magnitude")
        valid = taus[np.isfinite(taus)]
        informative = overlaps[np.isfinite(overlaps)]
        details: dict[str, Any] = {
            "statistic": "Kendall tau-b of |word score| for the predicted class, mean over texts (attention, "
                         "rollout and random are never negative, so magnitudes are what all methods share)",
            "top_k": options.top_k,
            "top_k_overlap": float(informative.mean()) if informative.size else float("nan"),
            "top_k_overlap_ci95": bootstrap_ci(informative, seed=ctx.seed),
            "top_k_overlap_n": int(informative.size),
            "top_k_overlap_note": (f"texts of at most {options.top_k} words are left out of the top-k overlap "
                                   "(both top sets are the whole text)"),
        }
        entry: dict[str, Any] = {"kendall_tau": taus.tolist(), "top_k_overlap": overlaps.tolist()}
        if both_signed:
            signed, _ = agreement(explanations[a], explanations[b], top_k=options.top_k, on="signed")
            ok = signed[np.isfinite(signed)]
            details["signed_kendall_tau"] = float(ok.mean()) if ok.size else float("nan")
            details["signed_kendall_tau_ci95"] = bootstrap_ci(ok, seed=ctx.seed)
            entry["signed_kendall_tau"] = signed.tolist()
        metrics[f"agreement.{a}_vs_{b}"] = Metric(
            value=float(valid.mean()) if valid.size else float("nan"), ci95=bootstrap_ci(valid, seed=ctx.seed),
            n=int(valid.size), details=details)
        agreements[f"{a}_vs_{b}"] = entry

    maps = adapter.attention_maps(texts)
    rows = []
    per_text = []
    for i, text in enumerate(texts):
        scores = {m: {"comprehensiveness": faith[m][i].comprehensiveness, "sufficiency": faith[m][i].sufficiency,
                      "aopc": faith[m][i].aopc, "deletion_area": faith[m][i].deletion_area} for m in scored}
        per_text.append(_text_entry(i, text, {m: explanations[m][i] for m in scored}, scores, maps[i]))
        _mark_window(per_text[-1], adapter, notes, "text")
        rows += [{"set": "texts", "text_id": i, "text": text, "method": m, "n_words": len(explanations[m][i].words),
                  "predicted": explanations[m][i].labels[explanations[m][i].predicted], **scores[m]} for m in scored]

    flagged_details = []
    flagged = [clean_input(t) for t in dict.fromkeys(ctx.flagged_texts) if isinstance(t, str) and t.strip()]
    flagged = flagged[:options.max_flagged]
    if flagged:
        f_expl, f_faith = _explain_set(adapter, flagged, methods, settings)
        f_maps = adapter.attention_maps(flagged)
        for i, text in enumerate(flagged):
            scores = {m: {"comprehensiveness": f_faith[m][i].comprehensiveness,
                          "sufficiency": f_faith[m][i].sufficiency, "aopc": f_faith[m][i].aopc,
                          "deletion_area": f_faith[m][i].deletion_area} for m in methods}
            flagged_details.append(_text_entry(i, text, {m: f_expl[m][i] for m in methods}, scores, f_maps[i]))
            _mark_window(flagged_details[-1], adapter, notes, "flagged text")
            rows += [{"set": "flagged", "text_id": i, "text": text, "method": m,
                      "n_words": len(f_expl[m][i].words), "predicted": f_expl[m][i].labels[f_expl[m][i].predicted],
                      **scores[m]} for m in methods]
    notes.append("Attention and rollout scores are class-agnostic; word deletion for comprehensiveness and "
                 "sufficiency creates texts unlike the training data, so scores mix faithfulness and robustness.")
    details = {
        "methods": methods, "scored_methods": scored, "labels": list(adapter.labels), "texts": per_text,
        "flagged": flagged_details, "agreement": agreements, "top_k": options.top_k,
        "settings": {"shap_max_evals": options.shap_max_evals, "lime_num_samples": options.lime_num_samples,
                     "eraser_bins": list(ERASER_BINS), "aopc_bins": list(AOPC_BINS),
                     "deletion_bins": list(DELETION_BINS)},
        "deletion": "a removed word becomes a space (its whitespace run collapsed), so neighbours never merge",
        "classifier_output": getattr(adapter, "output", "softmax over the labels"),
        "word_rule": "maximal runs of word characters; each other non-space grapheme is its own word",
    }
    return SectionResult(metrics=metrics, tables={"faithfulness": pd.DataFrame(rows)}, details=details,
                         notes=tuple(notes))


SECTION = Section(
    name="explain",
    options=ExplainOptions,
    model_kinds=("classifier",),
    run=run_explain,
    description="Word-level explanations (SHAP, LIME, attention, rollout) with ERASER faithfulness and agreement",
    citation=("Lundberg & Lee 2017 (SHAP); Ribeiro et al. 2016 (LIME); Abnar & Zuidema 2020 (attention rollout); "
              "DeYoung et al. 2020 (ERASER comprehensiveness and sufficiency)"),
    metrics=("*.comprehensiveness", "*.sufficiency", "*.aopc", "*.deletion_area", "agreement.*"),
    meanings=(
        ("*.comprehensiveness", "Comprehensiveness of {}",
         "Drop in the predicted class's probability when the explainer's top words are removed; higher is better."),
        ("*.sufficiency", "Sufficiency of {}",
         "Drop in probability when only the top words are kept; lower is better."),
        ("*.aopc", "AOPC of {}", "Comprehensiveness averaged over removing the top 1, 2, ... words; higher is better."),
        ("*.deletion_area", "Deletion area of {}",
         "Area under the probability curve as top words are deleted one by one; lower is better."),
        ("agreement.*", "Agreement, {}", "Rank correlation of two explainers' word scores; 1 is full agreement."),
    ),
    check=check_explain,
)
