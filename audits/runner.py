"""The run orchestrator: config -> models -> sections -> results.json -> reports.

:func:`load_audit` validates everything it can before any model is loaded or any file written;
:func:`run_audit` loads the models (still writing nothing, so bad models leave no output), runs each
section, checkpoints each finished section under ``<run dir>/.sections/`` (``--resume`` reuses them),
evaluates the gates and writes ``results.json`` and the reports atomically.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import importlib.resources
import json
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from raikit.audits.config import (
    AuditConfig, ConfigError, SectionTable, parse_config, parse_toml, read_config, validate_options,
)
from raikit.audits.errors import RaikitInputError, RunFailedError, RunInterrupted
from raikit.audits.io import confined, file_sha256, is_safe_name, write_csv_atomic, write_json_atomic
from raikit.audits.escape import for_terminal
from raikit.audits.offline import set_offline
from raikit.audits.models import ModelAdapter, ModelSpec, load_model, looks_like_path, resolve_device, wrap_model
from raikit.audits.registry import Registry
from raikit.audits.results import SCHEMA_VERSION, Metric, RetrainedModel, SectionResult
from raikit.audits.sections import RunContext, Section, registered_sections

__all__ = ["Audit", "AuditOutcome", "PlannedSection", "SectionPacer", "load_audit", "run_audit", "default_config_text",
           "DEFAULT_CONFIG_NAME"]

DEFAULT_CONFIG_NAME = "default.toml (embedded)"
_VERSIONED = ("raikit", "torch", "transformers", "tokenizers", "evaluate", "shap", "lime", "fairlearn", "numpy",
              "pandas", "scipy", "scikit-learn")
_ORDER = {"fairness": 0, "explain": 1, "mitigation": 1.5, "privacy": 2, "federated": 3}
_NOT_RUN = {
    "fairness": "No fairness probe was run: bias was not examined.",
    "explain": "No explanations were computed: decisions were not explained.",
    "privacy": "No differential-privacy retraining or membership-inference audit was run.",
    "federated": "No federated training was run.",
    "mitigation": "No bias-mitigation retraining was run: no remedy for the measured bias was tried.",
}


@dataclass(frozen=True)
class PlannedSection:
    """A validated config table bound to the registered section it runs."""

    table: SectionTable
    section: Section
    options: Any

    @property
    def key(self) -> str:
        """``fairness.crows_pairs``, ``explain``, ..."""
        return self.table.prefix


class SectionPacer(Protocol):
    """What :func:`run_audit` asks before and tells after each section (``raikit scan``'s budget keeper)."""

    def before(self, planned: PlannedSection) -> PlannedSection:
        """The section as it should run now (same table and section; the options may differ)."""

    def after(self, planned: PlannedSection, seconds: float) -> None:
        """The wall time the section took (a reused pilot's: nearly 0)."""


@dataclass(frozen=True)
class SkippedSection:
    """A section of the embedded default audit left out because a data set it reads is not installed."""

    key: str
    data_sets: tuple[str, ...]
    command: str

    def message(self) -> str:
        """One line: what was skipped, why, and the command that fetches its data."""
        sets = ", ".join(self.data_sets)
        return f"{self.key} was skipped: data set(s) {sets} not installed; fetch with `{self.command}`"


@dataclass(frozen=True)
class Audit:
    """A fully validated audit: config, sections to run, gates (and default-audit sections skipped for data)."""

    config: AuditConfig
    plan: tuple[PlannedSection, ...]
    gates: tuple[Any, ...]
    skipped: tuple[SkippedSection, ...] = ()


@dataclass(frozen=True)
class AuditOutcome:
    """What :func:`run_audit` produced."""

    results: dict[str, Any]
    out_dir: Path
    exit_code: int
    files: tuple[Path, ...] = field(default_factory=tuple)


def default_config_text() -> str:
    """The embedded default audit (``examples/default.toml``, shipped as package data)."""
    return importlib.resources.files("raikit.audits").joinpath("default.toml").read_text(encoding="utf-8")


def _registry(capability: str, where: str) -> Registry[Section]:
    """The sections a table may name: ``SECTIONS`` of the module ``SECTION_MODULES`` maps it to."""
    registry = registered_sections(capability)
    if registry is None:
        raise RaikitInputError(f"[{capability}] is not available in this version of raikit",
                               where=where.split(": [")[0])
    return registry


def _has_section(capability: str) -> bool:
    try:
        _registry(capability, where="raikit")
    except RaikitInputError:
        return False
    return True


def available_sections() -> dict[str, tuple[str, Section]]:
    """Every configurable section of this version: name -> (its TOML table, the Section), fairness first."""
    out: dict[str, tuple[str, Section]] = {}
    for capability in [c for c in _ORDER if _has_section(c)]:
        registry = _registry(capability, where="raikit")
        for name in registry.names():
            table = f"{capability}.{name}" if capability == "fairness" else capability
            out[name] = (table, registry.get(name))
    return out


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _builtin_kind(model_id: str) -> str | None:
    if not model_id.startswith("builtin:"):
        return None
    from raikit.audits.builtin import BUILTINS

    item = BUILTINS.get(model_id)
    return item.kind if item else None


def _known_kind(spec: ModelSpec, base_dir: Path) -> str | None:
    """A model's kind without loading it: its ``kind``, a built-in's, or a local folder's ``config.json``."""
    if spec.kind or spec.id.startswith("builtin:"):
        return spec.kind or _builtin_kind(spec.id)
    folder = Path(spec.id).expanduser()
    folder = folder if folder.is_absolute() else base_dir / folder
    try:
        architectures = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("architectures")
    except (OSError, ValueError, AttributeError):
        return None
    from raikit.audits.models import detect_kind

    return detect_kind(type("Cfg", (), {"architectures": architectures})) if architectures else None


def _pick_model(table: SectionTable, section: Section, config: AuditConfig) -> tuple[SectionTable, str | None]:
    """A table that omits ``model`` in a config of several models runs on the one model of a kind it takes."""
    kinds = {key: _known_kind(spec, config.base_dir) for key, spec in config.models.items()}
    fits = [key for key, kind in kinds.items() if kind in section.model_kinds]
    unknown = [key for key, kind in kinds.items() if kind is None]
    wanted = " or ".join(section.model_kinds)
    if len(fits) == 1 and not unknown:
        return dataclasses.replace(table, model=fits[0]), None
    if len(fits) > 1:
        listed = ", ".join(json.dumps(k) for k in fits)
        return table, (f"{table.where}: key 'model' is required: models {', '.join(fits)} are all {wanted} models; "
                       f"name one (model = {json.dumps(fits[0])}) or a list (model = [{listed}])")
    if unknown:
        return table, (f"{table.where}: key 'model' is required: the kind of model(s) {', '.join(unknown)} is not "
                       "known before loading; name the model, or set kind in its table")
    return table, (f"{table.where}: key 'model' is missing and no model of the config is {_article(wanted)} {wanted} "
                   f"model ({', '.join(f'{k}: {v}' for k, v in kinds.items())})")


def load_audit(path: str | Path | None = None, *, seed: int | None = None,
               skip_missing_data: bool | None = None) -> Audit:
    """Read and validate an audit config; ``None`` is the embedded default.

    ``skip_missing_data`` (default: only for the embedded default) leaves out a section whose only problem is
    a data set that is not installed, recording it in ``Audit.skipped`` with its fetch command.

    Every problem (structure, unknown keys, wrong types, unknown probes, model kinds that do not fit,
    unknown gate metrics) is collected and raised together.

    Raises
    ------
    ConfigError
        One line per problem, each naming file, table, key and value.
    """
    if path is None:
        raw, sha = parse_toml(default_config_text().encode("utf-8"), where=DEFAULT_CONFIG_NAME)
        source, base = DEFAULT_CONFIG_NAME, Path.cwd()
    else:
        raw, sha = read_config(path)
        source, base = str(path), Path(path).resolve().parent
    problems: list[str] = []
    config = parse_config(raw, source=source, sha256=sha, base_dir=base, problems=problems)
    if seed is not None:
        config = dataclasses.replace(config, run=dataclasses.replace(config.run, seed=seed))
    if not 0 <= config.run.seed < 2**32:  # numpy and torch take seeds in [0, 2**32)
        flag = "--seed" if seed is not None else f"{source}: [run]: key 'seed'"
        raise ConfigError([*problems, f"{flag}: must be between 0 and {2**32 - 1}, got {config.run.seed}"])
    problems += _missing_model_folders(config)
    plan: list[PlannedSection] = []
    skipped: list[SkippedSection] = []
    for table in sorted(config.sections, key=lambda t: _ORDER[t.capability]):
        try:
            section = _registry(table.capability, table.where).get(table.probe, where=table.where)
        except RaikitInputError as exc:
            problems.append(str(exc))
            continue
        if not table.model:
            table, problem = _pick_model(table, section, config)
            if problem:
                problems.append(problem)
                continue
        options, option_problems = validate_options(table.options, section.options, where=table.where)
        problems += option_problems
        spec = config.models[table.model]
        kind = _known_kind(spec, config.base_dir)
        if kind is not None and kind not in section.model_kinds:
            problems.append(f"{table.where}: probe {table.probe!r} needs a {' or '.join(section.model_kinds)} model, "
                            f"but model {table.model!r} ({spec.id}) is {_article(kind)} {kind}")
        if options is not None:
            missing, absent = _missing_files(options, config, table.where)
            skip = path is None if skip_missing_data is None else skip_missing_data
            if skip and absent and len(absent) == len(missing):  # default audit, scan: run what has its data
                skipped.append(SkippedSection(table.prefix, tuple(absent), _fetch_command(absent, config)))
                continue
            problems += missing
            if not missing and section.check is not None:
                try:
                    section.check(options, RunContext(base_dir=config.base_dir, data_dir=_data_dir(config),
                                                      seed=config.run.seed, progress=False))
                except RaikitInputError as exc:  # prefixed once: "[privacy]: [privacy]: ..." never
                    problems.append(str(exc) if str(exc).startswith(table.where) else f"{table.where}: {exc}")
                except (OSError, UnicodeDecodeError) as exc:  # a data file that cannot be read as text
                    problems.append(f"{table.where}: cannot read a data file: {exc}")
            if not missing:
                problems += _model_config_problems(options, spec, config.base_dir, table.where)
                problems += _class_problems(section, options, spec, config, table.where)
            plan.append(PlannedSection(table, section, options))
    from raikit.audits.gates import parse_gates

    known = [f"{p.key}.{m}" for p in plan for m in (p.section.metrics or ("*",))]
    dropped = tuple(f"{s.key}." for s in skipped)
    gate_table = {k: v for k, v in config.gates.items() if not str(k).startswith(dropped)} if dropped else config.gates
    gates, gate_problems = parse_gates(gate_table, where=f"{source}: [gates]", known_metrics=known)
    problems += gate_problems
    if problems:
        raise ConfigError(problems)
    return Audit(config=config, plan=tuple(plan), gates=tuple(gates), skipped=tuple(skipped))


_PATH_FIELDS = ("data", "hurtlex", "swaps", "texts_file", "templates", "lexicons", "data_dir")


def _data_dir(config: AuditConfig) -> Path | None:
    """``[run] data_dir`` resolved against the config's folder; None: ``{data_dir}`` is resolved per data set."""
    run = config.run
    if not run.data_dir:
        return None
    data_dir = Path(run.data_dir).expanduser()
    return data_dir if data_dir.is_absolute() else (config.base_dir / data_dir).resolve()


def _fetch_command(names: list[str], config: AuditConfig) -> str:
    from raikit.audits.datasets import fetch_command

    return fetch_command(names, target=_data_dir(config))


def _missing_files(options: Any, config: AuditConfig, where: str) -> tuple[list[str], list[str]]:
    """Problems for path options that point at nothing, found before any model loads, and the data sets absent.

    Checked: values containing ``{data_dir}`` and the usual path fields (``data``, ``hurtlex``, ...);
    ``builtin:`` values name files shipped with raikit and are checked by the probe itself. A missing
    ``{data_dir}/<set>/...`` path of a declared data set names the set and the ``raikit data fetch`` command.
    """
    from raikit.audits.datasets import set_of

    ctx = RunContext(base_dir=config.base_dir, data_dir=_data_dir(config))
    problems: list[str] = []
    absent: list[str] = []
    for f in dataclasses.fields(options):
        value = getattr(options, f.name)
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, str) or not item or item.startswith("builtin:"):
                continue
            if "{data_dir}" in item or f.name in _PATH_FIELDS:
                path = ctx.resolve_path(item)
                if path.exists():
                    too_big = _oversized(path) if path.is_file() else None
                    if too_big:
                        problems.append(f"{where}: key {f.name!r}: {path}: {too_big}")
                    continue
                name = set_of(item)
                if name is not None:
                    absent.append(name)
                    problems.append(f"{where}: key {f.name!r}: data set {name!r} is not installed (looked for {path}); "
                                    f"fetch it with `{_fetch_command([name], config)}`")
                else:
                    problems.append(f"{where}: key {f.name!r}: file not found: {path}"
                                    + (" (set [run] data_dir or $RAIKIT_DATA)" if "{data_dir}" in item else ""))
    return problems, list(dict.fromkeys(absent))


