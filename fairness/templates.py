"""Templates and lexicons in the spirit of CheckList (Ribeiro et al., ACL 2020).

A *template* is a sentence with named slots: ``"{person} works as {a:occupation}."``. Each slot names
a *lexicon*, a list of words that may be split into named groups (``gender -> {male: [...], female:
[...]}``). ``{a:occupation}`` inserts the word with its indefinite article ("an engineer"). The slot
``{mask}`` is left in place for the probe that fills it. Expanding templates over lexicons gives a
DataFrame with one row per instance: the template id, the filled text and, for each slot, the word
(``<slot>``) and its group (``<slot>_group``).

raikit ships starter sets in ``raikit/fairness/data`` (refer to them as ``builtin:lexicons/gender.toml``);
users point the config at their own TOML, JSON or CSV files instead.

File formats
------------
Lexicon TOML / JSON: top-level keys are lexicon names; a value is either a list of words (ungrouped)
or a table of group name -> list of words. Lexicon CSV: columns ``lexicon``, ``word`` and optionally
``group``.

Template TOML: ``[[template]]`` tables with ``id``, ``text`` and optional ``label`` (expected class),
``test`` ("mft" or "dir"), ``perturbed`` and ``direction`` (DIR tests), ``targets`` (the lexicon that
fills ``{mask}``). Template CSV: columns ``id`` and ``text`` (plus the optional ones).
"""
from __future__ import annotations

import csv
import itertools
import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from raikit.audits.errors import RaikitInputError
from raikit.audits.sections import RunContext

__all__ = [
    "indefinite_article",
    "Lexicon",
    "Template",
    "MASK_SLOT",
    "BUILTIN_PREFIX",
    "builtin_path",
    "resolve_data_path",
    "load_lexicons",
    "load_templates",
    "load_configured",
    "pick_two_groups",
    "expand",
    "fill",
]

MASK_SLOT = "mask"
BUILTIN_PREFIX = "builtin:"
_SLOT = re.compile(r"\{(?:(a):)?([A-Za-z_][A-Za-z0-9_]*)\}")
# a vowel sound, not a vowel letter: "an hour", "a European", "a unicorn", "a Ukrainian", "a one-off"
_VOWEL_SOUND = re.compile(r"^(?:[ai]|e(?!u|we)|o(?!ne\b|nce\b)|u(?!ni|s[eu]|r[aeiou]|k|ti))"
                          r"|^(?:hour|honest|honou?r|heir)", re.IGNORECASE)


@dataclass(frozen=True)
class Lexicon:
    """A named list of words, possibly split into groups.

    Attributes
    ----------
    name : str
        The lexicon name; template slots refer to it (``{name}``, ``{name1}``, ``{a:name}``).
    groups : mapping of str to tuple of str
        Group name -> words. An ungrouped lexicon has the single group ``""``.
    source : str
        Where it was read from (for error messages).
    """

    name: str
    groups: Mapping[str, tuple[str, ...]]
    source: str = ""

    @property
    def words(self) -> list[str]:
        """Every word, in group order."""
        return [w for ws in self.groups.values() for w in ws]

    @property
    def grouped(self) -> bool:
        """Whether the words are split into named groups."""
        return list(self.groups) != [""]

    def group_of(self, word: str) -> str:
        """The group a word belongs to (the first one if it appears in several)."""
        for g, ws in self.groups.items():
            if word in ws:
                return g
        raise KeyError(word)

    def pairs(self) -> list[tuple[str, str]]:
        """``(word, group)`` for every word."""
        return [(w, g) for g, ws in self.groups.items() for w in ws]


