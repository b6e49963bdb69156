"""Write the report files of a run atomically."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from raikit.audits.errors import RaikitInputError
from raikit.audits.io import write_text_atomic

__all__ = ["write_reports", "REPORT_FILES"]


def _renderers() -> dict[str, Callable[[Mapping[str, Any]], str]]:
    from raikit.reports._html import render_html
    from raikit.reports._text import render_junit, render_markdown, render_model_card

    return {"html": render_html, "md": render_markdown, "junit": render_junit, "model_card": render_model_card}


#: Format name -> file name written by :func:`write_reports`.
REPORT_FILES = {"html": "report.html", "md": "summary.md", "junit": "junit.xml", "model_card": "model_card.md"}


def write_reports(results: Mapping[str, Any], out_dir: Path, *,
                  formats: Sequence[str] = ("html", "md", "junit", "model_card")) -> list[Path]:
    """Render ``results`` in each format and write the files into ``out_dir``.

    Each file is written to a temporary file in ``out_dir`` and renamed into place, so a reader never
    sees half a report.

    Parameters
    ----------
    results : mapping
        A parsed ``results.json``.
    out_dir : Path
        The folder (created if needed).
    formats : sequence of str
        Any of ``html`` (report.html), ``md`` (summary.md), ``junit`` (junit.xml), ``model_card``
        (model_card.md).

    Returns
    -------
    list of Path
        The files written, in the order of ``formats``.

    Raises
    ------
    RaikitInputError
        For an unknown format name (before anything is written).
    """
    unknown = [f for f in formats if f not in REPORT_FILES]
    if unknown:
        raise RaikitInputError(f"unknown report format {unknown[0]!r}; known: {', '.join(REPORT_FILES)}",
                               where="report formats")
    renderers = _renderers()
    texts = [(REPORT_FILES[f], renderers[f](results)) for f in dict.fromkeys(formats)]
    out = Path(out_dir)
    return [write_text_atomic(out / name, text) for name, text in texts]