def _model_config_problems(options: Any, spec: ModelSpec, base_dir: Path, where: str) -> list[str]:
    """Options that cannot fit the model, read from a local model folder's ``config.json`` (no weights load).

    Checked: ``last_layers`` (with ``scope = "last_layers"``) above the model's number of layers.
    """
    model_config = _local_model_config(spec, base_dir)
    if model_config is None:
        return []
    problems = []
    layers = next((model_config[k] for k in ("num_hidden_layers", "n_layer", "num_layers")
                   if isinstance(model_config.get(k), int)), None) if isinstance(model_config, dict) else None
    wanted = getattr(options, "last_layers", None)
    if (layers is not None and isinstance(wanted, int) and getattr(options, "scope", None) == "last_layers"
            and wanted > layers):
        problems.append(f"{where}: key 'last_layers': must be between 1 and {layers} (the layers of model "
                        f"{spec.id!r}), got {wanted}")
    return problems


def _local_model_config(spec: ModelSpec, base_dir: Path) -> dict[str, Any] | None:
    """A local model folder's ``config.json`` (no weights load), or None (a hub id, a built-in, unreadable)."""
    if not looks_like_path(spec.id) and not (base_dir / spec.id).is_dir():
        return None
    folder = Path(spec.id).expanduser()
    folder = folder if folder.is_absolute() else base_dir / folder
    try:
        model_config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # reported when the model loads
    return model_config if isinstance(model_config, dict) else None


