"""``raikit scan MODEL [MODEL ...]``: every section that applies to each model, sized to a time budget.

How a scan runs (``docs/scan.md``):

1. The inputs are checked before any model loads (budget, model ids, the labelled CSV and its columns, the
   output files), every problem gathered, one line each.
2. Each model is loaded once; its kind (masked LM, causal LM, encoder, classifier) is the adapter's.
3. For a classifier whose classes are not called positive and negative, the positive class is read from the
   model's own predictions on raikit's starter sentiment texts; when they do not say, the scan stops with one
   line asking for ``--positive-label``.
4. The candidate sections are every registered section whose model kinds include a scanned model's kind
   (:func:`raikit.audits.runner.available_sections`, so sections added later are picked up), except those
   that retrain a model. Their data is checked as for any audit: a section whose data set is not installed
   is skipped and listed with the exact ``raikit data fetch`` command.
5. Each section with a ``max_items`` option runs on each of its models at growing sizes after a warm-up
   (1, 2, 6, then x3 while a pilot is shorter than a few seconds); the time per item is the slope between
   the last two, the fixed cost the rest. Sections without ``max_items`` run once, and that time is their cost. What is left of the budget (less a reserve
   for writing the reports) is shared equally between the sections; each gets the largest ``max_items``
   whose predicted time fits its share (shares a section cannot use go to the others). Several models in
   one section get one size and the same seed, so they are audited on the same items.
6. The audit config is written (``--write-config``, every option with its description) and run like any
   other, paced: before each section the ones left are predicted again, scaled by how much longer than
   predicted the sections so far took, and when they no longer fit the time left the next section's size is
   cut to its share (the written config then says the sizes that ran). The sizes, the pilot timings, the
   cuts and the reasons are in ``results.json`` under ``run.scan``.
7. ``--write-gates`` writes one gate per gateable metric at its current 95% CI bound ("no worse than this
   release"), ``--write-pytest`` a test file that the pytest plugin runs against those gates.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shlex
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from raikit.audits.errors import RaikitInputError
from raikit.audits.io import write_text_atomic

__all__ = ["ScanOptions", "ScanOutcome", "scan", "parse_budget", "detect_positive_label", "gates_text",
           "pytest_text", "RETRAINING"]

#: Capabilities that retrain the model: minutes of training each, not a detector; a scan lists them as not
#: run and the written config is where to add them.
RETRAINING = ("privacy", "federated", "mitigation")
#: The two pilot sizes of a section's ``max_items`` (the first is also the warm-up), per section name.
_PILOT = {"explain": (1, 2), "fill_mask": (2, 4)}  # after a warm-up run at size 1
_DEFAULT_PILOT = (2, 6)
#: Pilots grow (x3; x2 for a number of tests) until one takes this long (or a third of the section's share).
_PILOT_SECONDS = 4.0
#: An upper bound on ``max_items`` for sections whose default is "all" (None or 0).
_ALL = 100_000
_BUDGET = re.compile(r"^\s*(?:(?P<h>\d+(?:\.\d+)?)h)?\s*(?:(?P<m>\d+(?:\.\d+)?)m)?\s*(?:(?P<s>\d+(?:\.\d+)?)s?)?\s*$")


@dataclass(frozen=True)
class ScanOptions:
    """What ``raikit scan`` was asked for.

    Parameters
    ----------
    models : tuple of str
        Hub ids, local folders or ``builtin:<alias>`` names, in order.
    data : str, optional
        A labelled CSV of the user's own texts: per-group metrics and calibration (``fairness.groups``) and
        explanations (``explain``) of every classifier run on it.
    text_column : str
        Column of the texts in ``data``.
    label_column : str
        Column of the true labels in ``data`` (class names of the model, ``positive``/``negative``, or class
        indices).
    group_column : str
        Column of the group each text belongs to in ``data``.
    positive_label : str, optional
        The class of the classifiers counted as positive; None: read from the model (class names, else its
        predictions on the starter sentiment texts).
    budget_s : float
        Seconds the whole scan may take, model loading and reports included.
    out_dir : str
        Parent folder of the run folder.
    device : {"auto", "cpu", "cuda"}
        Where the models run.
    seed : int
        Seed of every subsample and resample (one seed for every model: the same items).
    write_config : str, optional
        Write the audit config the scan ran here (every option, with its description).
    write_gates : str, optional
        Write ``[gates]`` at the current 95% CI bounds here.
    write_pytest : str, optional
        Write a pytest file that gates a new run of the config with those gates.
    progress : bool
        Progress messages on stderr.
    """

    models: tuple[str, ...]
    data: str | None = None
    text_column: str = "text"
    label_column: str = "label"
    group_column: str = "group"
    positive_label: str | None = None
    budget_s: float = 600.0
    out_dir: str = "out"
    device: str = "auto"
    seed: int = 0
    write_config: str | None = None
    write_gates: str | None = None
    write_pytest: str | None = None
    progress: bool = True


@dataclass(frozen=True)
class ScanOutcome:
    """What :func:`scan` produced: the audit's outcome, the files it wrote and the wall time."""

    outcome: Any
    written: tuple[Path, ...]
    seconds: float


