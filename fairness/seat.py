"""SEAT / WEAT: association tests on sentence embeddings (Caliskan et al. 2017; May et al. 2019).

For target sets X, Y and attribute sets A, B of embeddings:

* ``s(w, A, B) = mean_{a in A} cos(w, a) - mean_{b in B} cos(w, b)``;
* effect size ``d = (mean_{x in X} s(x) - mean_{y in Y} s(y)) / std_{w in X ∪ Y} s(w)`` with the sample
  standard deviation (ddof=1), as in the SEAT reference code (W4ngatang/sent-bias, McGill-NLP/bias-bench);
* one-sided p-value: the share of equal-size splits (X', Y') of X ∪ Y with
  ``sum_{x in X'} s(x) >= sum_{x in X} s(x)`` (ties count, the reference's conservative test). All splits
  are enumerated when there are at most ``n_samples`` of them; otherwise ``n_samples - 1`` random splits are
  drawn and one extra hit is counted, exactly like the reference.

The effect size's 95% interval is a percentile bootstrap that resamples the words (sentences) of each
of X, Y, A and B independently, within their set; it shows how much ``d`` depends on the particular
words chosen (the reference reports no interval).

Sentences built from templates (:mod:`raikit.fairness.template_seat`) are not independent: every
template filled with the same word moves together. Such a test carries *clusters* (the word behind
each sentence); the bootstrap then resamples words, each with all its sentences, and the permutation
test splits words rather than sentences, using each word's mean ``s``. Without clusters every
sentence is its own cluster and both reduce to the definitions above.

Sentences are embedded with ``adapter.embed`` (mean pooling over the last layer, any model kind); each
distinct sentence is embedded once across all tests.
"""
from __future__ import annotations

import difflib
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raikit.audits.errors import RaikitInputError
from raikit.audits.results import Metric, SectionResult
from raikit.audits.sections import RunContext, Rule, Section, data_key

__all__ = ["SeatOptions", "SeatTest", "SeatResult", "WeatResult", "load_seat_test", "weat_effect_size", "weat_p_value",
           "weat", "seat", "CITATION", "SECTION", "ASSOCIATION_RULE"]

CITATION = ("May, C., Wang, A., Bordia, S., Bowman, S. R., Rudinger, R. (2019). On Measuring Social Biases in "
            "Sentence Encoders. NAACL 2019. Caliskan, A., Bryson, J. J., Narayanan, A. (2017). Semantics derived "
            "automatically from language corpora contain human-like biases. Science 356.")
_SETS = ("targ1", "targ2", "attr1", "attr2")


@dataclass(frozen=True)
class SeatTest:
    """One SEAT/WEAT test: two target sets and two attribute sets of words or sentences."""

    name: str
    categories: Mapping[str, str]
    examples: Mapping[str, tuple[str, ...]]
    clusters: Mapping[str, tuple[str, ...]] | None = None
    """Optional: per set, the word (cluster label) behind each example, aligned with ``examples``."""