def _class_problems(section: Any, options: Any, spec: ModelSpec, config: Any, where: str) -> list[str]:
    """Classes a classifier section will ask for that a local model does not have (LABEL_0/LABEL_1 heads)."""
    if section.classes is None:
        return []
    if _local_model_config(spec, config.base_dir) is None:
        return []
    import transformers

    folder = Path(spec.id).expanduser()
    folder = folder if folder.is_absolute() else config.base_dir / folder
    try:  # the configuration only: id2label as transformers reads it (LABEL_0, LABEL_1 when the file has none)
        id2label = transformers.AutoConfig.from_pretrained(str(folder)).id2label
        labels = [str(v) for _, v in sorted(id2label.items(), key=lambda kv: int(kv[0]))]
        wanted = section.classes(options, RunContext(base_dir=config.base_dir, data_dir=_data_dir(config),
                                                     seed=config.run.seed, progress=False))
    except (ValueError, RaikitInputError, OSError):
        return []  # reported by the section's own check or when it runs
    for key, name in wanted:
        if name not in labels:
            hint = ("set it to the model's positive class" if key == "positive_label" else
                    f'map the template labels to its classes with label_map (e.g. label_map = {{ positive = '
                    f'"{labels[-1]}", negative = "{labels[0]}" }} if {labels[-1]} is the positive class)')
            return [f"{where}: key {key!r}: {name!r} is not a class of model {spec.id!r} ({', '.join(labels)}); "
                    f"{hint} (`raikit scan` finds which class is positive from the model's predictions)"]
    return []


def _check_out_dir(out_root: Path) -> None:
    """``--out`` must be a folder (or not exist yet): found before any model loads."""
    for folder in (out_root, *out_root.parents):
        if folder.exists():
            if not folder.is_dir():
                what = "is a file" if folder == out_root else f"is inside {folder}, which is a file"
                raise RaikitInputError(f"{what}; give a folder for the run folders", where=f"--out {out_root}")
            return


#: the largest data file and the longest line (row) raikit reads: one 300 MB field once took 21 GB to parse
MAX_DATA_FILE_BYTES = 2 * 2**30
MAX_LINE_BYTES = 1 * 2**20


def _oversized(path: Path) -> str | None:
    """Why a data file is too large to read safely (file size, or the first line over ``MAX_LINE_BYTES``), or None.

    The file is scanned in 1 MiB chunks (bounded memory, and signals are handled between chunks)."""
    size = path.stat().st_size
    if size > MAX_DATA_FILE_BYTES:
        return f"{size} bytes is more than the {MAX_DATA_FILE_BYTES} a data file may have"
    if size <= MAX_LINE_BYTES:
        return None
    line, run = 1, 0
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(2**20), b""):
            start = 0
            while True:
                nl = chunk.find(b"\n", start)
                run += (nl if nl >= 0 else len(chunk)) - start
                if run > MAX_LINE_BYTES:
                    return (f"row (line) {line} is longer than {MAX_LINE_BYTES} bytes; a field that long is not "
                            "text raikit audits (split it or drop it)")
                if nl < 0:
                    break
                line, run, start = line + 1, 0, nl + 1
    return None


def _missing_model_folders(config: AuditConfig) -> list[str]:
    """A model id written as a path that points at nothing: an error now, never a hub request with retries."""
    problems = []
    for key, spec in config.models.items():
        if looks_like_path(spec.id):
            path = Path(spec.id).expanduser()
            path = path if path.is_absolute() else config.base_dir / path
            if not path.exists():
                table = "[model]" if key == "model" and "id" in config.raw.get("model", {}) else f"[models.{key}]"
                problems.append(f"{config.source}: {table}: key 'id': no such model folder {spec.id!r} "
                                f"(looked for {path})")
    return problems


def _weights_changed(spec: ModelSpec, adapter: ModelAdapter) -> str | None:
    """A warning when a model folder raikit saved (its ``raikit.json`` records the weights' SHA-256) now holds
    other weights: they were changed after the run that produced them (overwritten in place, same size or not)."""
    folder = Path(spec.id).expanduser()
    try:
        recorded = json.loads((folder / "raikit.json").read_text(encoding="utf-8")).get("weights_sha256")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(recorded, str) or recorded == adapter.weights_sha256:
        return None
    return (f"model {spec.id!r}: its weights' SHA-256 {adapter.weights_sha256[:12]}... differs from "
            f"{recorded[:12]}..., recorded in its raikit.json when raikit saved it: the weights were changed "
            "since; this run audits the changed weights under their new hash")