def parse_budget(text: str) -> float:
    """Seconds in a budget: ``300``, ``300s``, ``5m``, ``1h``, ``1h30m``, ``2m30s``.

    Raises
    ------
    RaikitInputError
        For anything else, or a budget under 10 seconds.
    """
    match = _BUDGET.match(str(text))
    if not match or not any(match.groups()):
        raise RaikitInputError(f"not a duration: {text!r} (write e.g. 300s, 5m or 1h30m)", where="--budget")
    seconds = sum(float(match[k] or 0) * f for k, f in (("h", 3600), ("m", 60), ("s", 1)))
    if seconds < 10:
        raise RaikitInputError(f"{text!r} is under 10 seconds, too short to load and measure a model",
                               where="--budget")
    return seconds


def _model_key(model_id: str, taken: set[str]) -> str:
    base = model_id.split(":", 1)[1] if model_id.startswith("builtin:") else Path(model_id.rstrip("/")).name
    base = re.sub(r"[^A-Za-z0-9_-]+", "-", base).strip("-")[:56] or "model"
    key, n = base, 1
    while key in taken:
        n += 1
        key = f"{base}-{n}"
    taken.add(key)
    return key


def _check_inputs(options: ScanOptions) -> list[str]:
    """Every problem with the flags, found before any model loads."""
    from raikit.audits.builtin import BUILTINS
    from raikit.audits.models import looks_like_path

    problems: list[str] = []
    if not options.models:
        problems.append("raikit scan: name at least one model (hub id, local folder or builtin:<alias>)")
    for model_id in options.models:
        if model_id.startswith("builtin:") and model_id not in BUILTINS:
            problems.append(f"raikit scan: model {model_id!r}: no such built-in model; known: {', '.join(BUILTINS)}")
        elif looks_like_path(model_id) and not Path(model_id).expanduser().exists():
            problems.append(f"raikit scan: model {model_id!r}: no such folder ({Path(model_id).expanduser().resolve()})")
    if len(set(options.models)) != len(options.models):
        problems.append("raikit scan: a model is named twice")
    if options.data is not None:
        problems += _check_data(options)
    for flag, value in (("--write-config", options.write_config), ("--write-gates", options.write_gates),
                        ("--write-pytest", options.write_pytest)):
        if value is not None and Path(value).is_dir():
            problems.append(f"{flag}: {value!r} is a folder; name a file")
    if options.write_pytest is not None and not options.write_pytest.endswith(".py"):
        problems.append(f"--write-pytest: {options.write_pytest!r} must be a .py file (pytest collects test_*.py)")
    return problems


def _check_data(options: ScanOptions) -> list[str]:
    import pandas as pd

    path = Path(options.data).expanduser()
    if not path.is_file():
        return [f"--data: file not found: {path}"]
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return [f"--data: {path}: cannot read the CSV ({type(exc).__name__}: {reason})"]
    problems = [f"{flag}: {path}: no column {col!r} (columns: {', '.join(frame.columns)})"
                for flag, col in (("--text-column", options.text_column), ("--label-column", options.label_column),
                                  ("--group-column", options.group_column)) if col not in frame.columns]
    if not problems and frame.empty:
        problems.append(f"--data: {path}: no rows")
    return problems


def detect_positive_label(adapter: Any, *, given: str | None = None, seed: int = 0) -> dict[str, Any]:
    """Which class of a classifier is positive and which negative, and how that was decided.

    Class names that say it (``positive``/``negative``, any case) decide; ``given`` (``--positive-label``)
    decides the positive class; otherwise the model's own predictions on raikit's starter sentiment texts do:
    the class whose probability rises most from negative to positive texts is positive, the one that falls
    most negative, and the mapping must classify the texts clearly better than chance (the lower bound of
    the Wilson 95% interval of its accuracy above 0.5).

    Returns
    -------
    dict
        ``positive``, ``negative``, ``how`` (one sentence) and, when predictions decided, ``accuracy``,
        ``ci95`` and ``n``.

    Raises
    ------
    RaikitInputError
        When the predictions do not say which class is positive, naming ``--positive-label``.
    """
    labels = list(adapter.labels)
    lower = {lab.lower(): lab for lab in labels}
    if given is not None:
        if given not in labels:
            raise RaikitInputError(f"{given!r} is not a class of model {adapter.name!r} (classes: "
                                   f"{', '.join(labels)})", where="--positive-label")
        if len(labels) == 2:
            other = labels[1 - labels.index(given)]
            return {"positive": given, "negative": other, "how": "--positive-label (the other class is negative)"}
    elif "positive" in lower and "negative" in lower:
        return {"positive": lower["positive"], "negative": lower["negative"], "how": "the class names"}
    import numpy as np

    from raikit.audits.stats import proportion_ci
    from raikit.fairness.classifier import starter_labelled_texts

    texts = starter_labelled_texts(seed=seed)
    proba = adapter.predict_proba(texts["text"].tolist())
    is_pos = (texts["label"] == "positive").to_numpy()
    rise = proba[is_pos].mean(axis=0) - proba[~is_pos].mean(axis=0)
    pos = labels.index(given) if given is not None else int(np.argmax(rise))
    rest = [j for j in range(len(labels)) if j != pos]
    neg = rest[int(np.argmin(rise[rest]))]
    right = np.where(is_pos, proba[:, pos] > proba[:, neg], proba[:, neg] > proba[:, pos]).astype(float)
    acc, (low, high) = float(right.mean()), proportion_ci(right)
    found = {"positive": labels[pos], "negative": labels[neg], "accuracy": acc, "ci95": [low, high],
             "n": int(len(right))}
    if given is not None:
        return {**found, "how": "--positive-label; the negative class from predictions on the starter texts"}
    if low <= 0.5:
        raise RaikitInputError(
            f"model {adapter.name!r} has classes {', '.join(labels)}, and its predictions on raikit's {len(right)} "
            f"starter sentiment texts do not say which is positive (best reading {labels[pos]} = positive is right "
            f"on {acc:.0%}, 95% CI [{low:.2f}, {high:.2f}]); name it with --positive-label", where="raikit scan")
    return {**found, "how": (f"predictions on {len(right)} starter sentiment texts: {labels[pos]} is positive, "
                             f"{labels[neg]} negative ({acc:.0%} right, 95% CI [{low:.2f}, {high:.2f}])")}


