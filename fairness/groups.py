"""``[fairness.groups]``: per-group metrics of a text classifier (Hardt et al. 2016; fairlearn).

Accuracy, false positive rate, false negative rate and selection rate per group with
``fairlearn.metrics.MetricFrame``, plus demographic parity and equalized odds differences, on labelled data
with a group column (a CSV the user gives, or by default the starter MFT templates, whose label is the
expected class and whose identity group is the group); Wilson intervals per rate, stratified-bootstrap
intervals for the gaps, and calibration per group (:mod:`raikit.fairness.calibration`).
"""
from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from raikit.audits.errors import RaikitInputError
from raikit.audits.results import Metric, SectionResult
from raikit.audits.retrain_metrics import ITEMS_TABLE, metric_items
from raikit.audits.sections import RunContext, Rule, Section, data_key
from raikit.fairness._classifier_common import (
    _DEFAULT_LEXICONS, CITATIONS, _check_starter, _group_column, _need_classifier, _safe, _starter_instances,
)
from raikit.audits.stats import PROPORTION_CI, gap_ci, proportion_ci

__all__ = ["SECTION", "GroupsOptions", "GroupMetricsResult", "group_metrics"]


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
    :func:`raikit.audits.stats.gap_ci` for the fallback when the basic interval excludes the point).

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

SECTION = Section(
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
    rules=(Rule("rate_gaps", ("*.by_group.*",), "group gap", "classifier outcome per group", 0.0, 1.0, family=True),),
)