@dataclass(frozen=True)
class Template:
    """One template sentence with named slots.

    Attributes
    ----------
    id : str
    text : str
        The sentence with slots such as ``{person}``, ``{a:occupation}`` and ``{mask}``.
    label : str or None
        Expected class for classifier tests (MFT), or the class whose probability a DIR test watches.
    test : str
        "mft" (minimum functionality) or "dir" (directional) for classifier behaviour tests.
    perturbed : str or None
        DIR tests: the changed sentence (same slots as ``text``).
    direction : str or None
        DIR tests: "up" or "down", how ``label``'s probability must move from text to perturbed.
    targets : str or None
        Probes that fill ``{mask}``: the lexicon whose words are scored there.
    """

    id: str
    text: str
    label: str | None = None
    test: str = "mft"
    perturbed: str | None = None
    direction: str | None = None
    targets: str | None = None

    @property
    def slots(self) -> tuple[str, ...]:
        """Slot names in order of first appearance, ``mask`` excluded."""
        names = [m.group(2) for m in _SLOT.finditer(self.text + " " + (self.perturbed or ""))]
        return tuple(dict.fromkeys(n for n in names if n != MASK_SLOT))

    @property
    def has_mask(self) -> bool:
        """Whether the text has a ``{mask}`` slot."""
        return any(m.group(2) == MASK_SLOT for m in _SLOT.finditer(self.text))


# -- paths -------------------------------------------------------------------------------------------

def builtin_path(name: str) -> Path:
    """Path of a starter file shipped in ``raikit/fairness/data`` (e.g. ``"lexicons/gender.toml"``)."""
    root = Path(str(resources.files("raikit.fairness") / "data"))
    path = root / name
    if not path.is_file():
        known = sorted(str(p.relative_to(root)) for p in root.rglob("*.*") if p.suffix in (".toml", ".csv", ".json"))
        raise RaikitInputError(f"no built-in data file {name!r}; known: {', '.join(known)}")
    return path


def resolve_data_path(value: str, ctx: RunContext, *, where: str) -> Path:
    """``builtin:<name>`` -> the shipped starter file; anything else -> ``ctx.existing_path``."""
    if value.startswith(BUILTIN_PREFIX):
        return builtin_path(value[len(BUILTIN_PREFIX):])
    return ctx.existing_path(value, where=where)


def _as_path(value: str | Path) -> Path:
    if isinstance(value, str) and value.startswith(BUILTIN_PREFIX):
        return builtin_path(value[len(BUILTIN_PREFIX):])
    path = Path(value).expanduser()
    if not path.exists():
        raise RaikitInputError("file not found", where=str(path))
    return path


# -- lexicons ----------------------------------------------------------------------------------------

def _read_mapping(path: Path) -> dict[str, Any]:
    try:
        if path.suffix == ".toml":
            return tomllib.loads(path.read_text(encoding="utf-8"))
        if path.suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise RaikitInputError("a lexicon JSON file must hold an object of lexicons", where=str(path))
            return data
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise RaikitInputError(f"cannot parse: {exc}", where=str(path)) from None
    raise RaikitInputError(f"unsupported file type {path.suffix!r}; use .toml, .json or .csv", where=str(path))


def _read_csv(path: Path, required: Sequence[str]) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        columns = reader.fieldnames or []
        missing = [c for c in required if c not in columns]
        if missing:
            raise RaikitInputError(f"column {missing[0]!r} missing (columns: {', '.join(columns) or 'none'})",
                                   where=str(path))
        return [dict(row) for row in reader]


def _words(value: Any, *, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(w, str) for w in value):
        raise RaikitInputError("expected a list of words", where=where)
    words = tuple(dict.fromkeys(w.strip() for w in value if w.strip()))
    if not words:
        raise RaikitInputError("empty word list", where=where)
    return words


