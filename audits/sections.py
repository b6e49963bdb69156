"""The contract between the runner and the capabilities.

A capability (fairness probe, explainer run, ...) registers a :class:`Section`: a name, a frozen
options dataclass read from its TOML table, the model kinds it accepts, and a ``run`` function that
takes one model adapter, the options and a :class:`RunContext`, and returns a
:class:`~raikit.audits.results.SectionResult` whose metric names are relative to the section
(``metric_score``); the runner prefixes ``<capability>.<table name>.``.

How sections are found: each section module defines one module-level ``SECTION = Section(...)``; each
module named in :data:`SECTION_MODULES` (a capability package, or ``raikit.fairness.mitigation`` for the
``[mitigation]`` table) builds its ``SECTIONS`` registry from those with :func:`section_registry`, and the
runner reads a config table's sections from there (:func:`registered_sections`). Nothing registers by side
effect into a shared registry.

A section also declares how the report reads its metrics as effects (:class:`Rule`, the ``rules`` of its
:class:`Section`); the runner records them in ``results.json`` beside the metric meanings.
"""
from __future__ import annotations

import contextlib
import fnmatch
import importlib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from raikit.audits.errors import RaikitInputError
from raikit.audits.registry import Registry
from raikit.audits.results import SectionResult

__all__ = ["Section", "Rule", "FindingKind", "RunContext", "default_data_dir", "data_key", "at_least",
           "SECTION_MODULES", "section_registry", "registered_sections", "declared_rules", "section_rules"]

#: Each config table -> the module whose ``SECTIONS`` registry holds the sections it may name: the one place
#: a table is mapped to code. ``[fairness.<name>]`` tables name a probe of ``raikit.fairness.SECTIONS``; each
#: other table has one section; bias mitigation is a table of its own whose section lives in raikit.fairness.
SECTION_MODULES: dict[str, str] = {
    "fairness": "raikit.fairness",
    "explain": "raikit.explain",
    "privacy": "raikit.privacy",
    "federated": "raikit.federated",
    "mitigation": "raikit.fairness.mitigation",
}


def default_data_dir() -> Path:
    """What ``{data_dir}`` means without ``[run] data_dir``: see :func:`raikit.audits.datasets.data_root`.

    ``$RAIKIT_DATA`` if set, else the user data directory when it holds a declared data set, else a
    checkout's ``../shared/data``, else the user data directory (where ``raikit data fetch`` puts sets).
    Paths of the form ``{data_dir}/<set>/...`` are resolved per set by :meth:`RunContext.resolve_path`.
    """
    from raikit.audits.datasets import data_root

    return data_root()


@dataclass(frozen=True)
class RunContext:
    """What every section gets besides its model and options.

    Attributes
    ----------
    seed : int
        Seed for every random choice (subsamples, bootstrap, permutations).
    base_dir : Path
        Folder that relative paths in the config are resolved against (the config file's folder).
    data_dir : Path, optional
        What ``{data_dir}`` in a path option expands to (``[run] data_dir``); None: resolved per data set,
        see :func:`raikit.audits.datasets.data_root`.
    progress : bool
        Show progress bars.
    flagged_texts : tuple of str
        Texts another section flagged for a closer look (the runner fills it, e.g. the counterfactual
        cases whose prediction flipped, for the explain section to explain).
    """

    seed: int = 0
    base_dir: Path = field(default_factory=Path.cwd)
    data_dir: Path | None = None
    progress: bool = True
    flagged_texts: tuple[str, ...] = ()

    def resolve_path(self, value: str | os.PathLike[str]) -> Path:
        """Expand ``{data_dir}`` and ``~``, and resolve a relative path against ``base_dir``."""
        from raikit.audits.datasets import expand_data_dir

        text = expand_data_dir(str(value), self.data_dir)
        path = Path(text).expanduser()
        return path if path.is_absolute() else (self.base_dir / path)

    def existing_path(self, value: str | os.PathLike[str], *, where: str) -> Path:
        """:meth:`resolve_path`, raising a one-line input error if nothing is there."""
        path = self.resolve_path(value)
        if not path.exists():
            raise RaikitInputError(f"file not found: {path}", where=where)
        return path