def load_seat_test(path: str | Path) -> SeatTest:
    """Read a SEAT ``.jsonl`` file (one JSON object with targ1, targ2, attr1, attr2 -> category, examples)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RaikitInputError(f"cannot parse SEAT test: {exc}", where=str(path)) from None
    cats, ex = {}, {}
    for key in _SETS:
        part = data.get(key) if isinstance(data, dict) else None
        if not isinstance(part, dict) or not part.get("examples"):
            raise RaikitInputError(f"set {key!r} missing or empty (needs category and examples)", where=str(path))
        cats[key] = str(part.get("category", key))
        ex[key] = tuple(str(e) for e in part["examples"])
    return SeatTest(name=path.stem, categories=cats, examples=ex)


def _cos(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    un = u / np.linalg.norm(u, axis=1, keepdims=True)
    vn = v / np.linalg.norm(v, axis=1, keepdims=True)
    return un @ vn.T


def _s_w(xy: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _cos(xy, a).mean(axis=1) - _cos(xy, b).mean(axis=1)


def weat_effect_size(x: np.ndarray, y: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """WEAT effect size of target embeddings x, y and attribute embeddings a, b (rows are vectors)."""
    s = _s_w(np.concatenate([x, y]), a, b)
    return float((s[: len(x)].mean() - s[len(x):].mean()) / np.std(s, ddof=1))


def _p_from_s(s: np.ndarray, nx: int, *, n_samples: int, seed: int) -> tuple[float, str]:
    observed = s[:nx].sum()
    n = len(s)
    n_partitions = math.comb(n, nx)
    tol = 1e-12 * max(1.0, abs(observed))
    if n_partitions <= n_samples:
        hits = total = 0
        combos = itertools.combinations(range(n), nx)
        while True:
            chunk = np.array(list(itertools.islice(combos, 50_000)), dtype=np.int64)
            if not len(chunk):
                break
            sums = s[chunk].sum(axis=1)
            hits += int((sums >= observed - tol).sum())
            total += len(chunk)
        return hits / total, f"exact ({n_partitions} partitions)"
    rng = np.random.default_rng(seed)
    hits, total, left = 1, 1, n_samples - 1
    while left > 0:
        m = min(left, 20_000)
        perms = rng.permuted(np.tile(np.arange(n), (m, 1)), axis=1)[:, :nx]
        hits += int((s[perms].sum(axis=1) >= observed - tol).sum())
        total += m
        left -= m
    return hits / total, f"sampled ({n_samples} of {n_partitions} partitions, biased by 1)"


def weat_p_value(x: np.ndarray, y: np.ndarray, a: np.ndarray, b: np.ndarray, *, n_samples: int = 100_000,
                 seed: int = 0) -> float:
    """One-sided permutation p-value of the WEAT statistic (see the module docstring)."""
    s = _s_w(np.concatenate([x, y]), a, b)
    return _p_from_s(s, len(x), n_samples=n_samples, seed=seed)[0]


@dataclass(frozen=True)
class WeatResult:
    """One test's numbers."""

    name: str
    effect_size: float
    effect_ci: tuple[float, float] | None
    p_value: float
    p_method: str
    n: int
    categories: Mapping[str, str]
    n_units: int = 0
    """Independent units behind the numbers: words when sentences are clustered, else ``n``."""
    min_p_value: float = 0.0
    """The smallest p-value the exact permutation test can give (0 when it was sampled)."""
    undefined: str = ""
    """Why the effect size is undefined (NaN), e.g. every target has the same association; empty otherwise."""


def _cluster_rows(labels: Sequence[Any] | None, n: int) -> list[np.ndarray]:
    """Row indices of each cluster, in order of first appearance (one row each when unlabelled)."""
    if labels is None:
        return [np.array([i]) for i in range(n)]
    if len(labels) != n:
        raise ValueError(f"{len(labels)} cluster labels for {n} rows")
    rows: dict[Any, list[int]] = {}
    for i, label in enumerate(labels):
        rows.setdefault(label, []).append(i)
    return [np.array(r) for r in rows.values()]


def weat(x: np.ndarray, y: np.ndarray, a: np.ndarray, b: np.ndarray, *, name: str = "weat",
         categories: Mapping[str, str] | None = None, clusters: Sequence[Sequence[Any] | None] | None = None,
         n_samples: int = 100_000, n_bootstrap: int = 1000, seed: int = 0) -> WeatResult:
    """Effect size, bootstrap interval and permutation p-value of one WEAT on given embeddings.

    Parameters
    ----------
    x, y, a, b : ndarray
        Target and attribute embeddings, one row per word or sentence.
    clusters : four sequences or None, optional
        Cluster label (e.g. the word a templated sentence was built from) of every row of x, y, a, b;
        the bootstrap then resamples clusters and the permutation test splits clusters.
    """
    labels = list(clusters) if clusters is not None else [None] * 4
    if len(labels) != 4:
        raise ValueError("clusters needs one entry for each of x, y, a, b")
    cx, cy, ca, cb = (_cluster_rows(lab, len(m)) for lab, m in zip(labels, (x, y, a, b)))
    cos_a = _cos(np.concatenate([x, y]), a)
    cos_b = _cos(np.concatenate([x, y]), b)
    s = cos_a.mean(axis=1) - cos_b.mean(axis=1)
    nx, ny = len(x), len(y)
    spread = float(np.std(s, ddof=1))
    undefined = ("" if spread > 0 else "every target has the same association s(w, A, B) (identical embeddings?): "
                 "the effect size divides by their standard deviation, 0, so it is undefined")
    effect = float((s[:nx].mean() - s[nx:].mean()) / spread) if spread > 0 else math.nan
    clustered = any(lab is not None for lab in labels)
    if not clustered:
        p, method = _p_from_s(s, nx, n_samples=n_samples, seed=seed)
    else:
        # each word's mean s; equal to the sentence-level statistic when every word fills the same templates
        means = np.array([s[r].mean() for r in cx] + [s[nx + r].mean() for r in cy])
        p, method = _p_from_s(means, len(cx), n_samples=n_samples, seed=seed)
        method += " of words"
    n_splits = math.comb(len(cx) + len(cy), len(cx))
    min_p = 1 / n_splits if n_splits <= n_samples else 0.0
    rng = np.random.default_rng(seed)

    def draw(c: list[np.ndarray]) -> np.ndarray:
        picks = rng.integers(0, len(c), len(c))
        return picks if not clustered else np.concatenate([c[k] for k in picks])

    boots = []
    for _ in range(n_bootstrap):
        ix, iy, ia, ib = (draw(c) for c in (cx, cy, ca, cb))
        rows = np.concatenate([ix, nx + iy])
        sb = cos_a[np.ix_(rows, ia)].mean(axis=1) - cos_b[np.ix_(rows, ib)].mean(axis=1)
        sd = np.std(sb, ddof=1)
        if sd > 0:
            boots.append((sb[:len(ix)].mean() - sb[len(ix):].mean()) / sd)
    ci = (float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))) if len(boots) > 1 else None
    return WeatResult(name=name, effect_size=effect, effect_ci=ci, p_value=p, p_method=method,
                      n=nx + ny + len(a) + len(b), categories=dict(categories or {}),
                      n_units=len(cx) + len(cy) + len(ca) + len(cb), min_p_value=min_p, undefined=undefined)


