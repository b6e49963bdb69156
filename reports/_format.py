"""How every report writes a number and a 95% CI (``fmt``, ``fmt_ci``).

The bottom of the reports' imports: the findings, the compliance mapping and the view helpers all format
through it, so it imports none of them.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from raikit.reports._load import finite

__all__ = ["fmt", "fmt_ci"]


def fmt(value: Any, digits: int = 4) -> str:
    """A number with ``digits`` significant digits; ``-`` for missing, not finite or not a number."""
    x = finite(value)
    if x is None:
        return "-"
    if x == int(x) and abs(x) < 1e9:
        return str(int(x))
    return f"{x:.{digits}g}"


def fmt_ci(ci: Sequence[Any] | None) -> str:
    """``[lo, hi]`` or ``-``."""
    if not ci or len(ci) != 2 or finite(ci[0]) is None or finite(ci[1]) is None:
        return "-"
    return f"[{fmt(ci[0])}, {fmt(ci[1])}]"