@contextlib.contextmanager
def data_key(key: str, path: str | os.PathLike[str] | None = None) -> Iterator[None]:
    """Inside a section's ``check``: any problem reading a data file becomes one input error naming the key.

    Loaders raise :class:`RaikitInputError` naming the file; libraries raise ``OSError``,
    ``UnicodeDecodeError`` (a latin-1 file), ``ValueError`` (pandas' empty or ragged CSV, bad JSON) or
    ``KeyError``. Each becomes ``key '<key>': <file>: <problem>``, which the runner prefixes with the
    config file and table.
    """
    try:
        yield
    except RaikitInputError as exc:
        raise RaikitInputError(str(exc), where=f"key {key!r}") from None
    except UnicodeDecodeError as exc:
        raise RaikitInputError(f"not UTF-8 text (byte {exc.object[exc.start:exc.start + 1]!r} at offset "
                               f"{exc.start}); save the file as UTF-8",
                               where=f"key {key!r}: {path}" if path else f"key {key!r}") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise RaikitInputError(f"cannot read the data file ({type(exc).__name__}: {reason})",
                               where=f"key {key!r}: {path}" if path else f"key {key!r}") from None


def at_least(options: Any, minimum: int, *keys: str) -> None:
    """Raise an input error naming the first of ``keys`` whose (non-None) integer value is below ``minimum``."""
    for key in keys:
        value = getattr(options, key)
        if value is not None and value < minimum:
            raise RaikitInputError(f"must be at least {minimum}, got {value!r}", where=f"key {key!r}")


RunFunction = Callable[[Any, Any, RunContext], SectionResult]

FindingKind = Literal["gate", "group gap", "worst group", "association", "benchmark", "behaviour", "counterfactual",
                      "hurtful completions", "privacy", "retraining cost"]


@dataclass(frozen=True)
class Rule:
    """How the report reads one kind of a section's metrics as an effect (a finding).

    A section lists its rules in :attr:`Section.rules`; the first rule that applies to a metric reads it.
    The runner records them in ``results["sections"][key]["findings_rules"]`` (:meth:`to_dict`), and the
    findings of ``raikit.reports`` read them from there.

    Parameters
    ----------
    name : str
        The rule's name (``"crows_pairs_groups"``); the report picks the examples it shows by it.
    patterns : tuple of str
        Metric names relative to the section (fnmatch: ``*`` also spans dots), as in ``metrics``.
    kind : str
        The finding kind.
    label : str
        What the metric is, in words.
    ideal : float
        The value that means "no bias" (or "no gap").
    scale : float
        The largest possible departure from ``ideal``; the effect is ``|value - ideal| / scale``, at most 1.
    family : bool
        A per-group family (``...by_<axis>.<group>...``): one finding per family, for its worst group
        (with an ideal) or its largest gap between groups (``ideal`` 0 on the gap).
    better : {"higher", "lower", ""}
        For a gap family, which end is the disadvantaged group ("" for parity quantities).
    null : str
        What ``ideal`` means, in the finding's text (``"no bias"``, ``"no cost"``).
    """

    name: str
    patterns: tuple[str, ...]
    kind: FindingKind
    label: str
    ideal: float
    scale: float
    family: bool = False
    better: Literal["higher", "lower", ""] = ""
    null: str = "no bias"

    def applies(self, name: str) -> bool:
        """Whether the rule reads metric ``name`` (relative to the section)."""
        return any(fnmatch.fnmatchcase(name, p) for p in self.patterns)

    def to_dict(self) -> dict[str, Any]:
        """The rule as recorded in ``results.json``."""
        return {**asdict(self), "patterns": list(self.patterns)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rule:
        """A rule recorded by :meth:`to_dict` (keys it does not know are ignored)."""
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**{**known, "patterns": tuple(known.get("patterns") or ())})


