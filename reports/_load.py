"""Read a ``results.json`` back, checking its schema version and basic shape."""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from raikit.audits.errors import RaikitInputError
from raikit.audits.results import SCHEMA_VERSION

__all__ = ["load_results", "results_schema", "SUPPORTED_MAJOR"]

#: Results files whose ``schema_version`` starts with this major number can be read.
SUPPORTED_MAJOR = SCHEMA_VERSION.split(".")[0]


def results_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``results.json``, shipped as ``raikit/reports/data/results.schema.json``."""
    text = resources.files("raikit.reports").joinpath("data", "results.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def _check(results: Mapping[str, Any], where: str) -> None:
    version = results.get("schema_version")
    if not isinstance(version, str):
        raise RaikitInputError(f"schema_version missing or not a string ({version!r}); is this a raikit "
                               "results.json?", where=where)
    if version.split(".")[0] != SUPPORTED_MAJOR:
        raise RaikitInputError(f"schema_version {version!r} is not supported (this raikit reads "
                               f"{SUPPORTED_MAJOR}.x)", where=where)
    for key, kind in (("run", Mapping), ("metrics", Mapping), ("models", Mapping), ("sections", Mapping),
                      ("config", Mapping), ("gates", list), ("limitations", list)):
        if key in results and not isinstance(results[key], kind):
            raise RaikitInputError(f"{key!r} must be a {'list' if kind is list else 'object'}, "
                                   f"got {type(results[key]).__name__}", where=where)
    if not isinstance(results.get("metrics"), Mapping):
        raise RaikitInputError("'metrics' object missing", where=where)
    for name, entry in results["metrics"].items():
        if not isinstance(entry, Mapping) or "value" not in entry:
            raise RaikitInputError(f"metric {name!r} must be an object with a 'value'", where=where)
        value = entry["value"]
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise RaikitInputError(f"metric {name!r} value must be a number or null, got {value!r}", where=where)
        ci = entry.get("ci95")
        if ci is not None and (not isinstance(ci, list) or len(ci) != 2):
            raise RaikitInputError(f"metric {name!r} ci95 must be [low, high] or null, got {ci!r}", where=where)
    for i, gate in enumerate(results.get("gates", [])):
        if not isinstance(gate, Mapping) or "metric" not in gate or "passed" not in gate:
            raise RaikitInputError(f"gates[{i}] must be an object with 'metric' and 'passed'", where=where)


def _no_constants(token: str) -> float:
    raise ValueError(f"{token} is not valid JSON")


def load_results(path: str | Path) -> dict[str, Any]:
    """Read a ``results.json`` written by ``raikit audit``.

    Parameters
    ----------
    path : str or Path
        The file.

    Returns
    -------
    dict
        The parsed results.

    Raises
    ------
    RaikitInputError
        When the file is missing, not JSON, or not a results file of a supported ``schema_version``;
        the one-line message names the file.
    """
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RaikitInputError("results file not found", where=where) from None
    except IsADirectoryError:
        raise RaikitInputError("is a folder; pass its results.json", where=where) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RaikitInputError(f"cannot read results ({exc})", where=where) from None
    try:
        data = json.loads(text, parse_constant=_no_constants)
    except ValueError as exc:
        raise RaikitInputError(f"not valid JSON: {str(exc).splitlines()[0]}", where=where) from None
    if not isinstance(data, dict):
        raise RaikitInputError(f"must hold a JSON object, not {type(data).__name__}", where=where)
    _check(data, where)
    return data


def finite(value: Any) -> float | None:
    """``value`` as a float, or None when it is missing or not finite."""
    if value is None or isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def ci_of(entry: Mapping[str, Any] | None) -> tuple[float, float] | None:
    """The ``ci95`` of a metric entry as a float pair, or None when absent or not finite."""
    if not entry:
        return None
    ci = entry.get("ci95")
    if not ci or len(ci) != 2:
        return None
    lo, hi = finite(ci[0]), finite(ci[1])
    return None if lo is None or hi is None else (lo, hi)
