"""Tie each piece of evidence in a run to the regulatory clauses it supports.

The mapping lives in ``data/compliance.toml`` (one ``[[clause]]`` per clause: id, framework, title, what
evidence it needs, metric-name patterns and other artefacts). A clause is *covered* when at least one
metric of the run matches one of its patterns; artefacts (gates, the dated run log, model hashes) are
listed beside the metrics but never cover a clause on their own.
"""
from __future__ import annotations

import fnmatch
import functools
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

__all__ = ["Clause", "ClauseEvidence", "clauses", "compliance_mapping", "clauses_for_metric"]

_ARTEFACTS = ("gates", "run_log", "models")


@dataclass(frozen=True)
class Clause:
    """One clause of a regulation or framework and the run evidence that supports it.

    Parameters
    ----------
    id : str
        E.g. ``"EU AI Act Art. 10(2)(f)-(g)"``.
    framework : str
        ``"EU AI Act"`` or ``"NIST AI RMF"``.
    title : str
        Short title.
    needs : str
        One sentence on the evidence the clause asks for.
    metrics : tuple of str
        Metric-name patterns (fnmatch) whose values are evidence.
    artefacts : tuple of str
        Other evidence: ``"gates"``, ``"run_log"``, ``"models"``.
    """

    id: str
    framework: str
    title: str
    needs: str
    metrics: tuple[str, ...] = ()
    artefacts: tuple[str, ...] = ()

    def matches(self, metric: str) -> bool:
        """Whether ``metric`` is evidence for this clause."""
        return any(fnmatch.fnmatchcase(metric, p) for p in self.metrics)


@dataclass(frozen=True)
class ClauseEvidence:
    """The evidence one run holds for one clause.

    Attributes
    ----------
    clause : Clause
        The clause.
    metrics : tuple of str
        Names of the run's metrics that support it.
    gates : tuple of str
        Messages of the run's gates on those metrics (or naming the clause), each prefixed PASS/FAIL.
    artefacts : tuple of str
        Other evidence present in the run, described in words.
    status : {"covered", "not covered"}
        ``"covered"`` when at least one metric supports the clause.
    """

    clause: Clause
    metrics: tuple[str, ...]
    gates: tuple[str, ...]
    artefacts: tuple[str, ...]
    status: Literal["covered", "not covered"]

    @property
    def covered(self) -> bool:
        """True when the run holds evidence for the clause."""
        return self.status == "covered"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"clause": self.clause.id, "framework": self.clause.framework, "title": self.clause.title,
                "needs": self.clause.needs, "metrics": list(self.metrics), "gates": list(self.gates),
                "artefacts": list(self.artefacts), "status": self.status}


@functools.cache
def clauses() -> tuple[Clause, ...]:
    """The clauses of the shipped mapping ``raikit/reports/data/compliance.toml``, in file order."""
    text = resources.files("raikit.reports").joinpath("data", "compliance.toml").read_text(encoding="utf-8")
    table = tomllib.loads(text)
    out = []
    for raw in table["clause"]:
        unknown = set(raw.get("artefacts", ())) - set(_ARTEFACTS)
        if unknown:  # a packaging bug, not user input
            raise ValueError(f"compliance.toml: clause {raw['id']!r} has unknown artefacts {sorted(unknown)}")
        out.append(Clause(id=raw["id"], framework=raw["framework"], title=raw["title"], needs=raw["needs"],
                          metrics=tuple(raw.get("metrics", ())), artefacts=tuple(raw.get("artefacts", ()))))
    return tuple(out)


def clauses_for_metric(metric: str) -> list[str]:
    """Ids of the clauses a metric supports, e.g. for a gate failure message."""
    return [c.id for c in clauses() if c.matches(metric)]


def _norm(text: str) -> str:
    text = re.sub(r"\b(article|art\.?)", "", text.lower())
    return re.sub(r"[\s.]+", "", text)


def _same_clause(given: Any, clause_id: str) -> bool:
    """Whether a gate's free-text ``clause`` names this clause (``Art. 10(2)(f)`` names ``Art. 10(2)(f)-(g)``)."""
    if not isinstance(given, str) or not given.strip():
        return False
    a, b = _norm(given), _norm(clause_id)
    return b.startswith(a) or a.startswith(b)


def _artefacts(clause: Clause, results: Mapping[str, Any], gate_lines: list[str]) -> list[str]:
    run = results.get("run") or {}
    found = []
    for kind in clause.artefacts:
        if kind == "run_log" and run.get("started") and run.get("finished"):
            found.append(f"dated run log {run.get('id', '')}: {run['started']} to {run['finished']}, "
                         f"config sha256 {str(run.get('config_sha256') or '?')[:12]}, seed {run.get('seed')}")
        elif kind == "gates" and gate_lines:
            found.append(f"{len(gate_lines)} gate(s) with recorded pass/fail verdicts")
        elif kind == "models":
            hashed = [m.get("id", k) for k, m in (results.get("models") or {}).items() if m.get("weights_sha256")]
            if hashed:
                found.append(f"model weights identified by SHA-256: {', '.join(map(str, hashed))}")
    return found


def compliance_mapping(results: Mapping[str, Any]) -> list[ClauseEvidence]:
    """Which clauses the evidence in ``results`` supports, one entry per clause of the mapping.

    Parameters
    ----------
    results : mapping
        A parsed ``results.json``.

    Returns
    -------
    list of ClauseEvidence
        In the mapping's order; clauses without evidence have ``status == "not covered"``.
    """
    metrics = [name for name, entry in (results.get("metrics") or {}).items()
               if isinstance(entry, Mapping) and entry.get("value") is not None]
    gates = [g for g in results.get("gates") or [] if isinstance(g, Mapping)]
    out = []
    for clause in clauses():
        supporting = tuple(m for m in metrics if clause.matches(m))
        gate_lines = [f"{'PASS' if g.get('passed') else 'FAIL'} {g.get('message') or g.get('metric')}"
                      for g in gates
                      if clause.matches(str(g.get("metric", ""))) or _same_clause(g.get("clause"), clause.id)]
        out.append(ClauseEvidence(
            clause=clause, metrics=supporting, gates=tuple(gate_lines),
            artefacts=tuple(_artefacts(clause, results, gate_lines)) if supporting else (),
            status="covered" if supporting else "not covered"))
    return out
