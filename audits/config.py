"""The audit config: a TOML file validated once, up front, with every problem reported together.

Layout::

    [run]                      # optional: seed, device, data_dir, offline
    [model]                    # one model: id = "...", kind, dtype, batch_size, ...
    [models.<key>]             # or several named models (also accepted as [model.<key>])
    [fairness.<table>]         # one table per fairness probe: probe = "<name>" (default: the table name),
                               # model = "<key>", then the probe's own options
    [explain]                  # model = "<key>", then the explainers' options
    [gates]                    # "metric.name" = { min = ..., max = ..., use = "value" | "ci" }
    [report]                   # title, formats, organisation, reviewers

This module checks the structure and the generic parts ([run], models, [report]); the section tables
are checked against the options dataclass of the probe they name by :func:`validate_options`, called
by the runner, which knows the capability registries.
"""
from __future__ import annotations

import dataclasses
import difflib
import hashlib
import math
import re
import json
import tomllib
import types
import typing
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from raikit.audits.errors import RaikitInputError, RenamedKeyWarning
from raikit.audits.io import is_safe_name
from raikit.audits.models import MODEL_KINDS, ModelSpec

__all__ = [
    "toml_value",
    "AuditConfig",
    "ConfigError",
    "RunOptions",
    "ReportOptions",
    "SectionTable",
    "parse_config",
    "read_config",
    "parse_toml",
    "validate_options",
    "option_docs",
    "OptionDoc",
    "RenamedKeyWarning",
    "RENAMED_KEYS",
    "CAPABILITIES",
    "REPORT_FORMATS",
]

CAPABILITIES = ("fairness", "explain", "privacy", "federated", "mitigation")
REPORT_FORMATS = ("html", "md", "junit", "model_card")
_TOP_LEVEL = ("run", "model", "models", "gates", "report") + CAPABILITIES


class ConfigError(RaikitInputError):
    """Every problem found in a config, one line each.

    Attributes
    ----------
    problems : list of str
        One line per problem, each naming the file, the table, the key and the bad value.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class RunOptions:
    """The ``[run]`` table.

    Parameters
    ----------
    seed : int
        Seed for every random choice.
    device : {"auto", "cpu", "cuda"}
        Where models run.
    data_dir : str, optional
        What ``{data_dir}`` expands to in path options (default: ``$RAIKIT_DATA``, else per data set the user
        data directory of ``raikit data fetch``, else ``../shared/data`` beside a checkout).
    offline : bool
        Never touch the network.
    """

    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    data_dir: str | None = None
    offline: bool = False


@dataclass(frozen=True)
class ReportOptions:
    """The ``[report]`` table: title, output formats and who signs the report off."""

    title: str = "raikit audit"
    formats: list[str] = field(default_factory=lambda: list(REPORT_FORMATS))
    organisation: str = ""
    reviewers: list[str] = field(default_factory=list)
    intended_use: str = ""


@dataclass(frozen=True)
class SectionTable:
    """One capability table before its options are validated.

    Attributes
    ----------
    capability : str
        "fairness", "explain", ...
    name : str
        The table name (``crows_pairs`` for ``[fairness.crows_pairs]``; the capability for ``[explain]``).
    probe : str
        The registered section it runs.
    model : str
        The model key it runs on; "" when the table omits ``model`` in a config of several models (the runner
        picks the one model of a kind the section takes, see :func:`raikit.audits.runner.load_audit`).
    options : dict
        The remaining keys, still raw.
    where : str
        ``file: [table]`` for error messages.
    variant : str
        The model key again when the table names a list of models (``model = ["a", "b"]``): one table per
        model, whose metrics are prefixed ``<capability>.<table>.<model key>``; "" for a single model.
    """

    capability: str
    name: str
    probe: str
    model: str
    options: dict[str, Any]
    where: str
    variant: str = ""

    @property
    def prefix(self) -> str:
        """Prefix of its metric names: ``fairness.<name>`` or ``explain`` (``.<model key>`` added for each model
        of a ``model = ["a", "b"]`` list)."""
        base = self.capability if self.name == self.capability else f"{self.capability}.{self.name}"
        return f"{base}.{self.variant}" if self.variant else base


@dataclass(frozen=True)
class AuditConfig:
    """A parsed audit config (structure checked; section options still raw)."""

    source: str
    raw: Mapping[str, Any]
    sha256: str
    run: RunOptions
    models: Mapping[str, ModelSpec]
    sections: tuple[SectionTable, ...]
    gates: Mapping[str, Any]
    report: ReportOptions
    base_dir: Path


def _type_name(hint: Any) -> str:
    origin = get_origin(hint)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(hint))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(hint) if a is not type(None))
    if origin in (list, tuple):
        args = get_args(hint)
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin in (dict, Mapping):
        return "table"
    return {str: "string", int: "integer", float: "number", bool: "boolean", dict: "table"}.get(
        hint, getattr(hint, "__name__", str(hint)))


def _matches(value: Any, hint: Any) -> bool:
    """Whether a TOML value fits a type hint (str, int, float, bool, list[...], dict, Optional, Literal)."""
    origin = get_origin(hint)
    if hint is Any:
        return True
    if origin is Literal:
        return value in get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in get_args(hint))
    if hint is type(None):
        return value is None
    if origin in (list, tuple) or hint in (list, tuple):
        args = get_args(hint)
        return isinstance(value, list) and (not args or all(_matches(v, args[0]) for v in value))
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        return isinstance(value, dict)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    return isinstance(value, hint) if isinstance(hint, type) else False


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _non_finite(value: Any) -> bool:
    """Whether a TOML value is or holds ``nan``/``inf`` (TOML allows both; no raikit option takes either)."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, Mapping):
        return any(_non_finite(v) for v in value.values())
    if isinstance(value, list):
        return any(_non_finite(v) for v in value)
    return False


