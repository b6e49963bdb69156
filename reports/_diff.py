"""Compare two runs metric by metric, judging movement against the confidence intervals.

A metric has *moved beyond its CI* when

* both runs give a 95% CI and the two intervals do not overlap, or
* the new point value lies outside the old run's CI (when the old run has one), or
* the old run has no CI and the old point value lies outside the new run's CI.

Without any CI the movement cannot be judged against sampling noise and ``moved_beyond_ci`` is False
(the row still shows the change). A *regression* is a move beyond the CI in the unfavourable direction
(known from a gate on the metric: away from its ``max`` upwards, from its ``min`` downwards; or from the
metric's ``details["better"]``), or a gate that passed in the old run and fails in the new one.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from raikit.reports._load import ci_of, finite

__all__ = ["DiffRow", "ResultsDiff", "diff_results"]

Direction = Literal["up", "down", "same", "added", "removed", "unknown"]


@dataclass(frozen=True)
class DiffRow:
    """One metric in two runs.

    Attributes
    ----------
    metric : str
        Dotted name.
    old_value, new_value : float or None
        Point values (None when absent from that run).
    old_ci, new_ci : tuple of float or None
        95% CIs.
    moved_beyond_ci : bool
        See the module docstring.
    direction : {"up", "down", "same", "added", "removed", "unknown"}
        How the point value moved.
    better : {"higher", "lower"} or None
        Which direction is favourable, where known.
    regression : bool
        Moved beyond the CI in the unfavourable direction, or its gate went from pass to fail.
    gate : str
        ``"pass -> fail"`` style gate change, or ``""``.
    """

    metric: str
    old_value: float | None
    old_ci: tuple[float, float] | None
    new_value: float | None
    new_ci: tuple[float, float] | None
    moved_beyond_ci: bool
    direction: Direction
    better: Literal["higher", "lower"] | None = None
    regression: bool = False
    gate: str = ""

    @property
    def notable(self) -> bool:
        """Moved beyond its CI, a regression, added or removed, or its gate changed state."""
        old_gate, _, new_gate = self.gate.partition(" -> ")
        return (self.moved_beyond_ci or self.regression or self.direction in ("added", "removed")
                or old_gate != new_gate)


@dataclass(frozen=True)
class ResultsDiff:
    """All metrics of two runs side by side."""

    rows: tuple[DiffRow, ...]
    old_id: str = ""
    new_id: str = ""

    @property
    def regressions(self) -> tuple[DiffRow, ...]:
        """Rows that got worse beyond their CI, or whose gate started failing."""
        return tuple(r for r in self.rows if r.regression)

    @property
    def moved(self) -> tuple[DiffRow, ...]:
        """Rows that moved beyond their CI, in either direction."""
        return tuple(r for r in self.rows if r.moved_beyond_ci)

    def to_text(self, *, all_rows: bool = False) -> str:
        """A plain-text table of the rows that moved, moved rows marked ``*`` and regressions ``!``.

        Parameters
        ----------
        all_rows : bool
            List every metric, not only those that moved beyond their CI, appeared, disappeared or
            changed gate state (:attr:`DiffRow.notable`).

        Returns
        -------
        str
            The table and a summary line; "nothing moved" when no row is notable.
        """
        def show(value: float | None, ci: tuple[float, float] | None) -> str:
            if value is None:
                return "-"
            return f"{value:.4g}" + (f" [{ci[0]:.4g}, {ci[1]:.4g}]" if ci else "")

        shown = self.rows if all_rows else tuple(r for r in self.rows if r.notable)
        within = sum(r.direction in ("up", "down") and not r.notable for r in self.rows)
        noise = f", {within} changed within their CI" if within else ""
        if not shown:
            same = "all identical" if not within else f"none beyond its 95% CI{noise}"
            return f"nothing moved: {len(self.rows)} metrics, {same}"
        header = ("", "metric", f"old {self.old_id}".strip(), f"new {self.new_id}".strip(), "direction", "gate")
        body = [("!" if r.regression else "*" if r.moved_beyond_ci else "", r.metric, show(r.old_value, r.old_ci),
                 show(r.new_value, r.new_ci), r.direction, r.gate) for r in shown]
        widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *body]]
        left_out = len(self.rows) - len(shown)
        hidden = f"; {left_out} unchanged or within their CI not listed" if left_out else ""
        lines.append(f"{len(self.rows)} metrics, {len(self.moved)} moved beyond their 95% CI{noise}, "
                     f"{len(self.regressions)} regression(s){hidden}  (* moved beyond CI, ! regression)")
        return "\n".join(lines)


def _outside(x: float, ci: tuple[float, float]) -> bool:
    return x < min(ci) or x > max(ci)


def _moved(old: float, old_ci: tuple[float, float] | None, new: float, new_ci: tuple[float, float] | None) -> bool:
    if old == new:  # an unchanged value has not moved, even where its interval does not contain it
        return False
    if old_ci and new_ci and (max(old_ci) < min(new_ci) or max(new_ci) < min(old_ci)):
        return True
    if old_ci:
        return _outside(new, old_ci)
    if new_ci:
        return _outside(old, new_ci)
    return False


def _better(name: str, entries: list[Mapping[str, Any] | None], gates: list[Mapping[str, Any]]
            ) -> Literal["higher", "lower"] | None:
    for g in gates:
        if g.get("metric") == name:
            if g.get("max") is not None and g.get("min") is None:
                return "lower"
            if g.get("min") is not None and g.get("max") is None:
                return "higher"
    for entry in entries:
        better = ((entry or {}).get("details") or {}).get("better")
        if better in ("higher", "lower"):
            return better
    return None


def _gate_states(results: Mapping[str, Any]) -> dict[str, bool]:
    states: dict[str, bool] = {}
    for g in results.get("gates") or []:
        name = g.get("metric")
        states[name] = states.get(name, True) and bool(g.get("passed"))
    return states


def diff_results(old: Mapping[str, Any], new: Mapping[str, Any]) -> ResultsDiff:
    """Compare the metrics of two results dicts.

    Parameters
    ----------
    old, new : mapping
        Parsed ``results.json`` files (the baseline first).

    Returns
    -------
    ResultsDiff
        One row per metric in either run, sorted by name.
    """
    old_m, new_m = old.get("metrics") or {}, new.get("metrics") or {}
    gates = list(new.get("gates") or []) + list(old.get("gates") or [])
    old_g, new_g = _gate_states(old), _gate_states(new)
    rows = []
    for name in sorted(set(old_m) | set(new_m)):
        a, b = old_m.get(name), new_m.get(name)
        va, vb = finite((a or {}).get("value")), finite((b or {}).get("value"))
        ca, cb = ci_of(a), ci_of(b)
        better = _better(name, [b, a], gates)
        moved = False
        if va is None and vb is None:
            direction: Direction = "unknown"
        elif va is None:
            direction = "added"
        elif vb is None:
            direction = "removed"
        else:
            direction = "up" if vb > va else "down" if vb < va else "same"
            moved = _moved(va, ca, vb, cb)
        worse = (better == "higher" and direction == "down") or (better == "lower" and direction == "up")
        gate = ""
        if name in old_g or name in new_g:
            show = {True: "pass", False: "fail", None: "none"}
            gate = f"{show[old_g.get(name)]} -> {show[new_g.get(name)]}"
        gate_broke = old_g.get(name) is True and new_g.get(name) is False
        rows.append(DiffRow(metric=name, old_value=va, old_ci=ca, new_value=vb, new_ci=cb, moved_beyond_ci=moved,
                            direction=direction, better=better, regression=(moved and worse) or gate_broke,
                            gate=gate))
    return ResultsDiff(rows=tuple(rows), old_id=str((old.get("run") or {}).get("id", "")),
                       new_id=str((new.get("run") or {}).get("id", "")))
