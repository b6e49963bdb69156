"""Write the report files of a run atomically."""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from raikit.audits.errors import RaikitInputError
from raikit.audits.io import write_text_atomic

__all__ = ["write_reports", "report_paths", "REPORT_FILES"]


def _renderers() -> dict[str, Callable[[Mapping[str, Any]], str]]:
    from raikit.reports._html import render_html
    from raikit.reports._text import render_junit, render_markdown

    return {"html": render_html, "md": render_markdown, "junit": render_junit}


#: Format name -> file name written by :func:`write_reports`; ``model_cards`` is a folder holding one
#: Hugging Face model card per audited model, ``model_cards/<model key>/README.md``.
REPORT_FILES = {"html": "report.html", "md": "summary.md", "junit": "junit.xml", "model_card": "model_cards"}


def _card_folder(key: str) -> str:
    """A model key as one safe folder name (``privacy.dp`` stays, ``a/b`` becomes ``a_b``)."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", key)
    return name if name.strip(".") else "_" + name


def _texts(results: Mapping[str, Any], fmt: str, path: Path) -> list[tuple[Path, str]]:
    """The files one format writes: one, or one model card per audited model under ``path``."""
    if fmt == "model_card":
        from raikit.reports._text import render_model_cards

        return [(path / _card_folder(key) / "README.md", text) for key, text in render_model_cards(results).items()]
    return [(path, _renderers()[fmt](results))]


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
        (``model_cards/<model key>/README.md``, one Hugging Face model card per audited model).
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
    texts = [item for f, path in paths.items() for item in _texts(results, f, path)]
    return [write_text_atomic(path, text) for path, text in texts]