def _data_labels(options: ScanOptions, adapter: Any, found: Mapping[str, Any]) -> dict[str, str]:
    """``label_map`` from the labels of the user's CSV to the model's classes (one-line error when unreadable)."""
    import pandas as pd

    values = sorted(set(pd.read_csv(Path(options.data).expanduser(), dtype=str,
                                    keep_default_na=False)[options.label_column]))
    labels = list(adapter.labels)
    if set(values) <= set(labels):
        return {}
    if {v.lower() for v in values} <= {"positive", "negative"}:
        return {v: found[v.lower()] for v in values}
    if all(v.isdigit() and int(v) < len(labels) for v in values):
        return {v: labels[int(v)] for v in values}  # class index i is the head's output i
    bad = next(v for v in values if v not in labels)
    raise RaikitInputError(f"label {bad!r} is neither a class of model {adapter.name!r} ({', '.join(labels)}), "
                           "positive/negative, nor a class index", where=f"--label-column {options.label_column}")


def _log(progress: bool, message: str) -> None:
    if progress:
        import sys

        from raikit.audits.escape import for_terminal

        print(f"raikit: scan: {for_terminal(message)}", file=sys.stderr, flush=True)


def _load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover  (not on this platform)
        return None


@dataclass
class _Candidate:
    """One section table of the scan: the registered section, its models, its raw options and what sizes it."""

    table: str
    name: str
    section: Any
    models: list[str]
    options: dict[str, Any] = field(default_factory=dict)
    size_key: str | None = None
    all_tests: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        names = {f.name for f in dataclasses.fields(self.section.options)}
        tests = self.options.get("tests", getattr(self.section.options(), "tests", None))
        if "max_items" in names:
            self.size_key = "max_items"
        elif isinstance(tests, (list, dict)) and len(tests) > 1:  # run the first n of its tests
            self.size_key = "tests"
            self.all_tests = list(tests.items()) if isinstance(tests, dict) else list(tests)
        self._tests_table = isinstance(tests, dict)

    @property
    def sized(self) -> bool:
        return self.size_key is not None

    def sized_table(self, n: int | None) -> dict[str, Any]:
        """Its raw options with size ``n`` (None: as configured)."""
        if n is None or self.size_key is None:
            return dict(self.options)
        if self.size_key == "tests":
            first = self.all_tests[:n]
            return dict(self.options, tests=dict(first) if self._tests_table else first)
        return dict(self.options, max_items=n)

    @property
    def pilot_sizes(self) -> tuple[int | None, ...]:
        """Warm-up size, then the two measured sizes (one run when it has no size)."""
        if self.size_key == "tests":
            return (1, 1, 2)
        if not self.sized:
            return (None,)
        first, second = _PILOT.get(self.name, _DEFAULT_PILOT)
        return (1, first, second)

    @property
    def cap(self) -> int:
        if self.size_key == "tests":
            return len(self.all_tests)
        default = getattr(self.section.options(), "max_items", None)
        return int(default) if isinstance(default, int) and default > 0 else _ALL


def _candidates(kinds: Mapping[str, str], overrides: Mapping[str, Mapping[str, Any]]) -> tuple[
        list[_Candidate], list[dict[str, Any]]]:
    """Every registered section that takes one of the models' kinds; the retraining ones as not run."""
    from raikit.audits.runner import available_sections

    out, not_run = [], []
    for name, (table, section) in available_sections().items():
        models = [key for key, kind in kinds.items() if kind in section.model_kinds]
        if not models:
            continue
        capability = table.split(".", 1)[0]
        if capability in RETRAINING:
            not_run.append({"section": table, "models": models,
                            "reason": f"[{table}] retrains the model (minutes of training), which a scan does not "
                                      f"do; add a [{table}] table to the written config (raikit probes {name})"})
            continue
        out.append(_Candidate(table=table, name=name, section=section, models=models,
                              options=dict(overrides.get(name, {}))))
    return out, not_run


