"""Bias tests for text classifiers: counterfactual invariance, behaviour tests, per-group metrics.

* ``counterfactual``: swap group terms (he <-> she, Christian -> Muslim, ...) in texts, whole words with
  their case kept, and measure how often the predicted class flips (``flip_rate``) and how much the
  predicted class's probability moves (``mean_abs_delta``); Garg et al. 2019 (counterfactual token
  fairness), word lists from bias-bench (Meade et al. 2022) or WinoBias (Zhao et al. 2018).
  Two-group axes (gender) swap both ways at once (counterfactual data augmentation); axes with more
  groups (race, religion) map every group term to each other group in turn.
* ``behaviour``: CheckList tests (Ribeiro et al. 2020) from templates: minimum functionality (MFT: the
  prediction must be the template's label whatever identity fills it) and directional (DIR: the
  label's probability must move up/down from ``text`` to ``perturbed``); failure rates overall and
  per identity group, with a permutation p-value for the largest gap between groups.
* ``groups``: accuracy, false positive rate, false negative rate and selection rate per group with
  ``fairlearn.metrics.MetricFrame``, plus demographic parity and equalized odds differences, on
  labelled data with a group column (a CSV the user gives, or by default the starter MFT templates,
  whose label is the expected class and whose identity group is the group).
"""
from __future__ import annotations

import csv
import json
import re
import warnings
from contextlib import contextmanager
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raikit.audits.errors import RaikitInputError
from raikit.audits.results import Metric, SectionResult
from raikit.audits.sections import RunContext, Section, data_key
from raikit.audits.retrain_metrics import ITEMS_TABLE, metric_items
from raikit.fairness._registry import SECTIONS
from raikit.fairness._stats import CLUSTER_PROPORTION_CI, PROPORTION_CI, bootstrap_ci, gap_ci, proportion_ci
from raikit.fairness.templates import expand, indefinite_article, load_configured

__all__ = [
    "SwapList", "load_swaps", "counterfactuals", "CounterfactualOptions", "CounterfactualResult",
    "counterfactual_invariance", "BehaviourOptions", "BehaviourResult", "behaviour_tests", "GroupsOptions",
    "GroupMetricsResult", "group_metrics", "CITATIONS",
]

CITATIONS = {
    "counterfactual": ("Garg, S., Perot, V., Limtiaco, N., Taly, A., Chi, E. H., Beutel, A. (2019). Counterfactual "
                       "Fairness in Text Classification through Robustness. AIES 2019."),
    "behaviour": ("Ribeiro, M. T., Wu, T., Guestrin, C., Singh, S. (2020). Beyond Accuracy: Behavioral Testing of "
                  "NLP Models with CheckList. ACL 2020."),
    "groups": ("Hardt, M., Price, E., Srebro, N. (2016). Equality of Opportunity in Supervised Learning. NeurIPS; "
               "Bird, S. et al. (2020). Fairlearn: A toolkit for assessing and improving fairness in AI."),
}
_GROUP_NAMES = {"gender": ["male", "female"], "race": ["black", "white", "asian"],
                "religion": ["jewish", "christian", "muslim"]}
_DEFAULT_LEXICONS = ["builtin:lexicons/gender.toml", "builtin:lexicons/identity.toml"]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_+-]+", "_", str(name)).strip("_") or "none"


# -- swaps -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SwapList:
    """Aligned group terms of one axis: ``tuples[i][j]`` is term i in group j."""

    axis: str
    groups: tuple[str, ...]
    tuples: tuple[tuple[str, ...], ...]

    def lookup(self) -> dict[str, tuple[int, int]]:
        """Lower-cased term -> (tuple index, group index); the first occurrence wins."""
        out: dict[str, tuple[int, int]] = {}
        for i, tup in enumerate(self.tuples):
            for j, w in enumerate(tup):
                out.setdefault(w.lower(), (i, j))
        return out