#: Integer options that count things: a negative value is never meaningful (``max_items = -5``).
_COUNT_NAME = re.compile(r"^(max_|min_|n_|num_)|(_size|_samples|_evals|_resamples|_permutations|_bootstrap)$"
                         r"|^(k|top_k)$")


#: Old option names -> the name that replaced them. Every section's subsample size is ``max_items`` (what an
#: item is, and what 0 means, is in the section's option docs: ``raikit probes <name>``). The old names are
#: still read, with a :class:`RenamedKeyWarning`; a later release will refuse them.
RENAMED_KEYS: Mapping[str, str] = {"max_instances": "max_items", "max_templates": "max_items", "max_texts": "max_items"}


def _renamed(table: Mapping[str, Any], fields: Mapping[str, Any], *, where: str, problems: list[str]
             ) -> dict[str, Any]:
    """``table`` with old key names (:data:`RENAMED_KEYS`) replaced by the new ones, each with a warning."""
    out = dict(table)
    for old, new in RENAMED_KEYS.items():
        if old not in out or old in fields or new not in fields:
            continue
        if new in out:
            problems.append(f"{where}: keys {old!r} and {new!r} are one option ({old!r} is its old name); "
                            f"keep only {new!r}")
            del out[old]
            continue
        warnings.warn(f"{where}: key {old!r} is deprecated; write {new!r} (same meaning)", RenamedKeyWarning,
                      stacklevel=3)
        out = {new if key == old else key: value for key, value in out.items()}
    return out