def _config_text(*, title: str, models: Mapping[str, Mapping[str, Any]], candidates: Sequence[_Candidate],
                 seed: int, device: str, skipped: Sequence[Mapping[str, Any]], documented: bool) -> str:
    """The audit TOML of a scan; ``documented`` adds every option with its description as a comment."""
    from raikit.audits.config import toml_value
    from raikit.audits.config import option_docs

    lines = [f"# {title}", f"# Written by raikit scan on {datetime.now(timezone.utc).isoformat(timespec='seconds')}; "
             "run it again with `raikit audit <this file>`.", "[run]", f"seed = {seed}", f"device = {json.dumps(device)}",
             ""]
    for key, spec in models.items():
        lines += [f"[models.{key}]"] + [f"{k} = {toml_value(v)}" for k, v in spec.items()] + [""]
    for cand in candidates:
        section = cand.section
        lines.append(f"# -- {section.description}")
        lines.append(f"[{cand.table}]")
        lines.append(f"model = {toml_value(cand.models if len(cand.models) > 1 else cand.models[0])}")
        defaults = section.options()
        docs = {d.name: d for d in option_docs(section.options)}
        for f in dataclasses.fields(section.options):
            value = cand.options.get(f.name, getattr(defaults, f.name))
            doc = docs[f.name]
            if documented and doc.description:
                lines.append(f"# {f.name} ({doc.type}): {' '.join(doc.description.replace('``', '`').split())}")
            if f.name in cand.options or documented:
                lines.append(f"# {f.name} = ...   (not set: the default)" if value is None else
                             f"{f.name} = {toml_value(value)}")
        lines.append("")
    for item in skipped:
        lines.append(f"# skipped: {item['section']}: {item.get('reason') or item.get('command')}")
    return "\n".join(lines).rstrip() + "\n"


def _pilot(cand: _Candidate, adapters: Mapping[str, Any], options_of: Callable[[int | None], Any], ctx: Any,
           progress: bool, kept: dict[tuple[str, int | None], dict[str, Any]], share: float) -> dict[str, Any]:
    """Time the section on each of its models: a warm-up, then growing sizes (once, when it has no size).

    After the warm-up and two small sizes, each next size is three times the last (twice, for a number of
    tests) while a pilot takes less than a third of ``share`` (at most :data:`_PILOT_SECONDS`): the cost per
    item is the slope between the last two, measured where it dominates the fixed cost.

    The results of each size are kept in ``kept[(table, size)]`` (model key -> (result, seconds)), for the
    audit to reuse when it runs the section at that size. The pilots stop early when the next one would take
    the section past ``share`` seconds (then the smaller size is its size, and its time per item the estimate).
    """
    sizes = list(cand.pilot_sizes)
    runs: list[list[float]] = []
    stopped = ""
    long_enough = min(share / 3, _PILOT_SECONDS)
    i = 0
    while i < len(sizes):
        n = sizes[i]
        i += 1
        if runs and n is not None:
            spent, (last_n, last_t) = sum(t for _, t in runs), runs[-1]
            if spent + last_t * n / max(last_n, 1) > share:
                stopped = (f"pilots stopped after {spent:.0f} s: the next size ({n}) would pass this section's "
                           f"pilot share of {share:.0f} s")
                break
        opts = options_of(n)
        seconds = 0.0
        results: dict[str, Any] = {}
        for key in cand.models:
            clear = getattr(adapters[key], "_cache", None)
            if hasattr(clear, "clear"):
                clear.clear()  # a cached prediction would make the second pilot look cheaper than it is
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = cand.section.run(adapters[key], opts, ctx)
            took = time.perf_counter() - t0
            seconds += took
            results[key] = (result, took)
        if cand.table.split(".", 1)[0] != "explain":  # explain also gets flagged texts in the audit
            kept[(cand.table, n)] = results
        runs.append([n if n is not None else 0, round(seconds, 3)])
        _log(progress, f"pilot {cand.table} at {cand.size_key}={n} on {len(cand.models)} model(s): {seconds:.1f} s"
             if n is not None else f"pilot {cand.table} (no size option) on {len(cand.models)} model(s): {seconds:.1f} s")
        grown = None if n is None else min(n * (2 if cand.size_key == "tests" else 3), cand.cap)
        if i == len(sizes) and grown is not None and grown > n and seconds < long_enough:
            sizes.append(grown)  # a pilot this short shows the fixed cost, not the cost per item: a bigger one
    if len(runs) == 1 and sizes[0] is None:
        return {"pilot": runs, "fixed_seconds": runs[0][1], "seconds_per_item": 0.0, "last_size": None}
    if len(runs) < 3:  # stopped early: no slope; the last run's time per item, nothing fixed (an upper bound)
        n_last, t_last = runs[-1]
        return {"pilot": runs, "fixed_seconds": 0.0, "seconds_per_item": t_last / max(n_last, 1),
                "last_size": n_last, "stopped": stopped}
    (n1, t1), (n2, t2) = runs[-2:]  # runs[0] is the warm-up (imports, JIT, caches), timed but not fitted
    # timing noise on a shared machine can make the slope negative: then the larger run's time per item
    slope = (t2 - t1) / (n2 - n1) if n2 > n1 and t2 > t1 else t2 / max(n2, 1)
    return {"pilot": runs, "warm_up": runs[0], "fixed_seconds": max(t2 - slope * n2, 0.0), "seconds_per_item": slope,
            "last_size": n2}


