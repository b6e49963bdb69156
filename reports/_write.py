"""Write the report files of a run atomically."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from raikit.audits.errors import RaikitInputError
from raikit.audits.io import write_text_atomic

__all__ = ["write_reports", "report_paths", "REPORT_FILES"]


def _renderers() -> dict[str, Callable[[Mapping[str, Any]], str]]:
    from raikit.reports._html import render_html
    from raikit.reports._text import render_junit, render_markdown, render_model_card

    return {"html": render_html, "md": render_markdown, "junit": render_junit, "model_card": render_model_card}


#: Format name -> file name written by :func:`write_reports`.
REPORT_FILES = {"html": "report.html", "md": "summary.md", "junit": "junit.xml", "model_card": "model_card.md"}


def report_paths(out_dir: Path, *, formats: Sequence[str], html_path: Path | None = None) -> dict[str, Path]:
    """Format name -> the file :func:`write_reports` writes for it (``REPORT_FILES`` in ``out_dir``)."""
    _check_formats(formats)
    paths = {f: Path(out_dir) / REPORT_FILES[f] for f in dict.fromkeys(formats)}
    if html_path is not None and "html" in paths:
        paths["html"] = Path(html_path)
    return paths


def _check_formats(formats: Sequence[str]) -> None:
    unknown = [f for f in formats if f not in REPORT_FILES]
    if unknown:
        raise RaikitInputError(f"unknown report format {unknown[0]!r}; known: {', '.join(REPORT_FILES)}",
                               where="report formats")


def write_reports(results: Mapping[str, Any], out_dir: Path, *,
                  formats: Sequence[str] = ("html", "md", "junit", "model_card"),
                  html_path: Path | None = None, overwrite: bool = True) -> list[Path]:
    """Render ``results`` in each format and write the files into ``out_dir``.

    Each file is written to a temporary file in its folder and renamed into place, so a reader never
    sees half a report. Every report is rendered before the first file is written.

    Parameters
    ----------
    results : mapping
        A parsed ``results.json``.
    out_dir : Path
        The folder (created if needed).
    formats : sequence of str
        Any of ``html`` (report.html), ``md`` (summary.md), ``junit`` (junit.xml), ``model_card``
        (model_card.md).
    html_path : Path, optional
        Where the HTML report goes instead of ``out_dir/report.html``.
    overwrite : bool
        When False, an existing target file is an error and nothing is written.

    Returns
    -------
    list of Path
        The files written, in the order of ``formats``.

    Raises
    ------
    RaikitInputError
        For an unknown format name, or an existing file when ``overwrite`` is False (before anything is
        written).
    """
    paths = report_paths(out_dir, formats=formats, html_path=html_path)
    if not overwrite:
        existing = [p for p in paths.values() if p.exists()]
        if existing:
            more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
            raise RaikitInputError(f"already exists{more}; refusing to overwrite", where=str(existing[0]))
    renderers = _renderers()
    texts = [(path, renderers[f](results)) for f, path in paths.items()]
    return [write_text_atomic(path, text) for path, text in texts]
