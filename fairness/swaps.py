"""Swap lists and counterfactual texts: group terms exchanged whole-word, their case kept.

Read by ``[fairness.counterfactual]`` (the flip rate under swaps) and by ``[mitigation]`` (counterfactual
data augmentation and logit pairing on the same swaps). Files: bias-bench JSON (Meade et al. 2022),
WinoBias-style TXT (Zhao et al. 2018) or a CSV of your own.
"""
from __future__ import annotations

import csv
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from raikit.audits.errors import RaikitInputError
from raikit.fairness._classifier_common import _safe
from raikit.fairness.templates import indefinite_article

__all__ = ["SwapList", "load_swaps", "counterfactuals"]


_GROUP_NAMES = {"gender": ["male", "female"], "race": ["black", "white", "asian"],
                "religion": ["jewish", "christian", "muslim"]}


@dataclass(frozen=True)
class SwapList:
    """Aligned group terms of one axis: ``tuples[i][j]`` is term i in group j."""

    axis: str
    groups: tuple[str, ...]
    tuples: tuple[tuple[str, ...], ...]

    def lookup(self) -> dict[str, tuple[int, int]]:
        """Lower-cased term -> (tuple index, group index); the first occurrence wins."""
        out: dict[str, tuple[int, int]] = {}
        for i, tup in enumerate(self.tuples):
            for j, w in enumerate(tup):
                out.setdefault(w.lower(), (i, j))
        return out


def load_swaps(path: str | Path, *, axes: Sequence[str] = ()) -> list[SwapList]:
    """Read swap lists: bias-bench JSON (axis -> list of aligned tuples), WinoBias-style TXT (two words a
    line, gender) or CSV (columns ``word``, ``swap``, optional ``axis``).

    Parameters
    ----------
    axes : sequence of str
        Keep only these axes (JSON/CSV); all when empty.
    """
    path = Path(path)
    data: dict[str, list[tuple[str, ...]]] = {}
    if path.suffix == ".json":
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise RaikitInputError("swap JSON must map axis -> list of aligned word tuples", where=str(path))
        data = {k: [tuple(str(w) for w in t) for t in v] for k, v in raw.items()}
    elif path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            for col in ("word", "swap"):
                if col not in (reader.fieldnames or []):
                    raise RaikitInputError(f"column {col!r} missing", where=str(path))
            for row in reader:
                data.setdefault((row.get("axis") or "custom").strip(), []).append(
                    (row["word"].strip(), row["swap"].strip()))
    else:
        pairs = []
        for line in path.read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if len(parts) == 2:
                pairs.append((parts[0], parts[1]))
            elif parts:
                raise RaikitInputError(f"expected two words a line, got {line.strip()!r}", where=str(path))
        data = {"gender": pairs}
    out = []
    for axis, tuples in data.items():
        if axes and axis not in axes:
            continue
        tuples = [t for t in tuples if len(t) >= 2]
        if not tuples:
            raise RaikitInputError(f"axis {axis!r} has no word pairs (empty lexicon)", where=str(path))
        width = min(len(t) for t in tuples)
        names = _GROUP_NAMES.get(axis, [])
        groups = tuple(names[:width]) if len(names) >= width else tuple(f"group{j}" for j in range(width))
        out.append(SwapList(axis=axis, groups=groups, tuples=tuple(t[:width] for t in tuples)))
    missing = [a for a in axes if a not in {s.axis for s in out}]
    if missing:
        raise RaikitInputError(f"axis {missing[0]!r} not in swap file (has: {', '.join(data)})", where=str(path))
    return out


def _match_case(word: str, like: str) -> str:
    if like.isupper() and len(like) > 1:
        return word.upper()
    if like[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def counterfactuals(text: str, swaps: Sequence[SwapList]) -> list[dict[str, str]]:
    """Counterfactual versions of ``text``: whole-word, case-preserving swaps of group terms.

    Returns
    -------
    list of dict
        ``{"counterfactual", "axis", "source", "target", "pair"}`` for each counterfactual.
    """
    out = []
    for sw in swaps:
        table = sw.lookup()
        # a word may follow its article ("an Asian person"): the article is re-chosen for the new word
        pattern = re.compile(r"(?:\b(a|an)(\s+))?\b(" + "|".join(sorted(map(re.escape, table), key=len, reverse=True))
                             + r")\b", re.IGNORECASE)
        found = [table[m.group(3).lower()] for m in pattern.finditer(text)]
        if not found:
            continue
        present = list(dict.fromkeys(g for _, g in found))
        n_groups = len(sw.groups)
        if n_groups == 2:
            targets = [None]
        else:
            targets = list(range(n_groups))

        for target in targets:
            def sub(m: re.Match[str], target: int | None = target) -> str:
                i, j = table[m.group(3).lower()]
                to = (1 - j) if target is None else target
                word = _match_case(sw.tuples[i][to], m.group(3))
                if not m.group(1):
                    return word
                return _match_case(indefinite_article(word), m.group(1)) + m.group(2) + word

            new = pattern.sub(sub, text)
            if new == text:
                continue
            src = sw.groups[present[0]] if len(present) == 1 else "mixed"
            dst = sw.groups[1 - present[0]] if target is None and len(present) == 1 else (
                "swapped" if target is None else sw.groups[target])
            out.append({"counterfactual": new, "axis": sw.axis, "source": src, "target": dst,
                        "pair": f"{sw.axis}_{_safe(src)}_to_{_safe(dst)}"})
    return out
