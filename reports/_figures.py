"""Figures for the HTML report as inline SVG strings (matplotlib's SVG backend, imported lazily).

Every function returns markup starting at ``<svg`` (no XML prolog, no comments) that can be placed
straight into the page; labels are drawn as paths, so untrusted group names never become markup.
"""
from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from typing import Any

__all__ = ["forest_svg", "roc_svg", "lines_svg", "tradeoff_svg"]

_COMMENT = re.compile(r"<!--.*?-->\s*", re.S)
_BLUE, _RED, _GREY = "#1d4ed8", "#b91c1c", "#6b7280"
#: Label sizes in points (SVG user units): axis text and the smaller legend and point labels.
_FONT_PT, _SMALLEST_PT = 10, 9
#: The smallest label size a reader gets on any screen, in CSS pixels.
MIN_LABEL_PX = 10


def _plain(text: Any) -> str:
    """Text with mathtext switched off (``$`` would otherwise start a formula)."""
    return str(text).replace("$", r"\$")


def _figure(width: float, height: float) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - matplotlib is a dependency
        raise ImportError("raikit's report figures need matplotlib: pip install matplotlib") from exc
    return Figure(figsize=(width, height), dpi=96, layout="constrained")


def _svg(fig: Any, key: str) -> str:
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": f"raikit-{key}", "svg.fonttype": "path", "font.size": _FONT_PT,
                                "legend.fontsize": _SMALLEST_PT}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    text = _COMMENT.sub("", text)
    # CSS (max-width: 100%; height: auto) shrinks the figure on narrow screens, but never so far that its
    # smallest label falls under 10 CSS px: below that width it keeps its size and scrolls inside its box
    head, rest = text.split(">", 1)
    width = re.search(r'width="([0-9.]+)pt"', head)
    floor = f' style="min-width: {math.ceil(float(width[1]) * MIN_LABEL_PX / _SMALLEST_PT)}px"' if width else ""
    return f"{head} role=\"img\" data-smallest-label-pt=\"{_SMALLEST_PT}\"{floor}>{rest}"


def forest_svg(rows: Sequence[tuple[str, float, tuple[float, float] | None]], *, key: str, xlabel: str = "",
               reference: float | None = None) -> str:
    """A forest plot: one row per group, the point value with its 95% CI as a horizontal bar.

    Parameters
    ----------
    rows : sequence of (label, value, ci95 or None)
        Groups top to bottom.
    key : str
        Unique name of the figure within the page (seeds the SVG element ids).
    xlabel : str
        The metric's name.
    reference : float, optional
        A vertical reference line (the ideal value, a threshold).
    """
    n = len(rows)
    fig = _figure(6.4, 0.9 + 0.28 * max(n, 1))
    ax = fig.add_subplot()
    ys = list(range(n))[::-1]
    for y, (_, value, ci) in zip(ys, rows):
        if ci is not None and all(math.isfinite(c) for c in ci):
            ax.plot([ci[0], ci[1]], [y, y], color=_BLUE, linewidth=1.6, solid_capstyle="butt")
            ax.plot([ci[0], ci[0]], [y - 0.15, y + 0.15], color=_BLUE, linewidth=1.2)
            ax.plot([ci[1], ci[1]], [y - 0.15, y + 0.15], color=_BLUE, linewidth=1.2)
        if math.isfinite(value):
            ax.plot([value], [y], marker="s", color=_BLUE, markersize=5)
    if reference is not None:
        ax.axvline(reference, color=_RED, linestyle="--", linewidth=1)
    ax.set_yticks(ys, [_plain(label) for label, _, _ in rows])
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_xlabel(_plain(xlabel))
    ax.grid(axis="x", color="#e5e7eb", linewidth=0.6)
    ax.spines[["top", "right"]].set_visible(False)
    return _svg(fig, key)


def roc_svg(fpr: Sequence[float], tpr: Sequence[float], *, key: str, auc: float | None = None) -> str:
    """The ROC curve of a membership-inference attack, with the chance diagonal."""
    fig = _figure(4.2, 3.8)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color=_GREY, linestyle="--", linewidth=1, label="chance")
    label = "attack" if auc is None else f"attack (AUC {auc:.3f})"
    ax.plot(list(fpr), list(tpr), color=_RED, linewidth=1.6, label=label)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend(loc="lower right", frameon=False)
    ax.set_aspect("equal")
    return _svg(fig, key)


def lines_svg(series: Sequence[tuple[str, Sequence[float], Sequence[float]]], *, key: str, xlabel: str,
              ylabel: str) -> str:
    """Several named lines (e.g. accuracy per federated round, one line per client)."""
    fig = _figure(6.0, 3.4)
    ax = fig.add_subplot()
    for name, xs, ys in series:
        ax.plot(list(xs), list(ys), marker="o", markersize=3, linewidth=1.4, label=_plain(name))
    ax.set_xlabel(_plain(xlabel))
    ax.set_ylabel(_plain(ylabel))
    if 1 < len(series) <= 12:
        ax.legend(frameon=False)
    ax.grid(color="#e5e7eb", linewidth=0.6)
    ax.spines[["top", "right"]].set_visible(False)
    return _svg(fig, key)


def tradeoff_svg(points: Sequence[tuple[str, float, float, tuple[float, float] | None]], *, key: str, xlabel: str,
                 ylabel: str, reference: float | None = None) -> str:
    """Labelled points with vertical 95% CIs: e.g. accuracy against membership-inference AUC per model.

    Parameters
    ----------
    points : sequence of (label, x, y, y_ci95 or None)
        One point per model.
    key : str
        Unique name of the figure within the page.
    xlabel, ylabel : str
        Axis names.
    reference : float, optional
        A vertical reference line (chance AUC 0.5).
    """
    fig = _figure(5.6, 3.6)
    ax = fig.add_subplot()
    for label, x, y, ci in points:
        if not (math.isfinite(x) and math.isfinite(y)):
            continue
        if ci is not None and all(math.isfinite(c) for c in ci):
            ax.plot([x, x], [ci[0], ci[1]], color=_BLUE, linewidth=1.4)
        ax.plot([x], [y], marker="o", color=_BLUE, markersize=5)
        ax.annotate(_plain(label), (x, y), textcoords="offset points", xytext=(6, 4), fontsize=_SMALLEST_PT)
    if reference is not None:
        ax.axvline(reference, color=_GREY, linestyle="--", linewidth=1)
    ax.set_xlabel(_plain(xlabel))
    ax.set_ylabel(_plain(ylabel))
    ax.margins(x=0.25, y=0.15)
    ax.grid(color="#e5e7eb", linewidth=0.6)
    ax.spines[["top", "right"]].set_visible(False)
    return _svg(fig, key)