def load_lexicons(paths: Sequence[str | Path] | str | Path) -> dict[str, Lexicon]:
    """Read lexicons from TOML, JSON or CSV files (``builtin:<name>`` for the starter sets).

    Parameters
    ----------
    paths : path or sequence of paths
        Files to read; later files may not redefine a lexicon name.

    Returns
    -------
    dict of str to Lexicon

    Raises
    ------
    RaikitInputError
        For an unreadable file, an empty lexicon or group, a CSV missing a column, or a name defined twice.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out: dict[str, Lexicon] = {}
    for raw in paths:
        path = _as_path(raw)
        found: dict[str, dict[str, tuple[str, ...]]] = {}
        if path.suffix == ".csv":
            rows = _read_csv(path, ["lexicon", "word"])
            tmp: dict[str, dict[str, list[str]]] = {}
            for row in rows:
                name, word = (row.get("lexicon") or "").strip(), (row.get("word") or "").strip()
                if name and word:
                    tmp.setdefault(name, {}).setdefault((row.get("group") or "").strip(), []).append(word)
            if not tmp:
                raise RaikitInputError("no lexicon rows (empty lexicon)", where=str(path))
            found = {n: {g: _words(ws, where=f"{path}: {n}.{g}") for g, ws in gs.items()} for n, gs in tmp.items()}
        else:
            data = _read_mapping(path)
            if not data:
                raise RaikitInputError("no lexicons in file (empty lexicon)", where=str(path))
            for name, value in data.items():
                if isinstance(value, dict):
                    if not value:
                        raise RaikitInputError(f"lexicon {name!r} is empty", where=str(path))
                    found[name] = {str(g): _words(ws, where=f"{path}: {name}.{g}") for g, ws in value.items()}
                else:
                    found[name] = {"": _words(value, where=f"{path}: {name}")}
        for name, groups in found.items():
            if name in out:
                raise RaikitInputError(f"lexicon {name!r} is defined twice (also in {out[name].source})",
                                       where=str(path))
            out[name] = Lexicon(name=name, groups=groups, source=str(path))
    return out


# -- templates ---------------------------------------------------------------------------------------

_TEMPLATE_FIELDS = ("id", "text", "label", "test", "perturbed", "direction", "targets")


def _make_template(row: Mapping[str, Any], *, where: str) -> Template:
    unknown = sorted(set(row) - set(_TEMPLATE_FIELDS))
    if unknown:
        raise RaikitInputError(f"unknown template key {unknown[0]!r}; known: {', '.join(_TEMPLATE_FIELDS)}",
                               where=where)
    text = str(row.get("text") or "").strip()
    if not text:
        raise RaikitInputError("template has no text", where=where)
    kwargs = {k: (str(row[k]).strip() or None) for k in ("label", "perturbed", "direction", "targets")
              if row.get(k) not in (None, "")}
    test = str(row.get("test") or "mft").strip().lower()
    tpl = Template(id=str(row.get("id") or "").strip(), text=text, test=test, **kwargs)
    if not _SLOT.search(text):
        raise RaikitInputError(f"template {tpl.id or text!r} has no slot (write slots as {{name}})", where=where)
    if test not in ("mft", "dir"):
        raise RaikitInputError(f"template {tpl.id!r}: test {test!r} must be 'mft' or 'dir'", where=where)
    if test == "dir" and (tpl.perturbed is None or tpl.direction not in ("up", "down") or tpl.label is None):
        raise RaikitInputError(f"template {tpl.id!r}: a DIR test needs perturbed, label and direction "
                               "('up' or 'down')", where=where)
    return tpl


def load_templates(paths: Sequence[str | Path] | str | Path) -> list[Template]:
    """Read templates from TOML (``[[template]]`` tables) or CSV (columns ``id``, ``text``, ...) files.

    Raises
    ------
    RaikitInputError
        For a template without a slot, a CSV missing a column, duplicate ids or an empty file.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out: list[Template] = []
    seen: set[str] = set()
    for raw in paths:
        path = _as_path(raw)
        if path.suffix == ".csv":
            rows: list[Mapping[str, Any]] = _read_csv(path, ["id", "text"])
        else:
            data = _read_mapping(path)
            rows = data.get("template", [])
            if not isinstance(rows, list):
                raise RaikitInputError("'template' must be an array of tables ([[template]])", where=str(path))
        if not rows:
            raise RaikitInputError("no templates in file", where=str(path))
        for i, row in enumerate(rows):
            tpl = _make_template(row, where=f"{path}: template {i + 1}")
            if not tpl.id:
                tpl = replace(tpl, id=f"{path.stem}_{i + 1}")
            if tpl.id in seen:
                raise RaikitInputError(f"template id {tpl.id!r} is used twice", where=str(path))
            seen.add(tpl.id)
            out.append(tpl)
    return out