def load_swaps(path: str | Path, *, axes: Sequence[str] = ()) -> list[SwapList]:
    """Read swap lists: bias-bench JSON (axis -> list of aligned tuples), WinoBias-style TXT (two words a
    line, gender) or CSV (columns ``word``, ``swap``, optional ``axis``).

    Parameters
    ----------
    axes : sequence of str
        Keep only these axes (JSON/CSV); all when empty.
    """
    path = Path(path)
    data: dict[str, list[tuple[str, ...]]] = {}
    if path.suffix == ".json":
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise RaikitInputError("swap JSON must map axis -> list of aligned word tuples", where=str(path))
        data = {k: [tuple(str(w) for w in t) for t in v] for k, v in raw.items()}
    elif path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            for col in ("word", "swap"):
                if col not in (reader.fieldnames or []):
                    raise RaikitInputError(f"column {col!r} missing", where=str(path))
            for row in reader:
                data.setdefault((row.get("axis") or "custom").strip(), []).append(
                    (row["word"].strip(), row["swap"].strip()))
    else:
        pairs = []
        for line in path.read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if len(parts) == 2:
                pairs.append((parts[0], parts[1]))
            elif parts:
                raise RaikitInputError(f"expected two words a line, got {line.strip()!r}", where=str(path))
        data = {"gender": pairs}
    out = []
    for axis, tuples in data.items():
        if axes and axis not in axes:
            continue
        tuples = [t for t in tuples if len(t) >= 2]
        if not tuples:
            raise RaikitInputError(f"axis {axis!r} has no word pairs (empty lexicon)", where=str(path))
        width = min(len(t) for t in tuples)
        names = _GROUP_NAMES.get(axis, [])
        groups = tuple(names[:width]) if len(names) >= width else tuple(f"group{j}" for j in range(width))
        out.append(SwapList(axis=axis, groups=groups, tuples=tuple(t[:width] for t in tuples)))
    missing = [a for a in axes if a not in {s.axis for s in out}]
    if missing:
        raise RaikitInputError(f"axis {missing[0]!r} not in swap file (has: {', '.join(data)})", where=str(path))
    return out


