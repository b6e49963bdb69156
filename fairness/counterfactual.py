"""``[fairness.counterfactual]``: counterfactual invariance of a text classifier (Garg et al. 2019).

Swap group terms (he <-> she, Christian -> Muslim, ...) in texts, whole words with their case kept
(:mod:`raikit.fairness.swaps`), and measure how often the predicted class flips (``flip_rate``) and how much
the predicted class's probability moves (``mean_abs_delta``); word lists from bias-bench (Meade et al.
2022) or WinoBias (Zhao et al. 2018). Two-group axes (gender) swap both ways at once (counterfactual data
augmentation); axes with more groups (race, religion) map every group term to each other group in turn.
Intervals cluster the counterfactuals of one original text.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raikit.audits.errors import RaikitInputError
from raikit.audits.results import Metric, SectionResult
from raikit.audits.retrain_metrics import ITEMS_TABLE, metric_items
from raikit.audits.sections import RunContext, Rule, Section, data_key
from raikit.fairness._classifier_common import (
    _DEFAULT_LEXICONS, CITATIONS, _check_starter, _need_classifier, _starter_instances,
)
from raikit.audits.stats import CLUSTER_PROPORTION_CI, bootstrap_ci, proportion_ci
from raikit.fairness.swaps import SwapList, counterfactuals, load_swaps

__all__ = ["SECTION", "CounterfactualOptions", "CounterfactualResult", "counterfactual_invariance"]


def _read_texts(path: Path, column: str) -> list[str]:
    if path.suffix == ".csv":
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        if column not in frame.columns:
            raise RaikitInputError(f"column {column!r} missing (columns: {', '.join(frame.columns)})", where=str(path))
        texts = [t for t in frame[column].tolist() if t.strip()]
    else:
        texts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not texts:
        raise RaikitInputError("no texts", where=str(path))
    return texts


@dataclass(frozen=True)
class CounterfactualResult:
    """Result of :func:`counterfactual_invariance`.

    Attributes
    ----------
    table : DataFrame
        One row per (original, counterfactual): texts, axis, pair, probabilities of the originally
        predicted class, labels, ``flipped``, ``abs_delta``.
    n_texts, n_skipped : int
        Texts given, and texts without any swappable term.
    """

    table: pd.DataFrame
    n_texts: int
    n_skipped: int
    flip_rate: float
    flip_ci: tuple[float, float] | None
    mean_abs_delta: float
    delta_ci: tuple[float, float] | None
    by_pair: Mapping[str, Mapping[str, Any]]
    notes: tuple[str, ...] = field(default=())

    def flipped(self, limit: int = 20) -> list[dict[str, Any]]:
        """The worst cases: flipped predictions first, then the largest probability changes."""
        worst = self.table.sort_values(["flipped", "abs_delta"], ascending=[False, False]).head(limit)
        return [{"original": r.original, "counterfactual": r.counterfactual, "p_original": r.p_original,
                 "p_counterfactual": r.p_counterfactual, "label_original": r.label_original,
                 "label_counterfactual": r.label_counterfactual} for r in worst.itertuples(index=False)
                if r.flipped]

    def to_section(self, *, max_examples: int = 20) -> SectionResult:
        """``flip_rate``, ``mean_abs_delta``, ``by_pair.<pair>.flip_rate``, ``by_pair.<pair>.mean_abs_delta``."""
        n = len(self.table)
        ci_how = CLUSTER_PROPORTION_CI.format(unit="original text")
        metrics = {"flip_rate": Metric(self.flip_rate, self.flip_ci, n, {"citation": CITATIONS["counterfactual"],
                                                                         "ci": ci_how}),
                   "mean_abs_delta": Metric(self.mean_abs_delta, self.delta_ci, n,
                                            {"what": "mean |p_cf - p_orig| of the originally predicted class"})}
        for pair, v in self.by_pair.items():
            metrics[f"by_pair.{pair}.flip_rate"] = Metric(v["flip_rate"], v["flip_ci"], v["n"], {"ci": ci_how})
            metrics[f"by_pair.{pair}.mean_abs_delta"] = Metric(v["mean_abs_delta"], v["delta_ci"], v["n"])
        worst = self.table.sort_values("abs_delta", ascending=False).head(max_examples)
        details = {"flipped": self.flipped(max_examples),
                   "largest_changes": worst[["original", "counterfactual", "p_original", "p_counterfactual",
                                             "label_original", "label_counterfactual"]].to_dict("records"),
                   "n_texts": self.n_texts, "n_skipped": self.n_skipped}
        return SectionResult(metrics=metrics, tables={"pairs": self.table, ITEMS_TABLE: self.items()},
                             details=details, notes=self.notes)

    def items(self) -> pd.DataFrame:
        """Per (original, counterfactual) values of every metric, for the re-audit's paired comparison
        (clustered by original text, like the intervals)."""
        keys = (self.table["original"] + "\u2192" + self.table["counterfactual"]).tolist()
        parts = []
        for prefix, rows in [("", self.table)] + [(f"by_pair.{p}.", sub) for p, sub in self.table.groupby("pair")]:
            sub_keys = [keys[i] for i in rows.index]
            for name, column in (("flip_rate", "flipped"), ("mean_abs_delta", "abs_delta")):
                parts.append(metric_items(prefix + name, rows[column].to_numpy(dtype=float), items=sub_keys,
                                          clusters=rows["original"].tolist()))
        return pd.concat(parts, ignore_index=True)


def counterfactual_invariance(adapter: Any, texts: Sequence[str], *, swaps: Sequence[SwapList], seed: int = 0,
                              n_bootstrap: int = 2000) -> CounterfactualResult:
    """Flip rate and mean absolute probability change under group-term swaps.

    Parameters
    ----------
    adapter : ClassifierAdapter
    texts : sequence of str
    swaps : sequence of SwapList
        From :func:`load_swaps`.

    Returns
    -------
    CounterfactualResult
    """
    _need_classifier(adapter, "counterfactual")
    rows = []
    skipped = 0
    for text in dict.fromkeys(texts):
        cfs = counterfactuals(text, swaps)
        if not cfs:
            skipped += 1
        rows.extend({"original": text, **cf} for cf in cfs)
    if not rows:
        raise RaikitInputError("no text contains a term of the swap lists; nothing to compare")
    table = pd.DataFrame(rows)
    originals = table["original"].tolist()
    cfs_text = table["counterfactual"].tolist()
    p_all = adapter.predict_proba(list(dict.fromkeys(originals + cfs_text)))
    uniq = {t: i for i, t in enumerate(dict.fromkeys(originals + cfs_text))}
    po = p_all[[uniq[t] for t in originals]]
    pc = p_all[[uniq[t] for t in cfs_text]]
    cls = po.argmax(1)
    labels = np.array(adapter.labels, dtype=object)
    table["p_original"] = po[np.arange(len(cls)), cls]
    table["p_counterfactual"] = pc[np.arange(len(cls)), cls]
    table["label_original"] = labels[cls]
    table["label_counterfactual"] = labels[pc.argmax(1)]
    table["flipped"] = table["label_original"] != table["label_counterfactual"]
    table["abs_delta"] = (table["p_counterfactual"] - table["p_original"]).abs()
    flips = table["flipped"].to_numpy(dtype=float)
    deltas = table["abs_delta"].to_numpy(dtype=float)
    by_pair = {}
    for pair, sub in table.groupby("pair", sort=True):
        f, d = sub["flipped"].to_numpy(dtype=float), sub["abs_delta"].to_numpy(dtype=float)
        by_pair[str(pair)] = {"flip_rate": float(f.mean()), "flip_ci": proportion_ci(f, clusters=sub["original"]),
                              "mean_abs_delta": float(d.mean()),
                              "delta_ci": bootstrap_ci(d, n_resamples=n_bootstrap, seed=seed), "n": len(sub)}
    notes = (f"counterfactual: {skipped} of {skipped + table['original'].nunique()} texts had no swappable "
             "group term and were skipped.",) if skipped else ()
    return CounterfactualResult(table=table, n_texts=skipped + table["original"].nunique(), n_skipped=skipped,
                                flip_rate=float(flips.mean()), flip_ci=proportion_ci(flips, clusters=originals),
                                mean_abs_delta=float(deltas.mean()),
                                delta_ci=bootstrap_ci(deltas, n_resamples=n_bootstrap, seed=seed), by_pair=by_pair,
                                notes=notes)


@dataclass(frozen=True)
class CounterfactualOptions:
    """Options of ``[fairness.counterfactual]``.

    Attributes
    ----------
    texts : str
        A CSV (with ``text_column``) or TXT (one text a line) file; "" expands the starter templates.
    text_column : str
        Column of the texts in a CSV file.
    swaps : str
        Swap lists: bias-bench JSON, WinoBias TXT or a CSV (word, swap, axis).
    axes : list of str
        Axes of the swap file to use ([] = all).
    templates : str
        Template file (TOML/CSV) expanded into the texts to swap when ``texts`` is "" (default: raikit's
        starter templates).
    lexicons : list of str
        Lexicon files filling those templates' slots (used only when ``texts`` is "").
    max_items : int
        Starter-template instances per template: beyond it, a fixed random subsample (seeded); 0 = all
        (formerly ``max_instances``).
    max_examples : int
        Worst cases kept in the details.
    n_bootstrap : int
        Bootstrap resamples of the 95% confidence intervals.
    """

    texts: str = ""
    text_column: str = "text"
    swaps: str = "{data_dir}/bias_bench/bias_attribute_words.json"
    axes: list[str] = field(default_factory=lambda: ["gender", "race", "religion"])
    templates: str = "builtin:templates/classifier.toml"
    lexicons: list[str] = field(default_factory=lambda: list(_DEFAULT_LEXICONS))
    max_items: int = 500
    max_examples: int = 20
    n_bootstrap: int = 2000


def _check_counterfactual(options: CounterfactualOptions, ctx: RunContext) -> None:
    """Read the swap lists and the texts (or templates) before any model loads."""
    path = ctx.existing_path(options.swaps, where="key 'swaps'")
    with data_key("swaps", path):
        if not load_swaps(path, axes=options.axes):
            raise RaikitInputError("no swap pairs (for the axes asked for)", where=str(path))
    if options.texts:
        texts = ctx.existing_path(options.texts, where="key 'texts'")
        with data_key("texts", texts):
            _read_texts(texts, options.text_column)
    else:
        _check_starter(options, ctx, "counterfactual")


def _run_counterfactual(adapter: Any, options: CounterfactualOptions, ctx: RunContext) -> SectionResult:
    swaps = load_swaps(ctx.existing_path(options.swaps, where="counterfactual.swaps"), axes=options.axes)
    notes: tuple[str, ...] = ()
    if options.texts:
        texts = _read_texts(ctx.existing_path(options.texts, where="counterfactual.texts"), options.text_column)
    else:
        inst = _starter_instances(options.templates, options.lexicons, ctx, section="counterfactual",
                                  max_instances=options.max_items)
        texts = inst["text"].tolist() + [t for t in inst["perturbed"].tolist() if isinstance(t, str)]
        notes = ("counterfactual: texts are raikit's starter templates filled with the starter lexicons.",)
    result = counterfactual_invariance(adapter, texts, swaps=swaps, seed=ctx.seed, n_bootstrap=options.n_bootstrap)
    sec = result.to_section(max_examples=options.max_examples)
    return SectionResult(metrics=sec.metrics, tables=sec.tables, details=sec.details, notes=notes + sec.notes)


SECTION = Section(
    name="counterfactual", options=CounterfactualOptions, model_kinds=("classifier",), run=_run_counterfactual, check=_check_counterfactual,
    description="Counterfactual invariance: prediction flips when group terms are swapped",
    citation=CITATIONS["counterfactual"],
    metrics=("flip_rate", "mean_abs_delta", "by_pair.*.flip_rate", "by_pair.*.mean_abs_delta"),
    meanings=(("flip_rate", "Prediction flip rate",
               "Share of texts whose predicted label changes when a group term is swapped; 0 is invariant."),
              ("mean_abs_delta", "Mean probability change",
               "Mean absolute change in the positive-class probability under the swap; 0 is invariant."),
              ("by_pair.*.flip_rate", "Flip rate, swap {}", "Flip rate over the texts changed by this term pair."),
              ("by_pair.*.mean_abs_delta", "Mean probability change, swap {}",
               "Mean absolute probability change over the texts changed by this term pair.")),
    rules=(
        Rule("counterfactual_gaps", ("by_pair.*.flip_rate",), "group gap", "counterfactual flip rate per group swap",
             0.0, 1.0, family=True, better="lower"),
        Rule("counterfactual", ("flip_rate",), "counterfactual",
             "share of counterfactual swaps that flip the prediction", 0.0, 1.0),
    ),
)