def load_configured(templates: str, lexicons: Sequence[str], ctx: RunContext, *,
                    section: str) -> tuple[list[Template], dict[str, Lexicon]]:
    """Templates and lexicons named by a section's ``templates`` / ``lexicons`` options (``builtin:`` or paths).

    Errors name the option as ``<section>.templates`` or ``<section>.lexicons``.
    """
    tpls = load_templates(resolve_data_path(templates, ctx, where=f"{section}.templates"))
    lex = load_lexicons([resolve_data_path(p, ctx, where=f"{section}.lexicons") for p in lexicons])
    return tpls, lex


def pick_two_groups(lexicon: Lexicon, chosen: Sequence[str], *, key: str, context: str = "") -> tuple[str, str]:
    """The two groups of ``lexicon`` to compare: ``chosen``, or its first two groups when empty.

    Raises
    ------
    RaikitInputError
        When the lexicon has fewer than two groups, ``chosen`` is not two different groups of it, or a
        word belongs to both (``context`` prefixes the message, ``key`` names the option).
    """
    known = list(lexicon.groups)
    if not lexicon.grouped or len(known) < 2:
        raise RaikitInputError(f"{context}{key}: lexicon {lexicon.name!r} needs at least two groups of words")
    pick = tuple(chosen) if chosen else tuple(known[:2])
    if len(pick) != 2 or any(g not in known for g in pick) or pick[0] == pick[1]:
        raise RaikitInputError(f"{context}{key} must be two different groups of {lexicon.name!r} "
                               f"({', '.join(known)}); got {list(chosen)}")
    shared = sorted(set(lexicon.groups[pick[0]]) & set(lexicon.groups[pick[1]]))
    if shared:
        raise RaikitInputError(f"{context}{key}: {shared[0]!r} is in both {pick[0]!r} and {pick[1]!r} of lexicon "
                               f"{lexicon.name!r}; a word may belong to one of the compared groups only")
    return pick[0], pick[1]


# -- expansion ---------------------------------------------------------------------------------------

def _lexicon_for(slot: str, lexicons: Mapping[str, Lexicon], template: Template) -> Lexicon:
    if slot in lexicons:
        return lexicons[slot]
    base = slot.rstrip("0123456789")
    if base in lexicons:
        return lexicons[base]
    raise RaikitInputError(f"template {template.id!r}: slot {{{slot}}} has no lexicon; known lexicons: "
                           f"{', '.join(sorted(lexicons)) or 'none'}")


def indefinite_article(word: str) -> str:
    """``"an"`` before a vowel sound (``an Asian``, ``an hour``), else ``"a"`` (``a Caucasian``, ``a unicorn``)."""
    return "an" if _VOWEL_SOUND.match(word) else "a"


def _article(word: str) -> str:
    return f"{indefinite_article(word)} {word}"


def fill(text: str, values: Mapping[str, str], *, mask: str = "{mask}") -> str:
    """Fill the slots of ``text`` with ``values``; ``{mask}`` becomes ``mask``.

    A filled word that starts the sentence gets a capital first letter.
    """
    def sub(m: re.Match[str]) -> str:
        article, slot = m.group(1), m.group(2)
        if slot == MASK_SLOT:
            return mask
        word = values[slot]
        word = _article(word) if article else word
        return word[:1].upper() + word[1:] if m.start() == 0 else word

    return _SLOT.sub(sub, text)