@dataclass(frozen=True)
class SeatResult:
    """Result of :func:`seat`: one :class:`WeatResult` per test and a per-test table."""

    tests: tuple[WeatResult, ...]
    table: pd.DataFrame
    items: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Every target word/sentence with its association ``s(w, A, B)`` (positive: closer to A)."""
    notes: tuple[str, ...] = field(default=())

    def to_section(self) -> SectionResult:
        """``<test>.effect_size`` (with CI) and ``<test>.p_value`` for every test."""
        metrics: dict[str, Metric] = {}
        for t in self.tests:
            clustered = t.n_units != t.n
            info = {"categories": dict(t.categories), "p_value": t.p_value, "p_method": t.p_method,
                    "ci_method": ("bootstrap over the words of each set, each with all its sentences" if clustered
                                  else "bootstrap over the words/sentences of each set"),
                    "n_units": t.n_units}
            if t.undefined:
                info["undefined"] = t.undefined
            metrics[f"{t.name}.effect_size"] = Metric(t.effect_size, t.effect_ci, t.n, info)
            metrics[f"{t.name}.p_value"] = Metric(t.p_value, None, t.n, {"method": t.p_method})
        return SectionResult(metrics=metrics, tables={"tests": self.table, "associations": self.items},
                             details={"tests": self.table.to_dict("records")}, notes=self.notes)


def seat(adapter: Any, tests: Sequence[SeatTest], *, layer: int = -1, n_samples: int = 100_000,
         n_bootstrap: int = 1000, seed: int = 0) -> SeatResult:
    """Run SEAT tests on the model's sentence embeddings (each distinct sentence embedded once).

    Parameters
    ----------
    adapter : ModelAdapter
        Any kind; ``adapter.embed`` gives the embeddings.
    tests : sequence of SeatTest
    layer : int
        Hidden layer to mean-pool.
    n_samples : int
        Exact permutation test up to this many partitions, else this many sampled partitions.
    n_bootstrap : int
        Bootstrap resamples of the effect size interval.

    Returns
    -------
    SeatResult
    """
    sentences = list(dict.fromkeys(e for t in tests for key in _SETS for e in t.examples[key]))
    vectors = adapter.embed(sentences, layer=layer).astype(np.float64) if sentences else np.zeros((0, 1))
    index = {s: i for i, s in enumerate(sentences)}
    results, rows, items = [], [], []
    notes: list[str] = []
    for t in tests:
        x, y, a, b = (vectors[[index[e] for e in t.examples[k]]] for k in _SETS)
        s_xy = _s_w(np.concatenate([x, y]), a, b)
        for k, examples, values in (("targ1", t.examples["targ1"], s_xy[:len(x)]),
                                    ("targ2", t.examples["targ2"], s_xy[len(x):])):
            words = t.clusters.get(k) if t.clusters else None
            items += [{"test": t.name, "set": k, "category": t.categories[k], "word": words[i] if words else e,
                       "text": e, "association": float(v)} for i, (e, v) in enumerate(zip(examples, values))]
        clusters = [t.clusters.get(k) for k in _SETS] if t.clusters else None
        r = weat(x, y, a, b, name=t.name, categories=t.categories, clusters=clusters, n_samples=n_samples,
                 n_bootstrap=n_bootstrap, seed=seed)
        results.append(r)
        if r.min_p_value >= 0.05:
            notes.append(f"seat: test {t.name!r} has too few words for p < 0.05 (the smallest possible p-value "
                         f"is {r.min_p_value:.3g}); add words to its target sets.")
        rows.append({"test": t.name, **{f"{k}_category": t.categories[k] for k in _SETS},
                     **{f"n_{k}": len(t.examples[k]) for k in _SETS}, "effect_size": r.effect_size,
                     "ci_low": r.effect_ci[0] if r.effect_ci else None,
                     "ci_high": r.effect_ci[1] if r.effect_ci else None, "p_value": r.p_value,
                     "p_method": r.p_method})
    return SeatResult(tests=tuple(results), table=pd.DataFrame(rows),
                      items=pd.DataFrame(items, columns=["test", "set", "category", "word", "text", "association"]),
                      notes=tuple(notes))


@dataclass(frozen=True)
class SeatOptions:
    """Options of ``[fairness.seat]``.

    Attributes
    ----------
    tests : list of str
        SEAT test names (file stems in ``data_dir``).
    data_dir : str
        Folder of SEAT ``.jsonl`` files.
    layer : int
        Hidden layer to mean-pool.
    n_samples : int
        Permutation partitions (exact test when there are no more than this).
    n_bootstrap : int
        Bootstrap resamples of the effect size's 95% confidence interval.
    """

    tests: list[str] = field(default_factory=lambda: ["weat6", "weat7", "weat8", "sent-weat6", "sent-weat7",
                                                      "sent-weat8"])
    data_dir: str = "{data_dir}/seat"
    layer: int = -1
    n_samples: int = 100_000
    n_bootstrap: int = 1000


def _load_tests(options: SeatOptions, ctx: RunContext) -> list[SeatTest]:
    folder = ctx.existing_path(options.data_dir, where="key 'data_dir'")
    if not options.tests:
        raise RaikitInputError("is empty; name at least one test (e.g. weat6)", where="key 'tests'")
    tests = []
    for name in options.tests:
        path = folder / f"{name}.jsonl"
        if not path.is_file():
            known = sorted(p.stem for p in folder.glob("*.jsonl"))
            close = difflib.get_close_matches(name, known, n=3)
            hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(known[:12])}"
            more = f" ({len(known)} tests there)" if len(known) > 12 else ""
            raise RaikitInputError(f"no SEAT test {name!r} in {folder}; {hint}{more}", where="key 'tests'")
        with data_key("tests", path):
            tests.append(load_seat_test(path))
    return tests


def _check(options: SeatOptions, ctx: RunContext) -> None:
    """Every named test exists and reads, before any model loads."""
    _load_tests(options, ctx)


def _run(adapter: Any, options: SeatOptions, ctx: RunContext) -> SectionResult:
    tests = _load_tests(options, ctx)
    return seat(adapter, tests, layer=options.layer, n_samples=options.n_samples, n_bootstrap=options.n_bootstrap,
                seed=ctx.seed).to_section()


#: How the report reads an association effect size (Cohen's d over its maximum of 2) as a finding; SEAT/WEAT,
#: templated SEAT and the fill-mask probe declare it for their ``effect_size`` metrics.
ASSOCIATION_RULE = Rule("associations", ("effect_size", "*.effect_size"), "association",
                        "association effect size (Cohen's d, at most 2)", 0.0, 2.0)


SECTION = Section(
    name="seat", options=SeatOptions, model_kinds=("masked_lm", "causal_lm", "encoder", "classifier"), run=_run,
    description="SEAT/WEAT: effect size and permutation p-value of associations in sentence embeddings",
    citation=CITATION, metrics=("*.effect_size", "*.p_value"), check=_check,
    meanings=(("*.effect_size", "Association effect size, test {}",
               "Cohen's d of target-attribute association in sentence embeddings; 0 is none, |d| > 0.8 is large."),
              ("*.p_value", "Permutation p-value, test {}",
               "Chance of an association at least this strong if the target labels were random.")),
    rules=(ASSOCIATION_RULE,),
)