class _Pacer:
    """Keeps the scan's audit to its budget: before each section, the sections not yet run are predicted
    from the pilots, scaled by how much longer than predicted the sections so far took; when they would not
    fit the time left, the next section's size is cut to its share (never below its smallest pilot size).
    Several models of one table keep one size (decided at the first), so they are still compared on the same
    items. Each cut is recorded in the section's ``run.scan.sizes`` row."""

    def __init__(self, *, deadline: float, candidates: Sequence[_Candidate], costs: Mapping[str, dict[str, Any]],
                 sizes: Mapping[str, int], floors: Mapping[str, int], records: Mapping[str, dict[str, Any]],
                 options_of: Callable[[_Candidate, int], Any], reuse: dict[str, Any], progress: bool) -> None:
        self.deadline = deadline
        self.by_key = {c.table + (f".{m}" if len(c.models) > 1 else ""): c for c in candidates for m in c.models}
        self.costs, self.sizes, self.floors, self.records = costs, dict(sizes), floors, records
        self.options_of, self.reuse, self.progress = options_of, reuse, progress
        self.decided: set[str] = set()
        self.predicted = 0.0  # of the sections run so far (not reused pilots), and what they took
        self.took = 0.0
        self._reused: set[str] = set()

    def _cost(self, table: str, n: int | None) -> float:
        cost = self.costs[table]
        return cost["fixed_seconds"] + cost["seconds_per_item"] * (n or 0)

    def before(self, planned: Any) -> Any:
        cand = self.by_key.get(planned.key)
        if cand is None or not cand.sized:
            return planned
        table = cand.table
        if table not in self.decided:
            self.decided.add(table)
            factor = max(1.0, self.took / self.predicted) if self.predicted > 0 else 1.0
            pending = [c for c in self.by_key.values() if c.table not in self.decided or c.table == table]
            pending = list({c.table: c for c in pending}.values())
            left = self.deadline - time.perf_counter()
            need = sum(factor * self._cost(c.table, self.sizes.get(c.table)) for c in pending
                       if not self._reusable(c))
            n = self.sizes[table]
            if need > left and not self._reusable(cand):
                share = max(left, 0.0) * factor * self._cost(table, n) / need
                per_item = factor * self.costs[table]["seconds_per_item"]
                fixed = factor * self.costs[table]["fixed_seconds"]
                cut = max(self.floors[table], int((share - fixed) / per_item) if per_item > 0 else n)
                if cut < n:
                    row = self.records[table]
                    row["size"], row["planned_size"] = cut, n
                    row["reason"] = (f"{row['reason']}; cut from {n} to {cut} during the run: the sections before it "
                                     f"took {factor:.1f}x their predicted time and {max(left, 0):.0f} s of the budget "
                                     f"was left for {len(pending)} section(s)")
                    _log(self.progress, f"{table}: {cand.size_key} cut from {n} to {cut} to keep to the budget "
                                        f"(sections so far took {factor:.1f}x their predicted time)")
                    self.sizes[table] = cut
                    cand.options = cand.sized_table(cut)
        n = self.sizes[table]
        if planned.key in self.reuse and self.records[table].get("planned_size") is not None:
            del self.reuse[planned.key]  # the pilot ran another size
        if planned.key in self.reuse:
            self._reused.add(planned.key)
        if self.records[table].get("planned_size") is None:
            return planned
        return dataclasses.replace(planned, options=self.options_of(cand, n))

    def _reusable(self, cand: _Candidate) -> bool:
        keys = [cand.table + (f".{m}" if len(cand.models) > 1 else "") for m in cand.models]
        return all(k in self.reuse for k in keys) and self.records[cand.table].get("planned_size") is None

    def after(self, planned: Any, seconds: float) -> None:
        cand = self.by_key.get(planned.key)
        if cand is None or planned.key in self._reused:
            return
        self.predicted += self._cost(cand.table, self.sizes.get(cand.table)) / len(cand.models)
        self.took += seconds


def _allocate(costs: Mapping[str, dict[str, Any]], caps: Mapping[str, int], floors: Mapping[str, int],
              available: float) -> dict[str, int]:
    """``max_items`` per sized section: equal time shares, a share a section cannot use shared by the rest."""
    sizes: dict[str, int] = {}
    open_ = [k for k in costs if k in caps]
    left = available - sum(c["fixed_seconds"] for k, c in costs.items() if k in caps)  # unsized: pilot reused
    while open_:
        share = max(left, 0.0) / len(open_)
        capped = [k for k in open_ if costs[k]["seconds_per_item"] * caps[k] <= share]
        if not capped:
            for k in open_:
                sizes[k] = max(floors[k], int(share / costs[k]["seconds_per_item"]))
            break
        for k in capped:
            sizes[k] = caps[k]
            left -= costs[k]["seconds_per_item"] * caps[k]
            open_.remove(k)
    return sizes