def _match_case(word: str, like: str) -> str:
    if like.isupper() and len(like) > 1:
        return word.upper()
    if like[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def counterfactuals(text: str, swaps: Sequence[SwapList]) -> list[dict[str, str]]:
    """Counterfactual versions of ``text``: whole-word, case-preserving swaps of group terms.

    Returns
    -------
    list of dict
        ``{"counterfactual", "axis", "source", "target", "pair"}`` for each counterfactual.
    """
    out = []
    for sw in swaps:
        table = sw.lookup()
        # a word may follow its article ("an Asian person"): the article is re-chosen for the new word
        pattern = re.compile(r"(?:\b(a|an)(\s+))?\b(" + "|".join(sorted(map(re.escape, table), key=len, reverse=True))
                             + r")\b", re.IGNORECASE)
        found = [table[m.group(3).lower()] for m in pattern.finditer(text)]
        if not found:
            continue
        present = list(dict.fromkeys(g for _, g in found))
        n_groups = len(sw.groups)
        if n_groups == 2:
            targets = [None]
        else:
            targets = list(range(n_groups))

        for target in targets:
            def sub(m: re.Match[str], target: int | None = target) -> str:
                i, j = table[m.group(3).lower()]
                to = (1 - j) if target is None else target
                word = _match_case(sw.tuples[i][to], m.group(3))
                if not m.group(1):
                    return word
                return _match_case(indefinite_article(word), m.group(1)) + m.group(2) + word

            new = pattern.sub(sub, text)
            if new == text:
                continue
            src = sw.groups[present[0]] if len(present) == 1 else "mixed"
            dst = sw.groups[1 - present[0]] if target is None and len(present) == 1 else (
                "swapped" if target is None else sw.groups[target])
            out.append({"counterfactual": new, "axis": sw.axis, "source": src, "target": dst,
                        "pair": f"{sw.axis}_{_safe(src)}_to_{_safe(dst)}"})
    return out


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


def _need_classifier(adapter: Any, what: str) -> None:
    if getattr(adapter, "kind", None) != "classifier":
        raise RaikitInputError(f"the {what} test needs a classifier model; {getattr(adapter, 'name', '')!r} is "
                               f"{getattr(adapter, 'kind', None)!r}")


def _starter_instances(templates: str, lexicons: Sequence[str], ctx: RunContext, *, section: str,
                       max_instances: int) -> pd.DataFrame:
    tpls, lex = load_configured(templates, lexicons, ctx, section=section)
    return expand(tpls, lex, max_instances=max_instances or None, seed=ctx.seed)


def starter_labelled_texts(*, per_template: int = 12, seed: int = 0) -> pd.DataFrame:
    """raikit's starter sentiment texts with their expected class: the MFT templates filled with the lexicons.

    Columns ``text`` and ``label`` ("positive" or "negative"); at most ``per_template`` instances per template
    (seeded). ``raikit scan`` reads which class of a classifier with generic labels (``LABEL_0``) is positive
    from the model's own predictions on them.
    """
    inst = _starter_instances("builtin:templates/classifier.toml", _DEFAULT_LEXICONS, RunContext(seed=seed),
                              section="scan", max_instances=per_template)
    inst = inst[(inst["test"] == "mft") & inst["label"].isin(["positive", "negative"])]
    return inst[["text", "label"]].reset_index(drop=True)


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


def _check_starter(options: Any, ctx: RunContext, section: str) -> None:
    with data_key("templates"):
        if _starter_instances(options.templates, options.lexicons, ctx, section=section,
                              max_instances=options.max_items).empty:
            raise RaikitInputError("the templates and lexicons give no instance", where=options.templates)


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


# -- behaviour ---------------------------------------------------------------------------------------

def _label_index(adapter: Any, label: str, label_map: Mapping[str, str]) -> int:
    name = label_map.get(label, label)
    if name not in adapter.labels:
        raise RaikitInputError(f"template label {label!r} is not a class of the model ({', '.join(adapter.labels)}); "
                               "map it with label_map")
    return adapter.labels.index(name)


def _group_column(frame: pd.DataFrame) -> pd.Series:
    """The group of each instance: its first filled slot's group.

    Groups of different slots that a reader could take for one another (``male`` of ``{person}`` and
    ``gender_male`` of ``{identity}``, or the same name twice) are named with their slot: ``person_male``.
    """
    cols = [c for c in frame.columns if c.endswith("_group")]
    if not cols:
        return pd.Series([""] * len(frame), index=frame.index)
    names = {c: {str(v) for v in frame[c].dropna() if str(v)} for c in cols}
    for c in cols:
        others = set().union(*(names[o] for o in cols if o != c))
        clash = {v for v in names[c] if v in others or any(o.endswith("_" + v) for o in others)}
        if clash:
            slot = c[:-len("_group")]
            frame = frame.assign(**{c: frame[c].map(lambda v, clash=clash, slot=slot: f"{slot}_{v}" if v in clash
                                                    else v)})
    out = frame[cols[0]].copy()
    for c in cols[1:]:
        out = out.where(out.notna() & (out != ""), frame[c])
    return out.fillna("")


def _max_gap_p(values: np.ndarray, labels: np.ndarray, *, n_resamples: int, seed: int) -> tuple[float, float]:
    groups = list(dict.fromkeys(labels))
    codes = np.array([groups.index(g) for g in labels])
    counts = np.bincount(codes, minlength=len(groups))

    def gap(c: np.ndarray) -> float:
        means = np.bincount(c, weights=values, minlength=len(groups)) / counts
        return float(means.max() - means.min())

    observed = gap(codes)
    rng = np.random.default_rng(seed)
    hits = sum(gap(rng.permutation(codes)) >= observed - 1e-12 for _ in range(n_resamples))
    return observed, (hits + 1) / (n_resamples + 1)


@dataclass(frozen=True)
class BehaviourResult:
    """Result of :func:`behaviour_tests`: per-instance table and failure rates."""

    table: pd.DataFrame
    rates: Mapping[str, Metric]
    notes: tuple[str, ...] = field(default=())

    def to_section(self) -> SectionResult:
        """``failure_rate``, ``mft.failure_rate``, ``dir.failure_rate``, ``by_group.<g>.failure_rate``,
        ``by_template.<id>.failure_rate``, ``group_gap``."""
        failures = self.table[self.table["failed"]].head(20)
        details = {"failures": failures[["template_id", "test", "text", "perturbed", "label", "predicted"]]
                   .to_dict("records"), "citation": CITATIONS["behaviour"]}
        return SectionResult(metrics=dict(self.rates), tables={"instances": self.table}, details=details,
                             notes=self.notes)


def behaviour_tests(adapter: Any, instances: pd.DataFrame, *, label_map: Mapping[str, str] | None = None,
                    tolerance: float = 0.0, seed: int = 0, n_bootstrap: int = 2000,
                    n_permutations: int = 2000) -> BehaviourResult:
    """Run MFT and DIR tests on expanded templates.

    Parameters
    ----------
    adapter : ClassifierAdapter
    instances : DataFrame
        From :func:`raikit.fairness.templates.expand` (columns text, label, test, perturbed, direction).
    label_map : mapping, optional
        Template label -> model class name.
    tolerance : float
        DIR: a move against the expected direction smaller than this is not a failure.

    Returns
    -------
    BehaviourResult
    """
    _need_classifier(adapter, "behaviour")
    label_map = dict(label_map or {})
    frame = instances[instances["label"].notna()].copy()
    if frame.empty:
        raise RaikitInputError("no template has a label; behaviour tests need expected labels")
    frame["group"] = _group_column(frame)
    idx = np.array([_label_index(adapter, lab, label_map) for lab in frame["label"]])
    p = adapter.predict_proba(frame["text"].tolist())
    frame["predicted"] = np.array(adapter.labels, dtype=object)[p.argmax(1)]
    frame["p_label"] = p[np.arange(len(frame)), idx]
    is_dir = (frame["test"] == "dir").to_numpy()
    failed = np.zeros(len(frame), dtype=bool)
    failed[~is_dir] = p[~is_dir].argmax(1) != idx[~is_dir]
    frame["p_perturbed"] = np.nan
    if is_dir.any():
        pp = adapter.predict_proba(frame.loc[is_dir, "perturbed"].tolist())[np.arange(is_dir.sum()), idx[is_dir]]
        frame.loc[is_dir, "p_perturbed"] = pp
        move = pp - frame.loc[is_dir, "p_label"].to_numpy()
        up = (frame.loc[is_dir, "direction"] == "up").to_numpy()
        failed[is_dir] = np.where(up, move < -tolerance, move > tolerance)
    frame["failed"] = failed
    f = failed.astype(float)
    # the instances of one template share its wording: rows of a template are one cluster
    tid = frame["template_id"].astype(str).to_numpy()
    by_cluster = {"ci": CLUSTER_PROPORTION_CI.format(unit="template")}
    rates: dict[str, Metric] = {"failure_rate": Metric(float(f.mean()), proportion_ci(f, clusters=tid), len(f),
                                                       by_cluster)}
    for test in ("mft", "dir"):
        keep = (frame["test"] == test).to_numpy()
        if keep.any():
            rates[f"{test}.failure_rate"] = Metric(float(f[keep].mean()), proportion_ci(f[keep], clusters=tid[keep]),
                                                   int(keep.sum()), by_cluster)
    groups = frame["group"].to_numpy()
    for g in dict.fromkeys(groups):
        keep = groups == g
        rates[f"by_group.{_safe(g)}.failure_rate"] = Metric(float(f[keep].mean()), proportion_ci(
            f[keep], clusters=tid[keep]), int(keep.sum()), by_cluster)
    for t, sub in frame.groupby("template_id", sort=False):
        v = sub["failed"].to_numpy(dtype=float)
        rates[f"by_template.{_safe(t)}.failure_rate"] = Metric(float(v.mean()), proportion_ci(v), len(v),
                                                               {"ci": PROPORTION_CI})
    if len(set(groups)) >= 2:
        gap, pval = _max_gap_p(f, groups, n_resamples=n_permutations, seed=seed)
        rates["group_gap"] = Metric(gap, None, len(f), {"p_value": pval, "test": "permutation of group labels, "
                                                        "largest minus smallest group failure rate"})
    return BehaviourResult(table=frame.reset_index(drop=True), rates=rates)


@dataclass(frozen=True)
class BehaviourOptions:
    """Options of ``[fairness.behaviour]``: template and lexicon files, label mapping, DIR tolerance.

    Attributes
    ----------
    templates : str
        Template file (TOML/CSV) with MFT (expected label) and DIR (expected direction) tests.
    lexicons : list of str
        Lexicon files of the templates' slots.
    label_map : dict
        Template label -> model class name.
    tolerance : float
        DIR: a move against the expected direction smaller than this is not a failure.
    max_items : int
        Starter-template instances per template: beyond it, a fixed random subsample (seeded); 0 = all
        (formerly ``max_instances``).
    n_bootstrap : int
        Bootstrap resamples of the 95% confidence intervals.
    n_permutations : int
        Permutations of the test of the largest gap between groups (its p-value).
    """

    templates: str = "builtin:templates/classifier.toml"
    lexicons: list[str] = field(default_factory=lambda: list(_DEFAULT_LEXICONS))
    label_map: dict[str, str] = field(default_factory=dict)
    tolerance: float = 0.0
    max_items: int = 500
    n_bootstrap: int = 2000
    n_permutations: int = 2000


def _check_behaviour(options: BehaviourOptions, ctx: RunContext) -> None:
    """Read the templates and lexicons before any model loads."""
    _check_starter(options, ctx, "behaviour")


def _template_classes(options: Any, ctx: RunContext, section: str) -> list[tuple[str, str]]:
    """The model classes the starter templates' labels ask for, after ``label_map`` (key ``label_map``)."""
    inst = _starter_instances(options.templates, options.lexicons, ctx, section=section, max_instances=1)
    labels = sorted({str(v) for v in inst["label"].dropna()})
    return [("label_map", options.label_map.get(label, label)) for label in labels]


def _behaviour_classes(options: BehaviourOptions, ctx: RunContext) -> list[tuple[str, str]]:
    return _template_classes(options, ctx, "behaviour")


def _run_behaviour(adapter: Any, options: BehaviourOptions, ctx: RunContext) -> SectionResult:
    inst = _starter_instances(options.templates, options.lexicons, ctx, section="behaviour",
                              max_instances=options.max_items)
    res = behaviour_tests(adapter, inst, label_map=options.label_map, tolerance=options.tolerance, seed=ctx.seed,
                          n_bootstrap=options.n_bootstrap, n_permutations=options.n_permutations)
    notes = ()
    if inst.attrs.get("n_total", len(inst)) > len(inst):
        notes = (f"behaviour: a fixed random subsample of {len(inst)} of {inst.attrs['n_total']} instances "
                 f"(seed {ctx.seed}).",)
    return SectionResult(metrics=res.to_section().metrics, tables=res.to_section().tables,
                         details=res.to_section().details, notes=notes)


# -- groups ------------------------------------------------------------------------------------------

@contextmanager
def _quiet() -> Iterator[None]:
    """Silence numpy's all-NaN RuntimeWarnings (a group without positives or negatives)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield

def _fpr(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    neg = y_true == 0
    return float((y_pred[neg] == 1).mean()) if neg.any() else float("nan")


def _fnr(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    pos = y_true == 1
    return float((y_pred[pos] == 0).mean()) if pos.any() else float("nan")


def _rate_ci(metric: str, y: np.ndarray, yhat: np.ndarray) -> tuple[float, float] | None:
    """Wilson interval of one per-group rate from its own numerator and denominator."""
    if metric == "accuracy":
        hits = (y == yhat)
    elif metric == "false_positive_rate":
        hits = yhat[y == 0] == 1
    elif metric == "false_negative_rate":
        hits = yhat[y == 1] == 0
    else:  # selection_rate
        hits = yhat == 1
    return proportion_ci(hits.astype(float)) if len(hits) else None


def _boot_rates(y: np.ndarray, yhat: np.ndarray, codes: np.ndarray, n_groups: int, weights: np.ndarray
                ) -> dict[str, np.ndarray]:
    """Per-resample, per-group metrics from multinomial resampling weights (B, n)."""
    def per_group(mask: np.ndarray) -> np.ndarray:
        onehot = (codes[None, :] == np.arange(n_groups)[:, None]) & mask[None, :]
        return weights @ onehot.T.astype(float)  # (B, G)

    with np.errstate(divide="ignore", invalid="ignore"):
        n = per_group(np.ones_like(y, dtype=bool))
        tp, fp = per_group((y == 1) & (yhat == 1)), per_group((y == 0) & (yhat == 1))
        tn, fn = per_group((y == 0) & (yhat == 0)), per_group((y == 1) & (yhat == 0))
        return {"accuracy": (tp + tn) / n, "false_positive_rate": fp / (fp + tn),
                "false_negative_rate": fn / (fn + tp), "selection_rate": (tp + fp) / n,
                "true_positive_rate": tp / (tp + fn)}


@dataclass(frozen=True)
class GroupMetricsResult:
    """Result of :func:`group_metrics`.

    Attributes
    ----------
    frame : fairlearn.metrics.MetricFrame
        The MetricFrame itself (``.by_group``, ``.difference()``, ...).
    metrics : mapping of str to Metric
        ``<metric>.overall``, ``<metric>.difference``, ``<metric>.by_group.<g>``,
        ``demographic_parity_difference``, ``equalized_odds_difference``.
    table : DataFrame
        Per example: text, group, label, prediction.
    """

    frame: Any
    metrics: Mapping[str, Metric]
    table: pd.DataFrame
    notes: tuple[str, ...] = field(default=())
    items: pd.DataFrame | None = None

    def to_section(self) -> SectionResult:
        by_group = self.frame.by_group.reset_index()
        tables = {"examples": self.table, "by_group": by_group}
        if self.items is not None:
            tables[ITEMS_TABLE] = self.items
        return SectionResult(metrics=dict(self.metrics), tables=tables,
                             details={"by_group": by_group.to_dict("records"), "citation": CITATIONS["groups"]},
                             notes=self.notes)


def group_metrics(y_true: Sequence[int], y_pred: Sequence[int], groups: Sequence[str], *, seed: int = 0,
                  n_bootstrap: int = 1000, table: pd.DataFrame | None = None) -> GroupMetricsResult:
    """Per-group classification metrics with fairlearn's MetricFrame and 95% intervals.

    The point values come from ``MetricFrame``. Every rate (overall and per group) gets a Wilson score
    interval from its own numerator and denominator (a rate of 0/n is never given a zero-width interval).
    Intervals of ``difference`` (max minus min over groups) come from a stratified bootstrap (examples
    resampled within their group) and are basic (reverse-percentile) intervals, because percentile
    intervals of a max-type statistic lean upwards when groups are small (see
    :func:`raikit.fairness._stats.gap_ci` for the fallback when the basic interval excludes the point).

    Parameters
    ----------
    y_true, y_pred : sequence of int
        Binary labels (1 = the positive class).
    groups : sequence of str
        The sensitive feature.

    Returns
    -------
    GroupMetricsResult
    """
    from fairlearn.metrics import (
        MetricFrame,
        demographic_parity_difference,
        equalized_odds_difference,
        false_negative_rate,
        false_positive_rate,
        selection_rate,
    )
    from sklearn.metrics import accuracy_score

    y = np.asarray(y_true, dtype=int)
    yhat = np.asarray(y_pred, dtype=int)
    g = np.asarray(groups, dtype=object).astype(str)
    if not (len(y) == len(yhat) == len(g)) or len(y) == 0:
        raise RaikitInputError("y_true, y_pred and groups must be non-empty and of equal length")
    fns = {"accuracy": accuracy_score, "false_positive_rate": false_positive_rate,
           "false_negative_rate": false_negative_rate, "selection_rate": selection_rate}
    mf = MetricFrame(metrics=fns, y_true=y, y_pred=yhat, sensitive_features=pd.Series(g, name="group"))
    names = list(mf.by_group.index)
    codes = np.array([names.index(x) for x in g])
    rng = np.random.default_rng(seed)
    # stratified bootstrap: examples are resampled within their group, so group sizes stay fixed
    weights = np.zeros((n_bootstrap, len(y)))
    for j in range(len(names)):
        members = np.flatnonzero(codes == j)
        weights[:, members] = rng.multinomial(len(members), np.full(len(members), 1 / len(members)),
                                              size=n_bootstrap)
    boot = _boot_rates(y, yhat, codes, len(names), weights)
    def spread(arr: np.ndarray) -> np.ndarray:
        with _quiet():
            return np.nanmax(arr, axis=1) - np.nanmin(arr, axis=1) if arr.shape[1] else arr[:, 0]

    metrics: dict[str, Metric] = {}
    counts = pd.Series(g).value_counts()
    diff = mf.difference()
    wilson = {"ci": PROPORTION_CI}
    for m in fns:
        metrics[f"{m}.overall"] = Metric(float(mf.overall[m]), _rate_ci(m, y, yhat), len(y), wilson)
        with _quiet():
            d_ci, d_how = gap_ci(float(diff[m]), spread(boot[m]))
            metrics[f"{m}.difference"] = Metric(float(diff[m]), d_ci, len(y),
                                                {"what": "largest minus smallest group value (MetricFrame.difference)",
                                                 "ci": f"{d_how}, stratified by group"})
        for name in names:
            keep = g == name
            metrics[f"{m}.by_group.{_safe(name)}"] = Metric(float(mf.by_group.loc[name, m]),
                                                            _rate_ci(m, y[keep], yhat[keep]), int(counts[name]), wilson)
    with _quiet():
        eo_boot = np.maximum(spread(boot["true_positive_rate"]), spread(boot["false_positive_rate"]))
    dpd = float(demographic_parity_difference(y, yhat, sensitive_features=g))
    eod = float(equalized_odds_difference(y, yhat, sensitive_features=g))
    dpd_ci, dpd_how = gap_ci(dpd, spread(boot["selection_rate"]))
    eod_ci, eod_how = gap_ci(eod, eo_boot)
    metrics["demographic_parity_difference"] = Metric(dpd, dpd_ci, len(y),
                                                      {"citation": CITATIONS["groups"], "ci": dpd_how})
    metrics["equalized_odds_difference"] = Metric(eod, eod_ci, len(y), {"citation": CITATIONS["groups"], "ci": eod_how})
    tab = table if table is not None else pd.DataFrame({"group": g, "label": y, "prediction": yhat})
    return GroupMetricsResult(frame=mf, metrics=metrics, table=tab, items=_group_items(y, yhat, g, names))


def _group_items(y: np.ndarray, yhat: np.ndarray, g: np.ndarray, names: Sequence[str]) -> pd.DataFrame:
    """Per-example values of the rate metrics (each a mean over its examples), for paired re-audit comparisons."""
    keys = np.array([f"example {i}" for i in range(len(y))])
    per = {"accuracy": (np.ones(len(y), bool), (y == yhat)), "selection_rate": (np.ones(len(y), bool), yhat),
           "false_positive_rate": (y == 0, yhat), "false_negative_rate": (y == 1, 1 - yhat)}
    parts = []
    for metric, (rows, values) in per.items():
        values = np.asarray(values, dtype=float)
        parts.append(metric_items(f"{metric}.overall", values[rows], items=keys[rows]))
        for name in names:
            keep = rows & (g == name)
            if keep.any():
                parts.append(metric_items(f"{metric}.by_group.{_safe(name)}", values[keep], items=keys[keep]))
    return pd.concat(parts, ignore_index=True)


@dataclass(frozen=True)
class GroupsOptions:
    """Options of ``[fairness.groups]``.

    Attributes
    ----------
    data : str
        CSV with text, label and group columns; "" builds labelled text from the starter MFT templates
        (label = the template's expected class, group = the identity group filled in).
    text_column : str
        Column of ``data`` holding each text the model classifies.
    label_column : str
        Column of ``data`` holding each text's true class (a class name, mapped by ``label_map``).
    group_column : str
        Column of ``data`` holding each text's group name; metrics are reported per distinct value.
    positive_label : str
        The class counted as positive (selection rate, FPR, FNR); a class name of the model (after
        ``label_map``).
    label_map : dict
        Data label -> model class name.
    templates : str
        Template file (TOML/CSV) whose MFT tests become the labelled, grouped texts when ``data`` is "".
    lexicons : list of str
        Lexicon files filling those templates' slots; a slot word's group is the text's group (used only
        when ``data`` is "").
    max_items : int
        Starter-template instances per template: beyond it, a fixed random subsample (seeded); 0 = all
        (formerly ``max_instances``).
    n_bootstrap : int
        Bootstrap resamples of the 95% confidence intervals.
    calibration : bool
        Also measure calibration per group from the predicted-class probability: expected calibration error
        (10 equal-width bins) and its over- and under-confidence parts (``calibration.*`` metrics).
    """

    data: str = ""
    text_column: str = "text"
    label_column: str = "label"
    group_column: str = "group"
    positive_label: str = "positive"
    label_map: dict[str, str] = field(default_factory=dict)
    templates: str = "builtin:templates/classifier.toml"
    lexicons: list[str] = field(default_factory=lambda: list(_DEFAULT_LEXICONS))
    max_items: int = 500
    n_bootstrap: int = 1000
    calibration: bool = True


def _check_groups(options: GroupsOptions, ctx: RunContext) -> None:
    """Read the labelled data (or the templates) before any model loads."""
    if not options.data:
        _check_starter(options, ctx, "groups")
        return
    path = ctx.existing_path(options.data, where="key 'data'")
    with data_key("data", path):
        data = pd.read_csv(path, dtype=str, keep_default_na=False)
        for col in (options.text_column, options.label_column, options.group_column):
            if col not in data.columns:
                raise RaikitInputError(f"column {col!r} missing (columns: {', '.join(data.columns)})", where=str(path))
        if data.empty:
            raise RaikitInputError("no rows", where=str(path))


def _groups_classes(options: GroupsOptions, ctx: RunContext) -> list[tuple[str, str]]:
    wanted = [("positive_label", options.positive_label)]
    if not options.data:
        inst = _starter_instances(options.templates, options.lexicons, ctx, section="groups", max_instances=1)
        labels = sorted({str(v) for v in inst.loc[inst["test"] == "mft", "label"].dropna()})
        wanted += [("label_map", options.label_map.get(label, label)) for label in labels]
    return wanted


def _run_groups(adapter: Any, options: GroupsOptions, ctx: RunContext) -> SectionResult:
    _need_classifier(adapter, "groups")
    notes: tuple[str, ...] = ()
    if options.data:
        path = ctx.existing_path(options.data, where="groups.data")
        data = pd.read_csv(path, dtype=str, keep_default_na=False)
        for col in (options.text_column, options.label_column, options.group_column):
            if col not in data.columns:
                raise RaikitInputError(f"column {col!r} missing (columns: {', '.join(data.columns)})", where=str(path))
        frame = pd.DataFrame({"text": data[options.text_column], "label": data[options.label_column],
                              "group": data[options.group_column]})
    else:
        inst = _starter_instances(options.templates, options.lexicons, ctx, section="groups",
                                  max_instances=options.max_items)
        inst = inst[(inst["test"] == "mft") & inst["label"].notna()]
        frame = pd.DataFrame({"text": inst["text"], "label": inst["label"], "group": _group_column(inst)})
        notes = ("groups: labelled data built from raikit's starter MFT templates (label = expected class, "
                 "group = identity filled in).",)
    if options.positive_label not in adapter.labels:
        raise RaikitInputError(f"positive_label {options.positive_label!r} is not a class of the model "
                               f"({', '.join(adapter.labels)})", where="groups.positive_label")
    names = [options.label_map.get(str(v), str(v)) for v in frame["label"]]
    unknown = sorted(set(names) - set(adapter.labels))
    if unknown:
        raise RaikitInputError(f"label {unknown[0]!r} is not a class of the model ({', '.join(adapter.labels)}); "
                               "map it with label_map", where="groups.label_column")
    pos = adapter.labels.index(options.positive_label)
    y = np.array([adapter.labels.index(n) == pos for n in names], dtype=int)
    proba = adapter.predict_proba(frame["text"].tolist())
    yhat = (proba.argmax(axis=1) == pos).astype(int)
    table = frame.assign(y_true=y, y_pred=yhat).reset_index(drop=True)
    res = group_metrics(y, yhat, frame["group"].astype(str).tolist(), seed=ctx.seed, n_bootstrap=options.n_bootstrap,
                        table=table)
    sec = res.to_section()
    metrics = dict(sec.metrics)
    if options.calibration:  # per group: is the model as sure as it is right? (ECE, over-/under-confidence)
        from raikit.fairness.calibration import calibration_by_group

        true_class = np.array([adapter.labels.index(n) for n in names])
        cal = calibration_by_group(proba.max(axis=1), proba.argmax(axis=1) == true_class,
                                   [_safe(g) for g in frame["group"].astype(str)], seed=ctx.seed,
                                   n_bootstrap=options.n_bootstrap)
        metrics.update({f"calibration.{k}": m for k, m in cal.metrics.items()})
    return SectionResult(metrics=metrics, tables=sec.tables, details=sec.details, notes=notes)


_METRICS = ("accuracy", "false_positive_rate", "false_negative_rate", "selection_rate")
_LABELS = {"accuracy": ("Accuracy", "Share of texts whose label the model predicts correctly."),
           "false_positive_rate": ("False positive rate", "Share of negative texts predicted positive."),
           "false_negative_rate": ("False negative rate", "Share of positive texts predicted negative."),
           "selection_rate": ("Selection rate", "Share of texts predicted positive.")}

_CALIBRATION = {"ece": ("Expected calibration error", "Mean gap between confidence and accuracy over confidence "
                                                         "bins; 0 is calibrated."),
                "overconfidence": ("Overconfidence", "The part of the calibration error where the model is more "
                                                     "sure than right; 0 is none."),
                "underconfidence": ("Underconfidence", "The part of the calibration error where the model is right "
                                                       "more often than it is sure; 0 is none.")}

SECTIONS.register("counterfactual")(Section(
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
))
SECTIONS.register("behaviour")(Section(
    name="behaviour", options=BehaviourOptions, model_kinds=("classifier",), run=_run_behaviour, check=_check_behaviour,
    classes=_behaviour_classes,
    description="CheckList behaviour tests: minimum functionality and directional expectations across groups",
    citation=CITATIONS["behaviour"],
    metrics=("failure_rate", "mft.failure_rate", "dir.failure_rate", "by_group.*.failure_rate",
             "by_template.*.failure_rate", "group_gap"),
    meanings=(("failure_rate", "Behaviour test failure rate", "Share of test cases the model gets wrong; 0 is none."),
              ("mft.failure_rate", "Minimum functionality failures",
               "Share of simple labelled cases (one per group) predicted wrongly."),
              ("dir.failure_rate", "Directional expectation failures",
               "Share of edits whose prediction moved the wrong way."),
              ("by_group.*.failure_rate", "Failure rate, group {}", "Failure rate over this group's cases."),
              ("by_template.*.failure_rate", "Failure rate, template {}", "Failure rate over one template's cases."),
              ("group_gap", "Largest gap between groups", "Highest minus lowest per-group failure rate.")),
))
SECTIONS.register("groups")(Section(
    name="groups", options=GroupsOptions, model_kinds=("classifier",), run=_run_groups, check=_check_groups,
    classes=_groups_classes,
    description="Per-group accuracy, FPR, FNR and selection rate (fairlearn MetricFrame) and parity differences",
    citation=CITATIONS["groups"],
    metrics=tuple(f"{m}.{v}" for m in _METRICS for v in ("overall", "difference", "by_group.*"))
    + ("demographic_parity_difference", "equalized_odds_difference")
    + tuple(f"calibration.{k}.{v}" for k in _CALIBRATION for v in ("overall", "by_group.*")) + ("calibration.ece.difference",),
    meanings=tuple((f"{m}.{v}", f"{_LABELS[m][0]}{suffix}", meaning)
                   for m in _METRICS for v, suffix, meaning in (
                       ("overall", ", all texts", _LABELS[m][1]),
                       ("difference", ", largest gap between groups",
                        "Highest minus lowest per-group value; 0 is parity."),
                       ("by_group.*", ", group {}", _LABELS[m][1] + " Over this group's texts.")))
    + (("demographic_parity_difference", "Demographic parity difference",
        "Largest gap between groups in the share predicted positive; 0 is parity."),
       ("equalized_odds_difference", "Equalized odds difference",
        "Larger of the largest gaps in true- and false-positive rates between groups; 0 is parity."))
    + tuple((f"calibration.{k}.{v}", f"{label}{suffix}", meaning) for k, (label, meaning) in _CALIBRATION.items()
            for v, suffix in (("overall", ", all texts"), ("by_group.*", ", group {}")))
    + (("calibration.ece.difference", "Calibration error, largest gap between groups",
        "Highest minus lowest per-group expected calibration error; 0 is equally calibrated."),),
))
