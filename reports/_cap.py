"""A cap on the length of any one text a report shows (a 50 MB description must not be copied whole)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["TEXT_CAP", "cap_texts"]

#: Characters of one string from results.json that a report (HTML, Markdown, model card) shows at most.
TEXT_CAP = 4000


def capped(text: str, *, limit: int = TEXT_CAP) -> str:
    """``text`` itself when short, else its first ``limit`` characters and a note saying how much was cut."""
    if len(text) <= limit:
        return text
    return (f"{text[:limit]} … [cut by raikit: {len(text):,} characters, the first {limit:,} shown; the full text "
            "is in results.json]")


def cap_texts(value: Any, *, limit: int = TEXT_CAP) -> Any:
    """:func:`capped` applied to every string of a JSON-like value, keys too.

    An explained text (a mapping with ``spans``) is kept whole: its word spans index into it, and the
    explain section bounds its own texts.
    """
    if isinstance(value, str):
        return capped(value, limit=limit)
    if isinstance(value, Mapping):
        if "spans" in value and "text" in value:
            return dict(value)
        return {capped(k, limit=limit) if isinstance(k, str) else k: cap_texts(v, limit=limit) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [cap_texts(v, limit=limit) for v in value]
    return value
