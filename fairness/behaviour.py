"""``[fairness.behaviour]``: CheckList behaviour tests of a text classifier (Ribeiro et al. 2020).

Tests from templates: minimum functionality (MFT: the prediction must be the template's label whatever
identity fills it) and directional (DIR: the label's probability must move up/down from ``text`` to
``perturbed``); failure rates overall, per test type, per identity group and per template (the instances
of one template are one cluster), with a permutation p-value for the largest gap between groups.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from raikit.audits.errors import RaikitInputError
from raikit.audits.results import Metric, SectionResult
from raikit.audits.sections import RunContext, Rule, Section
from raikit.fairness._classifier_common import (
    _DEFAULT_LEXICONS, CITATIONS, _check_starter, _group_column, _need_classifier, _safe, _starter_instances,
)
from raikit.audits.stats import CLUSTER_PROPORTION_CI, PROPORTION_CI, proportion_ci

__all__ = ["SECTION", "BehaviourOptions", "BehaviourResult", "behaviour_tests"]


def _label_index(adapter: Any, label: str, label_map: Mapping[str, str]) -> int:
    name = label_map.get(label, label)
    if name not in adapter.labels:
        raise RaikitInputError(f"template label {label!r} is not a class of the model ({', '.join(adapter.labels)}); "
                               "map it with label_map")
    return adapter.labels.index(name)


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


SECTION = Section(
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
    rules=(
        Rule("behaviour_gaps", ("by_group.*.failure_rate",), "group gap", "behaviour-test failure rate per group",
             0.0, 1.0, family=True, better="lower"),
        Rule("behaviour", ("failure_rate",), "behaviour", "behaviour-test failure rate", 0.0, 1.0),
    ),
)