def scan(options: ScanOptions) -> ScanOutcome:
    """Run a scan (see the module docstring); returns the audit outcome and the files written.

    Raises
    ------
    RaikitInputError
        Bad flags, models or data (one line each; nothing written), or a classifier whose positive class
        cannot be read from its predictions.
    """
    from raikit.audits.config import ConfigError, validate_options
    from raikit.audits.models import ModelSpec, load_model, resolve_device
    from raikit.audits.runner import load_audit, run_audit
    from raikit.audits.sections import RunContext

    t_start = time.perf_counter()
    load_before = _load_average()
    problems = _check_inputs(options)
    if problems:
        raise ConfigError(problems)
    dev = resolve_device(options.device)
    taken: set[str] = set()
    keys = {model_id: _model_key(model_id, taken) for model_id in options.models}
    adapters: dict[str, Any] = {}
    load_seconds: dict[str, float] = {}
    for model_id, key in keys.items():
        _log(options.progress, f"loading {model_id} as {key!r}")
        t0 = time.perf_counter()
        try:
            adapters[key] = load_model(ModelSpec(id=model_id), device=dev, progress=options.progress)
        except RaikitInputError as exc:
            raise RaikitInputError(str(exc), where="raikit scan") from None
        load_seconds[key] = round(time.perf_counter() - t0, 3)
    kinds = {key: adapter.kind for key, adapter in adapters.items()}
    classifiers = [k for k, kind in kinds.items() if kind == "classifier"]
    if options.positive_label is not None and not classifiers:
        raise RaikitInputError("no scanned model is a classifier", where="--positive-label")
    if options.data is not None and not classifiers:
        raise RaikitInputError("the labelled data is read by classifier sections, and no scanned model is a "
                               "classifier", where="--data")
    labels: dict[str, dict[str, Any]] = {}
    for key in classifiers:
        labels[key] = detect_positive_label(adapters[key], given=options.positive_label, seed=options.seed)
    maps = {k: {"positive": v["positive"], "negative": v["negative"]} for k, v in labels.items()}
    if len({json.dumps(m, sort_keys=True) for m in maps.values()}) > 1:
        # one table runs on all classifiers with one label_map; different class names need one table each
        raise RaikitInputError("the classifiers name their classes differently ("
                               + "; ".join(f"{k}: positive = {m['positive']}" for k, m in maps.items())
                               + "); scan them one at a time", where="raikit scan")
    overrides: dict[str, dict[str, Any]] = {}
    if maps:
        found = next(iter(maps.values()))
        starter_map = {} if found == {"positive": "positive", "negative": "negative"} else dict(found)
        overrides["behaviour"] = {"label_map": starter_map} if starter_map else {}
        overrides["groups"] = {"positive_label": found["positive"], **({"label_map": starter_map} if starter_map else {})}
        if options.data is not None:
            data = str(Path(options.data).expanduser().resolve())
            overrides["groups"] = {"data": data, "text_column": options.text_column,
                                   "label_column": options.label_column, "group_column": options.group_column,
                                   "positive_label": found["positive"],
                                   "label_map": _data_labels(options, adapters[classifiers[0]], found)}
            import pandas as pd

            texts = pd.read_csv(data, dtype=str, keep_default_na=False)[options.text_column].tolist()
            overrides["explain"] = {"texts": [t for t in texts if t.strip()][:200]}
    candidates, not_run = _candidates(kinds, overrides)
    model_tables = {key: {"id": (str(Path(mid).expanduser().resolve()) if Path(mid).expanduser().exists()
                                 and not mid.startswith("builtin:") else mid), "kind": kinds[key]}
                    for mid, key in keys.items()}
    title = f"raikit scan of {', '.join(options.models)}"
    work = Path(tempfile.mkdtemp(prefix="raikit-scan-"))
    try:
        probe = work / "candidates.toml"
        write_text_atomic(probe, _config_text(title=title, models=model_tables, candidates=candidates,
                                              seed=options.seed, device=options.device, skipped=(), documented=False))
        audit = load_audit(probe, skip_missing_data=True)
        skipped = [{"section": s.key.rsplit(".", 1)[0] if s.key not in {c.table for c in candidates} else s.key,
                    "data_sets": list(s.data_sets), "command": s.command} for s in audit.skipped]
        skipped = list({s["section"]: s for s in skipped}.values())
        for s in skipped:
            _log(options.progress, f"skipped {s['section']}: data set(s) {', '.join(s['data_sets'])} not installed; "
                                   f"fetch with `{s['command']}`")
        for item in not_run:
            _log(options.progress, f"not run: {item['reason']}")
        ran_tables = {p.table.capability + ("." + p.table.name if p.table.name != p.table.capability else "")
                      for p in audit.plan}
        candidates = [c for c in candidates if c.table in ran_tables]
        ctx = RunContext(seed=options.seed, base_dir=work, progress=False)
        costs: dict[str, dict[str, Any]] = {}
        kept: dict[tuple[str, int | None], dict[str, Any]] = {}
        t_pilot = time.perf_counter()
        # the pilots may take at most half of what is left, in equal shares
        pilot_share = 0.5 * (options.budget_s - (t_pilot - t_start) - 10.0 - 0.05 * options.budget_s) / max(
            len(candidates), 1)
        for cand in candidates:
            def options_of(n: int | None, cand: _Candidate = cand) -> Any:
                table = cand.sized_table(n)
                built, issues = validate_options(table, cand.section.options, where=f"scan: [{cand.table}]")
                if issues:  # pragma: no cover  (the same table passed load_audit above)
                    raise ConfigError(issues)
                return built

            costs[cand.table] = _pilot(cand, adapters, options_of, ctx, options.progress, kept, pilot_share)
        pilot_seconds = time.perf_counter() - t_pilot
        elapsed = time.perf_counter() - t_start
        reserve = 10.0 + 0.05 * options.budget_s
        available = options.budget_s - elapsed - reserve
        caps, floors = {}, {}
        for cand in candidates:
            if cand.sized:
                caps[cand.table] = cand.cap
                # the largest pilot already run is kept and reused at no cost: never run a smaller one instead
                floors[cand.table] = min(caps[cand.table], costs[cand.table]["last_size"])
        sizes = _allocate(costs, caps, floors, available)
        records = []
        for cand in candidates:
            cost = costs[cand.table]
            n = sizes.get(cand.table)
            if n is not None:
                cand.options = cand.sized_table(n)
                predicted = cost["fixed_seconds"] + cost["seconds_per_item"] * n
                if n == caps[cand.table]:
                    why = ("the section's full default size fits its share of the budget" if caps[cand.table] != _ALL
                           else "every item fits its share of the budget")
                elif n == floors[cand.table] and predicted > available / max(len(candidates), 1):
                    why = ("the budget left after loading and the pilots is smaller than this section's share; ran at "
                           "the largest pilot size (that run reused, at no further cost)")
                else:
                    why = "the largest size whose predicted time fits the section's share of the budget"
            else:
                predicted, why = cost["fixed_seconds"], "no size option: runs whole (the pilot run's time)"
            if cost.get("stopped"):
                why = f"{cost['stopped']}; {why}"
            records.append({"section": cand.table, "models": list(cand.models), "size_option": cand.size_key,
                            "size": n, **cost,
                            "predicted_seconds": round(predicted, 2), "reason": why})
        record = {"budget_seconds": options.budget_s, "load_seconds": load_seconds,
                  "pilot_seconds": round(pilot_seconds, 2), "reserve_seconds": round(reserve, 1),
                  "available_seconds": round(available, 1), "sizes": records, "kinds": kinds,
                  "positive_labels": labels, "not_run": not_run, "load_average_before": load_before,
                  "cpu_count": os.cpu_count(),
                  "command": shlex.join(["raikit", "scan", *options.models, "--budget", f"{options.budget_s:g}s"]),
                  "skipped_sections": skipped,
                  "limitations": [f"{item['reason']}" for item in not_run]
                  + [f"scan: subsample sizes were chosen to fit a {options.budget_s:g} s budget from pilot timings "
                     "(run.scan.sizes); a bigger --budget gives narrower intervals"]}
        config_path = Path(options.write_config) if options.write_config else work / "scan.toml"
        text = _config_text(title=title, models=model_tables, candidates=candidates, seed=options.seed,
                            device=options.device, skipped=skipped + not_run, documented=True)
        written = [write_text_atomic(config_path, text)]
        _log(options.progress, f"pilots took {pilot_seconds:.0f} s; {max(available, 0):.0f} s of the budget left for "
                               f"{len(candidates)} section(s)")
        reuse = {}
        for cand in candidates:
            size = sizes.get(cand.table)
            for key, done in kept.get((cand.table, size), {}).items():
                reuse[cand.table + (f".{key}" if len(cand.models) > 1 else "")] = done
        def sized_options(cand: _Candidate, n: int) -> Any:
            return options_of(n, cand)

        pacer = _Pacer(deadline=t_start + options.budget_s - reserve, candidates=candidates, costs=costs,
                       sizes=sizes, floors=floors, records={r["section"]: r for r in records},
                       options_of=sized_options, reuse=reuse, progress=options.progress)
        outcome = run_audit(config_path, out_dir=options.out_dir, device=options.device, progress=options.progress,
                            preloaded=adapters, scan=record, reuse=reuse, pace=pacer)
        if any(r.get("planned_size") is not None for r in records):  # the config says the sizes that ran
            text = _config_text(title=title, models=model_tables, candidates=candidates, seed=options.seed,
                                device=options.device, skipped=skipped + not_run, documented=True)
            written = [write_text_atomic(config_path, text)]
        if options.write_config is None:  # keep the config beside its results
            written = [write_text_atomic(outcome.out_dir / "scan.toml", text)]
        results = outcome.results
        seconds = time.perf_counter() - t_start
        results["run"]["scan"]["seconds"] = round(seconds, 1)
        results["run"]["scan"]["load_average_after"] = _load_average()
        from raikit.audits.io import confined, write_json_atomic

        write_json_atomic(confined(outcome.out_dir, "results.json"), results)
        gates_path = Path(options.write_gates) if options.write_gates else None
        if options.write_pytest and gates_path is None:
            gates_path = Path(options.write_pytest).with_name(Path(options.write_pytest).stem + "_gates.toml")
        if gates_path is not None:
            written.append(write_text_atomic(gates_path, gates_text(results)))
        if options.write_pytest:
            config_for_test = config_path if options.write_config else Path(options.write_pytest).with_name(
                Path(options.write_pytest).stem + "_scan.toml")
            if not options.write_config:
                written.append(write_text_atomic(config_for_test, text))
            written.append(write_text_atomic(options.write_pytest, pytest_text(
                config=config_for_test, gates=gates_path, test_file=Path(options.write_pytest), title=title)))
        return ScanOutcome(outcome=outcome, written=tuple(written), seconds=seconds)
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