def _local_spec(spec: ModelSpec, base_dir: Path) -> ModelSpec:
    """A model id naming a folder beside the config file is that folder (relative to the config, not cwd)."""
    if spec.id.startswith("builtin:") or Path(spec.id).expanduser().is_absolute():
        return spec
    candidate = base_dir / spec.id
    return dataclasses.replace(spec, id=str(candidate)) if candidate.exists() else spec


def _versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for name in _VERSIONED:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _log(progress: bool, message: str) -> None:
    if progress:
        print(f"raikit: {for_terminal(message)}", file=sys.stderr, flush=True)


def _find_resumable(out_root: Path, sha: str, seed: int) -> Path | None:
    if not out_root.is_dir():
        return None
    candidates = []
    for run_file in out_root.glob("*/.sections/_run.json"):
        try:
            meta = json.loads(run_file.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if meta.get("config_sha256") == sha and meta.get("seed") == seed:
            candidates.append((run_file.stat().st_mtime, run_file.parent.parent))
    return max(candidates)[1] if candidates else None


def _fingerprint(audit: Audit) -> dict[str, Any]:
    """What a resumed run must share with the run it resumes: each section's resolved options (paths absolute),
    the SHA-256 of every data file they read and of every file of each local model folder."""
    resolved, data_files = _data_provenance(audit)
    models: dict[str, Any] = {}
    for key, spec in audit.config.models.items():
        folder = Path(_local_spec(spec, audit.config.base_dir).id).expanduser()
        if looks_like_path(str(folder)) and folder.is_dir():
            models[key] = {str(f.relative_to(folder)): file_sha256(f)
                           for f in sorted(folder.rglob("*")) if f.is_file()}
        else:
            models[key] = {"id": spec.id}
    return {"resolved_options": resolved, "data_files": {f["path"]: f["sha256"] for f in data_files},
            "models": models}


def _fingerprint_changes(old: Mapping[str, Any], new: Mapping[str, Any], keys: set[str]) -> list[str]:
    """What differs between the recorded fingerprint and this run's, for the finished sections ``keys``."""
    changes = []
    for key in sorted(keys):
        before, now = old.get("resolved_options", {}).get(key), new["resolved_options"].get(key)
        if before is not None and before != now:
            names = sorted(k for k in set(before) | set(now or {}) if before.get(k) != (now or {}).get(k))
            changes.append(f"section {key}: option(s) {', '.join(names)} resolve differently "
                           f"(e.g. {names[0]}: {before.get(names[0])!r} -> {(now or {}).get(names[0])!r})")
    for path, digest in old.get("data_files", {}).items():
        now_digest = new["data_files"].get(path)
        if now_digest is not None and now_digest != digest:
            changes.append(f"data file {path} changed (sha256 {digest[:12]}... -> {now_digest[:12]}...)")
    for key, files in old.get("models", {}).items():
        now_files = new["models"].get(key)
        if now_files is not None and now_files != files:
            changed = sorted(f for f in set(files) | set(now_files) if files.get(f) != now_files.get(f))
            changes.append(f"model {key!r}: {', '.join(changed[:3])} changed")
    return changes


def _section_entry(planned: PlannedSection, result: SectionResult, seconds: float, tables: dict[str, str],
                   model_key: str, *, key: str | None = None) -> dict[str, Any]:
    body = result.to_dict()
    key = key or planned.key
    return {
        "capability": planned.table.capability,
        "probe": planned.table.probe,
        "model": model_key,
        "description": planned.section.description,
        "citation": planned.section.citation,
        "options": dataclasses.asdict(planned.options),
        "seconds": round(seconds, 3),
        "notes": body["notes"],
        "details": body["details"],
        "tables": tables,
        "metrics": {f"{key}.{name}": m for name, m in body["metrics"].items()},
        "metric_meanings": {name: [label, meaning] for name, label, meaning in planned.section.meanings},
        "findings_rules": [rule.to_dict() for rule in planned.section.rules],
        **({"variant_of": planned.key[: -len(planned.table.variant) - 1]} if planned.table.variant else {}),
    }


def _data_provenance(audit: Audit) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Each section's options with its paths resolved, and the SHA-256 of every data file they name.

    Path options are those :func:`_path_problems` checks (``{data_dir}`` values and the usual path keys);
    a folder counts as every file in it. A ``builtin:<file>`` value that names a starter file shipped in
    ``raikit/fairness/data`` is hashed too (and stays as named in the options); other ``builtin:`` values
    (a data set from a package) stay as named.
    """
    cfg = audit.config
    ctx = RunContext(base_dir=cfg.base_dir, data_dir=_data_dir(cfg))
    shipped = Path(str(importlib.resources.files("raikit.fairness") / "data"))
    resolved: dict[str, dict[str, Any]] = {}
    files: dict[Path, dict[str, Any]] = {}

    def path_of(item: Any, key: str) -> Path | None:
        if not isinstance(item, str) or not item:
            return None
        if item.startswith("builtin:"):
            candidate = shipped / item[len("builtin:"):]
            return candidate if candidate.is_file() else None
        return ctx.resolve_path(item) if "{data_dir}" in item or key in _PATH_FIELDS else None

    for planned in audit.plan:
        options = json.loads(json.dumps(dataclasses.asdict(planned.options), default=str))
        for f in dataclasses.fields(planned.options):
            value = getattr(planned.options, f.name)
            items = value if isinstance(value, (list, tuple)) else [value]
            paths = [path_of(item, f.name) for item in items]
            if not any(paths):
                continue
            shown = [str(p) if p and not str(item).startswith("builtin:") else item for p, item in zip(paths, items)]
            options[f.name] = shown if isinstance(value, (list, tuple)) else shown[0]
            for path in filter(None, paths):
                found = sorted(q for q in path.rglob("*") if q.is_file()) if path.is_dir() else [path]
                for file in found:
                    if file.is_file() and file not in files:
                        digest = file_sha256(file)
                        files[file] = {"path": str(file), "sha256": digest, "bytes": file.stat().st_size,
                                       "sections": []}
                    if file in files:
                        files[file]["sections"].append(f"{planned.key}.{f.name}")
        resolved[planned.key] = options
    return resolved, list(files.values())


def _reproduce_command(cfg: AuditConfig, run_dir: Path, seed: int, dev: Any) -> str:
    """The ``raikit audit`` command line that repeats this run (absolute paths, the seed and device used)."""
    import shlex

    parts = ["raikit", "audit"]
    if cfg.source != DEFAULT_CONFIG_NAME:
        parts.append(str(Path(cfg.source).resolve()))
    parts += ["--out", str(run_dir.resolve().parent), "--seed", str(seed)]
    if str(dev) in ("cpu", "cuda"):
        parts += ["--device", str(dev)]
    return shlex.join(parts)


def _flagged_texts(sections: Mapping[str, Mapping[str, Any]]) -> tuple[str, ...]:
    texts: list[str] = []
    for entry in sections.values():
        for case in entry.get("details", {}).get("flipped", []) or []:
            for key in ("original", "counterfactual"):
                if isinstance(case, Mapping) and isinstance(case.get(key), str):
                    texts.append(case[key])
    return tuple(dict.fromkeys(texts))


def _save_retrained(run_dir: Path, name: str, retrained: RetrainedModel) -> dict[str, Any]:
    """Save a retrained model as ``<run>/models/<name>/`` (safetensors), atomically; its files' SHA-256."""
    target = confined(run_dir, f"models/{name}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    description = json.loads(json.dumps(dict(retrained.description), default=str))
    try:
        retrained.model.save_pretrained(str(tmp), safe_serialization=True)
        retrained.tokenizer.save_pretrained(str(tmp))
        weights = wrap_model(retrained.model, retrained.tokenizer, device="cpu", progress=False).weights_sha256
        # the hash travels with the folder: auditing it later warns if its weights were changed since
        write_json_atomic(tmp / "raikit.json", {**description, "weights_sha256": weights})
        hashes = {f.name: file_sha256(f) for f in sorted(tmp.iterdir()) if f.is_file()}
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"path": str(target.relative_to(run_dir.resolve())), "weights_sha256": weights, "files_sha256": hashes,
            "description": description}


def _reaudit(audit: Audit, source: PlannedSection, sections: dict[str, dict[str, Any]], done: Mapping[str, Any],
             run_dir: Path, ctx: RunContext, dev: Any, progress: bool) -> None:
    """Run the audit's sections on each model ``source`` retrained, as sections of their own.

    A section is re-run when it reads the same model as ``source`` and accepts the retrained model's kind
    (``kind`` in its description, a classifier by default); its copy is keyed
    ``<source>.<variant>.<section>`` (``privacy.dp.fairness.groups``) with the same options, and the
    explain section explains the same texts as the original. A before/after table of every re-run metric
    goes into ``source``'s details: each retrained model's change with a paired bootstrap interval on the
    same items (:func:`raikit.audits.retrain_metrics.before_after_rows`, Holm-adjusted "moved").
    """
    from raikit.audits.retrain_metrics import ITEMS_TABLE, before_after_rows

    spec = audit.config.models[source.table.model]
    originals = {k: v for k, v in sections.items() if "reaudit_of" not in v}
    explain_ctx = dataclasses.replace(ctx, flagged_texts=_flagged_texts(originals))
    entry = sections[source.key]
    if not any(p.table.capability in ("fairness", "explain") and p.table.model == source.table.model
               for p in audit.plan):
        return
    reaudited: dict[str, list[PlannedSection]] = {}
    for variant, saved in entry["retrained_models"].items():
        kind = str((saved.get("description") or {}).get("kind") or "classifier")
        targets = [p for p in audit.plan if p.table.capability in ("fairness", "explain")
                   and p.table.model == source.table.model and kind in p.section.model_kinds]
        reaudited[variant] = targets
        folder = run_dir / saved["path"]
        adapter: ModelAdapter | None = None
        for target in targets:
            key = f"{source.key}.{variant}.{target.key}"
            if key in done:
                sections[key] = done[key]
                continue
            if adapter is None:
                adapter = load_model(dataclasses.replace(spec, id=str(folder), kind=kind), device=dev,
                                     offline=True, progress=progress)
            _log(progress, f"re-audit: {target.key} on the {variant} model of {source.key}")
            t0 = time.perf_counter()
            result = target.section.run(adapter, target.options,
                                        explain_ctx if target.table.capability == "explain" else ctx)
            seconds = time.perf_counter() - t0
            tables = {}
            for name, frame in result.tables.items():
                file = f"{key}.{name}.csv"
                write_csv_atomic(confined(run_dir, file), frame)
                tables[name] = file
            reaudit_entry = _section_entry(target, result, seconds, tables, f"{source.key}.{variant}", key=key)
            reaudit_entry["reaudit_of"] = target.key
            reaudit_entry["description"] = (f"Re-audit of the {variant} model ({source.key}): "
                                            f"{target.section.description}")
            write_json_atomic(confined(run_dir, f".sections/{key}.json"), reaudit_entry)
            sections[key] = reaudit_entry
            _log(progress, f"    done in {seconds:.1f} s")

    def items(section_key: str, prefix: str) -> Any:
        file = (sections[section_key].get("tables") or {}).get(ITEMS_TABLE)
        if not file or not (run_dir / file).exists():
            return None
        import pandas as pd

        frame = pd.read_csv(run_dir / file, dtype={"metric": str, "item": str, "cluster": str}, keep_default_na=False)
        return frame.assign(metric=prefix + frame["metric"])

    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    order = {t.key: t for targets in reaudited.values() for t in targets}  # each re-run section once, plan order
    for target in order.values():
        variants = [v for v, targets in reaudited.items() if any(t.key == target.key for t in targets)]
        original = sections[target.key]["metrics"]
        renamed = {v: {m: sections[f"{source.key}.{v}.{target.key}"]["metrics"].get(f"{source.key}.{v}.{m}") or {}
                       for m in original} for v in variants}
        table_rows, note = before_after_rows(
            original, renamed, original_items=items(target.key, f"{target.key}."),
            variant_items={v: items(f"{source.key}.{v}.{target.key}", f"{target.key}.") for v in variants},
            seed=ctx.seed)
        rows += table_rows
        notes.append(f"{target.key}: {note}")
    rows.sort(key=lambda r: r["moved"] is not True)  # what moved (paired test, Holm) first
    entry["details"]["reaudit"] = rows
    if notes:
        entry["details"]["reaudit_multiplicity"] = " ".join(notes)
    verdicts = _verdicts(entry, rows, source.key)
    if verdicts:
        entry["details"]["verdict"] = "; ".join(verdicts)
    if rows:  # the report shows the first rows; the CSV has them all
        import pandas as pd

        file = f"{source.key}.reaudit.csv"
        write_csv_atomic(confined(run_dir, file), pd.DataFrame(rows))
        entry.setdefault("tables", {})["reaudit"] = file
    write_json_atomic(confined(run_dir, f".sections/{source.key}.json"), entry)


def _verdicts(entry: Mapping[str, Any], rows: list[dict[str, Any]], source_key: str) -> list[str]:
    """One plain line per retrained model: its headline re-audit metric before -> after [paired change CI], and
    the accuracy change the retraining section measured (``<variant>.accuracy_change``), when it names one.

    The section's ``details["headline_metrics"]`` lists the metrics to lead with, in order of preference."""
    from raikit.audits.results import Metric as _Metric

    headlines = list((entry.get("details") or {}).get("headline_metrics") or [])
    by_metric = {r["metric"]: r for r in rows}
    out = []
    for variant in entry.get("retrained_models") or {}:
        row = next((by_metric[m] for m in headlines
                    if m in by_metric and by_metric[m].get(f"{variant} change") is not None), None)
        if row is None:
            continue
        label = row["metric"].rsplit(".", 1)[-1].replace("_", " ")
        text = (f"{variant}: {label} {row['original']:.2f} -> {row[variant]:.2f} "
                f"[{row[f'{variant} change low']:+.2f}, {row[f'{variant} change high']:+.2f}]")
        cost = (entry.get("metrics") or {}).get(f"{source_key}.{variant}.accuracy_change")
        if cost:
            m = _Metric.from_dict(cost)
            ci = f" [{m.ci95[0]:+.2f}, {m.ci95[1]:+.2f}]" if m.ci95 else ""
            text += f", accuracy {m.value:+.2f}{ci}"
        out.append(text)
    return out


def run_audit(config_path: str | Path | None = None, *, out_dir: str | Path = "out", seed: int | None = None,
              device: str | None = None, offline: bool | None = None, resume: bool = False,
              progress: bool = True, only: tuple[str, ...] | None = None, reaudit: bool = True,
              preloaded: Mapping[str, ModelAdapter] | None = None,
              scan: Mapping[str, Any] | None = None,
              reuse: Mapping[str, tuple[SectionResult, float]] | None = None,
              pace: "SectionPacer | None" = None) -> AuditOutcome:
    """Run an audit end to end.

    Parameters
    ----------
    config_path : path, optional
        The audit TOML; None runs the embedded default audit.
    out_dir : path
        Parent folder; the run writes ``<out_dir>/<run-id>/``.
    seed, device, offline
        Override ``[run]`` values from the config.
    resume : bool
        Reuse the sections already completed by the latest run with the same config and seed.
    progress : bool
        Progress messages and bars on stderr.
    only : tuple of str, optional
        Run only these capabilities (``("privacy",)`` for ``raikit retrain dp``); gates on metrics of
        the other sections are not evaluated.
    reaudit : bool
        Re-run the audit's classifier sections (on the same model) on every model a section retrained.
    preloaded : mapping of str to ModelAdapter, optional
        Models already loaded, by model key (``raikit scan`` loads each model once, to detect its kind and
        measure its speed); the others are loaded as usual.
    scan : mapping, optional
        What ``raikit scan`` decided before the run (sizes and why, sections not run), stored as
        ``run.scan``; its ``skipped_sections`` and ``limitations`` join the run's own.
    reuse : mapping, optional
        Section key -> (result, seconds) of a run with exactly the planned options, model and seed (a scan's
        pilot), recorded instead of running the section again.
    pace : SectionPacer, optional
        Asked before each section for the options to run it with (``raikit scan`` shrinks a section's
        subsample when the sections before it took longer than predicted, so the run keeps to its budget)
        and told each section's time after it.

    Returns
    -------
    AuditOutcome
        ``exit_code`` is 0 when every gate passes and 1 when one fails.

    Raises
    ------
    RaikitInputError
        Bad config, model or data; nothing is left behind.
    RunFailedError
        A section failed; finished sections stay checkpointed for ``--resume``.
    """
    audit = load_audit(config_path, seed=seed)
    if only is not None:
        plan = tuple(p for p in audit.plan if p.table.capability in only)
        if not plan:
            raise RaikitInputError(f"the config has no [{'] or ['.join(only)}] section to run",
                                   where=audit.config.source)
        keys = tuple(f"{p.key}." for p in plan)
        audit = dataclasses.replace(audit, plan=plan,
                                    gates=tuple(g for g in audit.gates if str(g.metric).startswith(keys)))
    cfg = audit.config
    run_opts = cfg.run
    try:
        dev = resolve_device(device or run_opts.device)
    except RaikitInputError as exc:
        where = "--device" if device else f"{cfg.source}: [run]: key 'device'"
        raise RaikitInputError(f"{exc} (set it to cpu or auto)", where=where) from None
    offline = run_opts.offline if offline is None else offline
    if offline:
        set_offline()
    ctx = RunContext(seed=run_opts.seed, base_dir=cfg.base_dir, data_dir=_data_dir(cfg), progress=progress)
    for skipped in audit.skipped:
        _log(progress, skipped.message())

    out_root = Path(out_dir)
    _check_out_dir(out_root)
    run_dir = _find_resumable(out_root, cfg.sha256, run_opts.seed) if resume else None
    fingerprint = _fingerprint(audit)
    if resume and run_dir is None:
        _log(True, f"--resume: no earlier run of this config (sha256 {cfg.sha256[:12]}...) with seed {run_opts.seed} "
                   f"in {out_root}; starting fresh" + (" (the config changed since the runs there)"
                                                       if list(out_root.glob("*/.sections/_run.json")) else ""))
    done: dict[str, dict[str, Any]] = {}
    recorded: dict[str, Any] = {}
    started = _now()
    if run_dir is not None:
        for planned in audit.plan:
            file = run_dir / ".sections" / f"{planned.key}.json"
            if file.exists():
                done[planned.key] = json.loads(file.read_text(encoding="utf-8"))
        reaudited = {}  # re-audits of models a finished retraining section saved (their provenance is its entry)
        for key in [k for k, entry in done.items() if entry.get("retrained_models")]:
            for file in (run_dir / ".sections").glob(f"{key}.*.json"):
                entry = json.loads(file.read_text(encoding="utf-8"))
                if entry.get("reaudit_of"):
                    reaudited[file.stem] = entry
        recorded, started = _recorded_provenance(run_dir, started)
        try:
            meta = json.loads((run_dir / ".sections" / "_run.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            meta = {}
        changes = _fingerprint_changes(meta.get("fingerprint") or {}, fingerprint, set(done))
        if not meta.get("fingerprint") and done:
            changes = ["the checkpoints do not record the options, data and model files they used"]
        if changes:
            raise RaikitInputError(f"cannot resume {run_dir}: {changes[0]}"
                                   + (f" (and {len(changes) - 1} more change(s))" if len(changes) > 1 else "")
                                   + "; start a new run without --resume", where="--resume")
        unrecorded = sorted({done[k]["model"] for k in done} - set(recorded))
        if unrecorded:
            raise RaikitInputError(f"cannot resume {run_dir}: the checkpoints do not record the provenance (weights "
                                   f"sha256, kind) of model(s) {', '.join(unrecorded)}; start a new run without "
                                   "--resume", where="--resume")
        _log(progress, f"resuming {run_dir} ({len(done)} of {len(audit.plan)} sections done)")
        done.update(reaudited)

    # Load every model still needed before writing anything: a bad model leaves no output behind.
    adapters: dict[str, ModelAdapter] = {}
    for planned in audit.plan:
        key = planned.table.model
        if planned.key in done or key in adapters:
            continue
        if preloaded and key in preloaded:
            adapters[key] = preloaded[key]
            continue
        _log(progress, f"loading model {key!r} ({cfg.models[key].id})")
        table = "[model]" if key == "model" and "id" in cfg.raw.get("model", {}) else f"[models.{key}]"
        try:
            adapter = load_model(_local_spec(cfg.models[key], cfg.base_dir), device=dev, offline=offline,
                                 progress=progress)
        except RaikitInputError as exc:
            raise RaikitInputError(f"key 'id': {exc}", where=f"{cfg.source}: {table}") from exc
        except Exception as exc:  # noqa: BLE001  (a broken model file is bad input, whatever the library raises)
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise RaikitInputError(f"key 'id': model {cfg.models[key].id!r} could not be loaded "
                                   f"({type(exc).__name__}: {reason})", where=f"{cfg.source}: {table}") from exc
        changed = _weights_changed(_local_spec(cfg.models[key], cfg.base_dir), adapter)
        if changed:
            print(f"raikit: warning: {for_terminal(changed)}", file=sys.stderr)
        if adapter.kind not in planned.section.model_kinds:
            kinds = " or ".join(planned.section.model_kinds)
            raise RaikitInputError(f"probe {planned.table.probe!r} needs a {kinds} model, but "
                                   f"{cfg.models[key].id!r} loaded as {_article(adapter.kind)} {adapter.kind}",
                                   where=planned.table.where)
        adapters[key] = adapter

    created = run_dir is None
    root_created = not out_root.exists()
    planned: PlannedSection | None = None
    if run_dir is None:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        run_dir = out_root / f"{stamp}-{cfg.sha256[:8]}"
        suffix = 1
        while run_dir.exists():
            suffix += 1
            run_dir = out_root / f"{stamp}-{cfg.sha256[:8]}-{suffix}"
        (run_dir / ".sections").mkdir(parents=True)
        write_json_atomic(confined(run_dir, ".sections/_run.json"),
                          {"config_sha256": cfg.sha256, "seed": run_opts.seed, "started": started,
                           "fingerprint": fingerprint})
    sections: dict[str, dict[str, Any]] = {}
    finished = len(done)
    try:
        if adapters:  # provenance first, so a resumed run can report models it does not load again
            recorded.update({key: adapter.describe() for key, adapter in adapters.items()})
            write_json_atomic(confined(run_dir, ".sections/_models.json"), recorded)
        for number, planned in enumerate(audit.plan, start=1):
            if planned.key in done:
                sections[planned.key] = done[planned.key]
                _log(progress, f"[{number}/{len(audit.plan)}] {planned.key}: reused from the earlier run")
                continue
            adapter = adapters[planned.table.model]
            if pace is not None:
                planned = pace.before(planned)
            _log(progress, f"[{number}/{len(audit.plan)}] {planned.key} on {planned.table.model!r}")
            section_ctx = ctx
            if planned.table.capability == "explain":
                section_ctx = dataclasses.replace(ctx, flagged_texts=_flagged_texts(sections))
            t0 = time.perf_counter()
            if reuse and planned.key in reuse:  # raikit scan's pilot already ran it with these options
                result, seconds = reuse[planned.key]
                _log(progress, "    reused the scan's pilot run (same options and seed)")
            else:
                result = planned.section.run(adapter, planned.options, section_ctx)
                seconds = time.perf_counter() - t0
            if pace is not None:
                pace.after(planned, time.perf_counter() - t0)
            tables = {}
            for name, frame in result.tables.items():
                if not is_safe_name(name):
                    raise RunFailedError(f"section {planned.key} returned a table named {name!r}, which is not a "
                                         "safe file name")
                file = f"{planned.key}.{name}.csv"
                write_csv_atomic(confined(run_dir, file), frame)
                tables[name] = file
            entry = _section_entry(planned, result, seconds, tables, planned.table.model)
            if result.models:
                entry["retrained_models"] = {name: _save_retrained(run_dir, f"{planned.key}.{name}", model)
                                             for name, model in result.models.items()}
            write_json_atomic(confined(run_dir, f".sections/{planned.key}.json"), entry)
            sections[planned.key] = entry
            finished += 1
            recorded[planned.table.model] = adapter.describe()  # batch size actually used (out-of-memory retries)
            write_json_atomic(confined(run_dir, ".sections/_models.json"), recorded)
            _log(progress, f"    done in {seconds:.1f} s")
        if reaudit:
            for planned in audit.plan:
                if sections.get(planned.key, {}).get("retrained_models"):
                    _reaudit(audit, planned, sections, done, run_dir, ctx, dev, progress)

        results = _assemble(audit, sections, adapters, run_dir, started, dev, offline, done, recorded)
        if scan is not None:
            results["run"]["scan"] = json.loads(json.dumps(dict(scan), default=str))
            results["run"]["skipped_sections"] += list(scan.get("skipped_sections", []))
            results["limitations"] += list(scan.get("limitations", []))
        for key, entry in sections.items():  # retrained models are models of the run too (model card, provenance)
            for name, saved in (entry.get("retrained_models") or {}).items():
                results["models"][f"{key}.{name}"] = {
                    "id": saved["path"], "kind": "classifier", "weights_sha256": saved["weights_sha256"],
                    "retrained_from": entry["model"], "files_sha256": saved["files_sha256"],
                    "metadata": saved["description"]}
        from raikit.audits.gates import evaluate_gates

        outcomes = evaluate_gates(list(audit.gates) + _retrained_gates(audit.gates, sections), results["metrics"])
        results["gates"] = [o.to_dict() for o in outcomes]
        files = [write_json_atomic(confined(run_dir, "results.json"), results)]
        if cfg.report.formats:
            from raikit.reports import write_reports

            files += write_reports(results, run_dir, formats=cfg.report.formats)
    except KeyboardInterrupt as exc:
        what = str(exc) if isinstance(exc, RunInterrupted) else "interrupted"
        code = exc.exit_code if isinstance(exc, RunInterrupted) else 130
        raise RunInterrupted(f"{what}; {_leftover(run_dir, created, finished, root_created)}", exit_code=code) from None
    except RaikitInputError as exc:
        raise RaikitInputError(f"{exc.problem}; {_leftover(run_dir, created, finished, root_created)}",
                               where=exc.where) from exc
    except Exception as exc:  # noqa: BLE001  (whatever a section raises: one line, finished work kept)
        stage = f"section {planned.key}" if planned is not None and planned.key not in sections else "writing results"
        reason = (str(exc).strip().splitlines() or [""])[0]
        raise RunFailedError(f"{stage} failed ({type(exc).__name__}: {reason}); "
                             f"{_leftover(run_dir, created, finished, root_created)}") from exc
    exit_code = 0 if all(o.passed for o in outcomes) else 1
    _log(progress, f"results: {run_dir / 'results.json'}")
    return AuditOutcome(results=results, out_dir=run_dir, exit_code=exit_code, files=tuple(files))


def _retrained_gates(gates: Sequence[Any], sections: Mapping[str, Mapping[str, Any]]) -> list[Any]:
    """The gates of a section again on each re-audit of it: a retrained model meets its source model's gates.

    A re-audit entry ``<source>.<variant>.<section>`` (``reaudit_of = <section>``) prefixes the section's metric
    names with ``<source>.<variant>.``; each gate on one of them is repeated on the prefixed name.
    """
    extra = []
    for key, entry in sections.items():
        target = entry.get("reaudit_of")
        if not target or not key.endswith(f".{target}"):
            continue
        prefix = key[: -len(target)]
        extra += [dataclasses.replace(g, metric=prefix + g.metric) for g in gates
                  if str(g.metric).startswith(f"{target}.")]
    return extra


def _leftover(run_dir: Path, created: bool, finished: int, root_created: bool) -> str:
    """Keep a run folder that holds finished sections (and say how to resume); remove one that holds none."""
    if finished:
        return f"{finished} finished section(s) are kept in {run_dir}; rerun with --resume to continue"
    if created:
        shutil.rmtree(run_dir, ignore_errors=True)
        if root_created:
            with contextlib.suppress(OSError):
                run_dir.parent.rmdir()  # only if empty
        return "no section had finished, so no output was kept"
    return f"nothing new was written to {run_dir}"


def _recorded_provenance(run_dir: Path, started: str) -> tuple[dict[str, Any], str]:
    """Model descriptions and start time recorded by the run being resumed (empty when not recorded)."""
    models: dict[str, Any] = {}
    try:
        models = json.loads((run_dir / ".sections" / "_models.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        pass
    try:
        meta = json.loads((run_dir / ".sections" / "_run.json").read_text(encoding="utf-8"))
        started = (meta.get("started") if isinstance(meta, dict) else None) or started
    except (OSError, json.JSONDecodeError):
        pass
    models = {k: v for k, v in models.items() if isinstance(v, dict) and v.get("weights_sha256") and v.get("kind")
              } if isinstance(models, dict) else {}
    return models, started


def _assemble(audit: Audit, sections: dict[str, dict[str, Any]], adapters: Mapping[str, ModelAdapter],
              run_dir: Path, started: str, dev: Any, offline: bool, done: Mapping[str, Any],
              recorded: Mapping[str, Any] | None = None) -> dict[str, Any]:
    cfg = audit.config
    metrics: dict[str, Any] = {}
    for entry in sections.values():
        metrics.update(entry.pop("metrics"))
    models: dict[str, Any] = {}
    for key, spec in cfg.models.items():
        if key in adapters:
            models[key] = adapters[key].describe()
        elif recorded and key in recorded:  # resumed: the provenance recorded when the model was loaded
            models[key] = dict(recorded[key])
        else:
            models[key] = {"id": spec.id, "kind": spec.kind, "weights_sha256": None, "note": "not loaded in this run"}
    limitations = [f"{key}: {note}" for key, entry in sections.items() for note in entry.get("notes", [])]
    for key, adapter in adapters.items():
        changed = _weights_changed(_local_spec(cfg.models[key], cfg.base_dir), adapter) if key in cfg.models else None
        if changed:
            models[key]["weights_changed"] = changed
            limitations.append(changed)
    ran = {p.table.capability for p in audit.plan}
    limitations += [text for cap, text in _NOT_RUN.items() if cap not in ran]
    limitations += [s.message() for s in audit.skipped]
    if done:
        limitations.append(f"{len(done)} section(s) were reused from an earlier run with the same config and seed "
                           f"(--resume): {', '.join(done)}")
    for key, value in metrics.items():  # normalise through Metric so every entry has the same shape
        metrics[key] = Metric.from_dict(value).to_dict()
    versions = _versions()
    resolved, data_files = _data_provenance(audit)
    return {
        "schema_version": SCHEMA_VERSION,
        "run": {
            "id": run_dir.name,
            "raikit_version": versions.get("raikit", "unknown"),
            "packages": versions,
            "config_path": cfg.source,
            "config_sha256": cfg.sha256,
            "seed": cfg.run.seed,
            "started": started,
            "finished": _now(),
            "device": str(dev),
            "offline": bool(offline),
            "section_seconds": {k: v.get("seconds") for k, v in sections.items()},
            "skipped_sections": [{"section": s.key, "data_sets": list(s.data_sets), "command": s.command}
                                 for s in audit.skipped],
            "command": _reproduce_command(cfg, run_dir, cfg.run.seed, dev),
            "resolved_options": resolved,
            "data_files": data_files,
        },
        "config": json.loads(json.dumps(dict(cfg.raw), default=str)),
        "models": models,
        "sections": sections,
        "metrics": metrics,
        "gates": [],
        "limitations": limitations,
    }


__all__ += ["ConfigError"]
