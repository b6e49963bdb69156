"""The contract between the runner and the capabilities.

A capability (fairness probe, explainer run, ...) registers a :class:`Section`: a name, a frozen
options dataclass read from its TOML table, the model kinds it accepts, and a ``run`` function that
takes one model adapter, the options and a :class:`RunContext`, and returns a
:class:`~raikit.audits.results.SectionResult` whose metric names are relative to the section
(``metric_score``); the runner prefixes ``<capability>.<table name>.``.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raikit.audits.errors import RaikitInputError
from raikit.audits.results import SectionResult

__all__ = ["Section", "RunContext", "default_data_dir", "data_key", "at_least"]


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