def expand(templates: Sequence[Template], lexicons: Mapping[str, Lexicon], *,
           mode: Literal["product", "zip"] = "product", filters: Mapping[str, Sequence[str]] | None = None,
           max_instances: int | None = None, seed: int = 0, mask: str = "{mask}") -> pd.DataFrame:
    """Fill every template with lexicon words: one row per instance.

    Parameters
    ----------
    templates : sequence of Template
    lexicons : mapping of str to Lexicon
    mode : {"product", "zip"}
        "product" takes every combination of the slots' words (cartesian product); "zip" takes the
        i-th word of every slot together (the slots' lexicons must have equal length).
    filters : mapping of str to list of str, optional
        Keep only rows whose ``<slot>`` or ``<slot>_group`` value is in the list (per slot).
    max_instances : int, optional
        When a template has more instances than this, a fixed random subsample (seeded) of this size
        is taken; the row count before subsampling is in ``DataFrame.attrs["n_total"]``.
    seed : int
        Seed of the subsample.
    mask : str
        What ``{mask}`` becomes (e.g. the model's mask token); kept as ``{mask}`` by default.

    Returns
    -------
    DataFrame
        Columns ``template_id``, ``text``, ``label``, ``test``, ``perturbed``, ``direction``, ``targets``,
        and ``<slot>``, ``<slot>_group`` for each slot of any template.
    """
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    n_total = 0
    for tpl in templates:
        slots = tpl.slots
        lex = [_lexicon_for(s, lexicons, tpl) for s in slots]
        choices = [lx.pairs() for lx in lex]
        for slot, ch in zip(slots, choices):
            allowed = (filters or {}).get(slot)
            if allowed is not None:
                ch[:] = [(w, g) for w, g in ch if w in allowed or g in allowed]
                if not ch:
                    raise RaikitInputError(f"template {tpl.id!r}: the filter on slot {{{slot}}} keeps no word")
        if mode == "zip":
            lengths = {len(c) for c in choices}
            if len(lengths) > 1:
                raise RaikitInputError(f"template {tpl.id!r}: zip expansion needs lexicons of equal length, "
                                       f"got {', '.join(f'{s}={len(c)}' for s, c in zip(slots, choices))}")
            combos: Sequence[tuple[tuple[str, str], ...]] = list(zip(*choices)) if choices else [()]
        elif mode == "product":
            sizes = [len(c) for c in choices]
            total = int(np.prod(sizes)) if sizes else 1
            if max_instances is not None and total > max_instances:
                picks = np.sort(rng.choice(total, size=max_instances, replace=False))
                idx = np.unravel_index(picks, sizes)
                combos = [tuple(choices[k][int(idx[k][j])] for k in range(len(slots))) for j in range(len(picks))]
            else:
                combos = list(itertools.product(*choices))
            n_total += total
        else:
            raise RaikitInputError(f"unknown expansion mode {mode!r}; use 'product' or 'zip'")
        if mode == "zip":
            n_total += len(combos)
            if max_instances is not None and len(combos) > max_instances:
                keep = np.sort(rng.choice(len(combos), size=max_instances, replace=False))
                combos = [combos[int(k)] for k in keep]
        for combo in combos:
            values = {s: w for s, (w, _) in zip(slots, combo)}
            row: dict[str, Any] = {
                "template_id": tpl.id, "text": fill(tpl.text, values, mask=mask), "label": tpl.label,
                "test": tpl.test, "perturbed": fill(tpl.perturbed, values, mask=mask) if tpl.perturbed else None,
                "direction": tpl.direction, "targets": tpl.targets,
            }
            for s, (w, g) in zip(slots, combo):
                row[s] = w
                row[f"{s}_group"] = g
            rows.append(row)
    frame = pd.DataFrame(rows, columns=None if rows else ["template_id", "text"])
    frame.attrs["n_total"] = n_total
    return frame