def _gate_for(name: str, entry: Mapping[str, Any], sections: Mapping[str, Any]) -> dict[str, Any] | None:
    """A "no worse than now" gate on one metric, or None when the metric has no direction or no usable CI."""
    from raikit.audits.gates import ci_problem
    from raikit.audits.sections import section_rules

    ci, value = entry.get("ci95"), entry.get("value")
    if not ci or None in ci or value is None or ci_problem(value, ci, entry.get("n")):
        return None
    owner = max((k for k in sections if name.startswith(k + ".")), key=len, default=None)
    if owner is None:
        return None
    section = sections[owner]
    base = section.get("variant_of") or section.get("reaudit_of") or owner
    relative = base + name[len(owner):]
    rest = relative.split(".")
    if "by_group" in rest or "by_bias_type" in rest or "by_pair" in rest or "by_template" in rest:
        return None  # one gate per headline number; per-group gaps are gated through their *.difference
    gap_names = ("difference", "demographic_parity_difference", "equalized_odds_difference", "group_gap")
    if rest[-1] in gap_names:
        ideal, one_sided = 0.0, True
    else:
        rule = next((r for r in section_rules(section, owner) if not r.family and r.applies(name[len(owner) + 1:])),
                    None)
        if rule is None:
            return None
        ideal, one_sided = rule.ideal, rule.ideal == 0.0 and rule.scale == 1.0
    low, high = float(ci[0]), float(ci[1])
    reach = max(abs(high - ideal), abs(low - ideal))
    gate: dict[str, Any] = {"max": math.ceil((ideal + reach) * 1e6) / 1e6}  # rounded outwards: the same run passes
    if not one_sided:
        gate["min"] = math.floor((ideal - reach) * 1e6) / 1e6
    gate["use"] = "ci"
    return gate