def validate_options(table: Mapping[str, Any], options_type: type, *, where: str) -> tuple[Any, list[str]]:
    """Build an options dataclass from a TOML table, collecting every problem.

    Parameters
    ----------
    table : mapping
        The raw TOML table.
    options_type : type
        A dataclass; its fields are the allowed keys, its type hints the allowed types.
    where : str
        ``file: [table]`` prefix for the problems.

    Returns
    -------
    (options or None, problems)
        ``options`` is None when any problem was found.

    Warns
    -----
    RenamedKeyWarning
        For a key under an old name (:data:`RENAMED_KEYS`), which is read as the new one.
    """
    hints = typing.get_type_hints(options_type)
    fields = {f.name: f for f in dataclasses.fields(options_type)}
    problems: list[str] = []
    table = _renamed(table, fields, where=where, problems=problems)
    suggested = set()
    for key, value in table.items():
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            suggested.update(close)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; allowed: {', '.join(fields) or 'none'}"
            problems.append(f"{where}: unknown key {key!r}{hint}")
        elif not _matches(value, hints[key]):
            problems.append(f"{where}: key {key!r} must be {_type_name(hints[key])}, got {_show(value)}")
        elif _non_finite(value):
            problems.append(f"{where}: key {key!r} must be a finite number, got {_show(value)}")
        elif (isinstance(value, int) and not isinstance(value, bool) and value < 0 and _COUNT_NAME.search(key)
              and hints[key] is not float):  # max_grad_norm = -1 is a norm, not a count: its section says so
            problems.append(f"{where}: key {key!r} counts items and cannot be negative, got {value!r}")
    missing = [name for name, f in fields.items() if name not in table and name not in suggested  # one line a typo
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    problems += [f"{where}: missing required key {name!r}" for name in missing]
    if problems:
        return None, problems
    values = {k: (float(v) if hints[k] is float and isinstance(v, int) else v) for k, v in table.items()}
    try:
        return options_type(**values), []
    except (ValueError, TypeError) as exc:  # __post_init__ checks of the options class
        return None, [f"{where}: {exc}"]


@dataclass(frozen=True)
class OptionDoc:
    """One option of an options dataclass, for ``raikit probes <name>``.

    Attributes
    ----------
    name : str
        The config key.
    type : str
        Its type, in TOML words ("integer", "list of string", ...).
    default : Any
        Its default (None: not set).
    description : str
        What it does, from the class docstring's ``Parameters`` or ``Attributes`` section ("" when not
        documented).
    choices : tuple of str
        The allowed values when the option takes one of a fixed set (a ``Literal`` type, or a numpydoc
        type such as ``{"prv", "rdp"}`` or ``list of {"loss", "lira"}``); () otherwise.
    """

    name: str
    type: str
    default: Any
    description: str
    choices: tuple[str, ...] = ()


_DOC_ENTRY = re.compile(r"^(?P<names>[A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*)\s*(?::\s*(?P<type>.*))?$")


def _parameter_docs(doc: str, *, types: dict[str, str] | None = None) -> dict[str, str]:
    """Key -> description from the numpydoc ``Parameters`` (or ``Attributes``) section of a docstring.

    ``a, b : int`` documents both keys; an entry without an indented description maps to "". When
    ``types`` is given, it is filled with key -> the entry's type text.
    """
    import inspect

    lines = inspect.cleandoc(doc or "").splitlines()
    found: dict[str, str] = {}
    try:
        start = next(i for i in range(len(lines) - 1)
                     if lines[i].strip() in ("Parameters", "Attributes") and set(lines[i + 1].strip()) == {"-"}) + 2
    except StopIteration:
        return found
    names: list[str] = []
    for i in range(start, len(lines)):
        line = lines[i]
        if line and not line[0].isspace():
            if i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"}:
                break  # the next section
            entry = _DOC_ENTRY.match(line.strip())
            names = [n.strip() for n in entry["names"].split(",")] if entry else []
            for name in names:
                found[name] = ""
                if types is not None and entry and entry["type"]:
                    types[name] = entry["type"].strip()
        elif line.strip() and names:
            for name in names:
                found[name] = f"{found[name]} {line.strip()}".strip()
    return found


def option_docs(options_type: type) -> tuple[OptionDoc, ...]:
    """Every option of an options dataclass with its type, default and description (from its docstring).

    Parameters
    ----------
    options_type : type
        A frozen options dataclass (a section's ``options``).

    Returns
    -------
    tuple of OptionDoc
        In the order the docstring documents them (an options class that inherits shared fields, such as
        :class:`raikit.audits.retraining.RetrainingOptions`, lists its keys where they read best), then any
        undocumented field, in field order.
    """
    hints = typing.get_type_hints(options_type)
    types: dict[str, str] = {}
    described = _parameter_docs(options_type.__doc__ or "", types=types)
    defaults = options_type()
    place = {name: i for i, name in enumerate(described)}
    fields = sorted(dataclasses.fields(options_type), key=lambda f: place.get(f.name, len(place)))
    return tuple(OptionDoc(name=f.name, type=_type_name(hints[f.name]), default=getattr(defaults, f.name),
                           description=described.get(f.name, ""),
                           choices=_choices(hints[f.name], types.get(f.name, "")))
                 for f in fields)


def _choices(hint: Any, doc_type: str) -> tuple[str, ...]:
    """The allowed values of an option: its ``Literal`` arguments, else the ``{...}`` set of its doc type."""
    if get_origin(hint) is Literal:
        return tuple(str(a) for a in get_args(hint))
    found = re.search(r"\{([^}]*)\}", doc_type)
    if not found:
        return ()
    return tuple(part.strip().strip("'\"") for part in found[1].split(",") if part.strip())


def read_config(path: str | Path) -> tuple[dict[str, Any], str]:
    """Read a TOML file; return its table and SHA-256, or raise a one-line input error."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise RaikitInputError("config file not found", where=str(path)) from None
    except OSError as exc:
        raise RaikitInputError(f"cannot read config ({exc.strerror})", where=str(path)) from None
    return parse_toml(data, where=str(path))


def parse_toml(data: bytes, *, where: str) -> tuple[dict[str, Any], str]:
    """Parse TOML bytes; return the table and the SHA-256 of the bytes, or raise a one-line input error."""
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RaikitInputError(f"not valid TOML: {exc}", where=where) from None
    return raw, hashlib.sha256(data).hexdigest()


def _model_tables(raw: Mapping[str, Any], src: str, problems: list[str]) -> dict[str, dict[str, Any]]:
    tables: dict[str, dict[str, Any]] = {}
    single = raw.get("model")
    if single is not None:
        if not isinstance(single, dict):
            problems.append(f"{src}: [model] must be a table, got {_show(single)}")
        elif "id" in single or not all(isinstance(v, dict) for v in single.values()):
            tables["model"] = single
        else:
            tables.update(single)
    named = raw.get("models")
    if named is not None:
        if not isinstance(named, dict) or not all(isinstance(v, dict) for v in named.values()):
            problems.append(f"{src}: [models] must hold one table per model, e.g. [models.mine]")
        else:
            for key, table in named.items():
                if key in tables:
                    problems.append(f"{src}: model {key!r} is defined twice")
                tables[key] = table
    if not tables:
        problems.append(f"{src}: no model: add a [model] table with an id, or [models.<name>] tables")
    return tables


def _model_list(value: Any, where: str, problems: list[str]) -> list[str]:
    """The model keys of a section's ``model`` key: one string, or a list of distinct strings."""
    if isinstance(value, str):
        return [value]
    if (isinstance(value, list) and value and all(isinstance(v, str) for v in value)
            and len(set(value)) == len(value)):
        for key in value:
            if not is_safe_name(key):  # becomes part of metric and file names
                problems.append(f"{where}: key 'model': model key {key!r} may use only letters, digits, '_' and '-'")
                return []
        return list(value)
    problems.append(f"{where}: key 'model' must be a model key or a list of distinct model keys "
                    f"(model = [\"a\", \"b\"]), got {_show(value)}")
    return []


def parse_config(raw: Mapping[str, Any], *, source: str, sha256: str, base_dir: Path,
                 problems: list[str] | None = None) -> AuditConfig:
    """Check the structure of an audit config.

    Parameters
    ----------
    problems : list of str, optional
        When given, problems are appended to it and a best-effort config (defaults in place of bad
        values) is returned instead of raising, so that callers can go on checking the section tables
        and report every problem together.

    Raises
    ------
    ConfigError
        With every structural problem found (section options are checked later), unless ``problems``
        is given.
    """
    collect = problems is not None
    problems = problems if problems is not None else []
    start = len(problems)
    for key in raw:
        if key not in _TOP_LEVEL:
            close = difflib.get_close_matches(key, _TOP_LEVEL, n=1)
            hint = f" (did you mean [{close[0]}]?)" if close else f"; allowed: {', '.join(_TOP_LEVEL)}"
            problems.append(f"{source}: unknown table [{key}]{hint}")

    def table(name: str) -> dict[str, Any]:
        value = raw.get(name, {})
        if not isinstance(value, dict):
            problems.append(f"{source}: [{name}] must be a table, got {_show(value)}")
            return {}
        return value

    run, run_problems = validate_options(table("run"), RunOptions, where=f"{source}: [run]")
    problems += run_problems
    report, report_problems = validate_options(table("report"), ReportOptions, where=f"{source}: [report]")
    problems += report_problems
    if report is not None:
        problems += [f"{source}: [report] formats: unknown format {f!r}; known: {', '.join(REPORT_FORMATS)}"
                     for f in report.formats if f not in REPORT_FORMATS]

    models: dict[str, ModelSpec] = {}
    model_tables = _model_tables(raw, source, problems)
    for key, mtable in model_tables.items():
        where = f"{source}: [model]" if key == "model" and "id" in raw.get("model", {}) else f"{source}: [models.{key}]"
        spec, spec_problems = validate_options(mtable, ModelSpec, where=where)
        problems += spec_problems
        if spec is not None:
            if spec.kind is not None and spec.kind not in MODEL_KINDS:
                problems.append(f"{where}: key 'kind' must be one of {', '.join(MODEL_KINDS)}, got {spec.kind!r}")
            if spec.batch_size < 1 or spec.max_length < 1:
                problems.append(f"{where}: batch_size and max_length must be positive")
            models[key] = spec

    sections: list[SectionTable] = []
    only_model = next(iter(model_tables)) if len(model_tables) == 1 else None

    def add(capability: str, name: str, tbl: Any, where: str) -> None:
        if not is_safe_name(name):  # the table name becomes part of file names (CSV tables, checkpoints)
            problems.append(f"{source}: [{capability}.{_show(name)}]: table name may use only letters, digits, "
                            "'_' and '-' (at most 64, not starting with '-')")
            return
        if not isinstance(tbl, dict):
            problems.append(f"{where}: must be a table, got {_show(tbl)}")
            return
        options = dict(tbl)
        probe = options.pop("probe", name) if capability == "fairness" else capability
        model = options.pop("model", only_model)
        if not isinstance(probe, str):
            problems.append(f"{where}: key 'probe' must be a string, got {_show(probe)}")
            return
        if model is None and not model_tables:
            return  # "no model" is reported once for the whole config
        if model is None:  # several models: the runner picks the one whose kind the section takes
            sections.append(SectionTable(capability, name, probe, "", options, where))
            return
        keys = _model_list(model, where, problems)
        for key in keys:
            if key in model_tables and key not in models:
                continue  # the model table itself has a problem, already reported
            if key not in models:
                defined = ", ".join(model_tables) or "none"
                problems.append(f"{where}: key 'model' names unknown model {key!r}; defined: {defined}")
                continue
            sections.append(SectionTable(capability, name, probe, key, options, where,
                                         variant=key if len(keys) > 1 else ""))

    fairness = raw.get("fairness", {})
    if not isinstance(fairness, dict) or not all(isinstance(v, dict) for v in fairness.values()):
        problems.append(f"{source}: [fairness] must hold one table per probe, e.g. [fairness.crows_pairs]")
    else:
        for name, tbl in fairness.items():
            add("fairness", name, tbl, f"{source}: [fairness.{name}]")
    for capability in ("explain", "privacy", "federated", "mitigation"):
        if capability in raw:
            add(capability, capability, raw[capability], f"{source}: [{capability}]")

    gates = table("gates")
    if len(problems) > start and not collect:
        raise ConfigError(problems)
    return AuditConfig(source=source, raw=raw, sha256=sha256, run=run or RunOptions(), models=models,
                       sections=tuple(sections), gates=gates, report=report or ReportOptions(), base_dir=base_dir)


def toml_value(value: Any) -> str:
    """``value`` written as a TOML value (strings JSON-quoted, lists and inline tables nested)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(str(value))