@dataclass(frozen=True)
class Section:
    """A registered, configurable piece of an audit.

    Parameters
    ----------
    name : str
        Registry key, also the default TOML table name (``[fairness.<name>]``).
    options : type
        Frozen dataclass of the table's keys (besides ``model`` and ``probe``); its defaults are the
        table's defaults. Fields typed ``Path`` are files that must exist.
    model_kinds : tuple of str
        Adapter kinds the section accepts; others are a config error.
    run : callable
        ``run(adapter, options, ctx) -> SectionResult``.
    description : str
        One line for ``raikit`` listings and the report.
    citation : str
        The paper behind the numbers, shown by the report.
    metrics : tuple of str
        The metric names (relative to the section) it can produce; ``*`` stands for a dynamic part
        (``by_bias_type.*``). Gates are checked against these before anything runs.
    check : callable, optional
        ``check(options, ctx)``: reads the section's own data files (templates, lexicons) without a
        model and raises ``RaikitInputError`` for bad content, so the problem is reported with the
        config's other problems, before any model loads.
    classes : callable, optional
        ``classes(options, ctx) -> [(key, class name), ...]``: the classifier classes the section will ask
        the model for (template labels after ``label_map``, ``positive_label``), each with the key that
        names it; the runner checks them against a local model's ``config.json`` before any model loads.
    meanings : tuple of (name pattern, label, meaning)
        A human label and a one-line meaning per metric name pattern (the patterns of ``metrics``; each
        ``{}`` in the label is filled with what the matching ``*`` stood for). The runner records them
        in the results and the report shows them beside each metric.
    rules : tuple of Rule
        How the report reads the section's metrics as findings (effect sizes, benchmark scores, rate
        gaps on one 0-1 scale), first that applies first; recorded in the results like ``meanings``.
        Metrics no rule applies to are shown but are not findings.
    """

    name: str
    options: type
    model_kinds: tuple[str, ...]
    run: RunFunction
    description: str = ""
    citation: str = ""
    metrics: tuple[str, ...] = ()
    check: Callable[[Any, RunContext], None] | None = None
    meanings: tuple[tuple[str, str, str], ...] = ()
    classes: Callable[[Any, RunContext], list[tuple[str, str]]] | None = None
    rules: tuple[Rule, ...] = ()


def section_registry(kind: str, *sections: Section) -> Registry[Section]:
    """A registry of ``sections``, each under its name (a capability's ``SECTIONS``).

    ``kind`` names what it holds in "unknown name" errors (``"fairness probe"``); two sections of one name
    are refused.
    """
    registry: Registry[Section] = Registry(kind)
    for section in sections:
        registry.register(section.name)(section)
    return registry


def registered_sections(capability: str) -> Registry[Section] | None:
    """The ``SECTIONS`` of the module :data:`SECTION_MODULES` names for a table (imported on first use).

    None when this version of raikit has no such module or it registers no sections.
    """
    module = SECTION_MODULES.get(capability)
    if module is None:
        return None
    registry = getattr(importlib.import_module(module), "SECTIONS", None)
    return registry if isinstance(registry, Registry) else None


def declared_rules(capability: str, probe: str) -> tuple[Rule, ...]:
    """The findings rules the installed section of a table declares (none when there is no such section).

    For a results file written before sections recorded their rules: the report reads it with these.
    """
    registry = registered_sections(capability)
    name = probe if capability == "fairness" else capability
    return registry.get(name).rules if registry is not None and name in registry else ()


def section_rules(section: Mapping[str, Any], key: str) -> tuple[Rule, ...]:
    """The findings rules of section entry ``key`` of a results dict, first that applies first.

    Those the runner recorded (``findings_rules``); for an entry without them (a results file written before
    sections recorded their rules), those the installed section of its table declares: the table's probe
    (``probe``, else the table name in its key, or in the key of the section it re-audits) for
    ``[fairness.<name>]``, the one section of any other table.
    """
    recorded = section.get("findings_rules")
    if isinstance(recorded, list):
        return tuple(Rule.from_dict(r) for r in recorded if isinstance(r, Mapping))
    base = str(section.get("variant_of") or section.get("reaudit_of") or key)
    capability = str(section.get("capability") or base.split(".")[0])
    table = base.split(".")[1] if capability == "fairness" and "." in base else capability
    return declared_rules(capability, str(section.get("probe") or table))