def gates_text(results: Mapping[str, Any]) -> str:
    """``[gates]`` at the current 95% CI bounds: "no worse than this release" for every gateable metric.

    A metric is gateable when a findings rule of its section says what "no bias" is for it (the section's
    ``rules`` as the results record them, :func:`raikit.audits.sections.section_rules`) or it is a gap between
    groups (ideal 0), and it has a usable 95% CI. The gate bounds the CI on both sides of the
    ideal by the current departure (one side for rates and gaps, which cannot fall below it), so the same
    model passes and a model that departs further fails.
    """
    from raikit.audits.config import toml_value

    sections = results.get("sections") or {}
    run = results.get("run") or {}
    lines = [f"# Regression gates written by raikit scan from run {run.get('id', '?')} ({run.get('finished', '')}).",
             "# Each bounds the metric's 95% CI by its current reach from 'no bias': no worse than this release.",
             "[gates]"]
    for name, entry in sorted((results.get("metrics") or {}).items()):
        gate = _gate_for(name, entry, sections) if isinstance(entry, Mapping) else None
        if gate is not None:
            lines.append(f"{json.dumps(name)} = {toml_value(gate)}   # now {entry['value']:.4g}, 95% CI "
                         f"[{entry['ci95'][0]:.4g}, {entry['ci95'][1]:.4g}], n = {entry.get('n')}")
    return "\n".join(lines) + "\n"


def pytest_text(*, config: Path, gates: Path, test_file: Path, title: str) -> str:
    """A pytest file that runs ``config`` once (through the raikit pytest plugin) and checks each gate."""
    here = test_file.resolve().parent

    def rel(path: Path) -> str:
        return os.path.relpath(Path(path).resolve(), here)

    return f'''"""Regression gates of {title.replace('"', "'")}, written by `raikit scan`.

The raikit pytest plugin runs the audit in {rel(config)} once per session (or reads
`pytest --raikit-results out/<run>/results.json`); each gate in {rel(gates)} is one test. A failure message
names the metric, its value and 95% CI, and the bound it broke.
"""
from pathlib import Path

import pytest

from raikit.audits.gates import gates_from_config
from raikit.audits.plugin import assert_gate, results_for

HERE = Path(__file__).resolve().parent
CONFIG = HERE / {json.dumps(rel(config))}
GATES = gates_from_config(HERE / {json.dumps(rel(gates))})


@pytest.mark.parametrize("gate", GATES, ids=[g.metric for g in GATES])
def test_raikit_gate(gate, pytestconfig):
    assert_gate(results_for(pytestconfig, CONFIG), gate)
'''
