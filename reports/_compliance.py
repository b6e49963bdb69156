"""Tie each piece of evidence in a run to the regulatory clauses it supports, and say how far it goes.

The mapping lives in ``data/compliance.toml``: one ``[[clause]]`` per clause (id, framework, title, what
it needs) with the pieces of evidence it requires (``[[clause.evidence]]``: the sections and metrics that
produce each piece, or another artefact of the run: gates, the dated run log, model hashes). A clause's
status in a run is

* ``"fail"`` when a gate on one of its metrics, or a gate naming the clause, failed;
* ``"not run"`` when none of its evidence was produced (the sections it needs did not run);
* ``"partial"`` when some of its evidence is missing, or it needs a signed and dated report (no run can
  record a signature);
* ``"pass"`` when every piece was produced and no gate on it failed.

A metric whose name merely matches a pattern never makes a clause green on its own.
"""
from __future__ import annotations

import fnmatch
import functools
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

from raikit.reports._findings import findings

__all__ = ["Clause", "ClauseEvidence", "Evidence", "Status", "STATUSES", "clauses", "compliance_mapping",
           "clauses_for_metric"]

_ARTEFACTS = ("gates", "run_log", "models")

Status = Literal["pass", "fail", "partial", "not run"]
#: Every status, best first.
STATUSES: tuple[Status, ...] = ("pass", "partial", "fail", "not run")


@dataclass(frozen=True)
class Evidence:
    """One piece of evidence a clause requires.

    Parameters
    ----------
    what : str
        The piece, in words.
    sections : tuple of str
        Section-key patterns (fnmatch); one of these sections must have run (empty: any section).
    metrics : tuple of str
        Metric-name patterns; one matching metric must have a finite value.
    artefact : str, optional
        ``"gates"``, ``"run_log"`` or ``"models"`` instead of sections and metrics.
    """

    what: str
    sections: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    artefact: str | None = None


@dataclass(frozen=True)
class Clause:
    """One clause of a regulation or framework and the evidence it requires.

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
    evidence : tuple of Evidence
        The pieces of evidence it requires.
    signoff : bool
        Whether it needs a signed and dated test report (then it is at most ``"partial"`` in a run).
    """

    id: str
    framework: str
    title: str
    needs: str
    evidence: tuple[Evidence, ...] = ()
    signoff: bool = False

    @property
    def metrics(self) -> tuple[str, ...]:
        """Every metric-name pattern of the clause's evidence."""
        return tuple(dict.fromkeys(p for e in self.evidence for p in e.metrics))

    @property
    def sections(self) -> tuple[str, ...]:
        """Every section-key pattern of the clause's evidence."""
        return tuple(dict.fromkeys(p for e in self.evidence for p in e.sections))

    def matches(self, metric: str) -> bool:
        """Whether ``metric`` is evidence for this clause."""
        return any(fnmatch.fnmatchcase(metric, p) for p in self.metrics)


@dataclass(frozen=True)
class ClauseEvidence:
    """The evidence one run holds for one clause, and the clause's status.

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
    produced : tuple of str
        The pieces of evidence (``Evidence.what``) the run produced.
    missing : tuple of str
        The pieces it did not produce, each with the sections that would have produced it.
    status : {"pass", "fail", "partial", "not run"}
        See the module docstring.
    reason : str
        One sentence saying why the clause has its status.
    """

    clause: Clause
    metrics: tuple[str, ...]
    gates: tuple[str, ...]
    artefacts: tuple[str, ...]
    produced: tuple[str, ...]
    missing: tuple[str, ...]
    status: Status
    reason: str

    @property
    def badge(self) -> str:
        """A CSS-friendly form of the status (``not-run``)."""
        return self.status.replace(" ", "-")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"clause": self.clause.id, "framework": self.clause.framework, "title": self.clause.title,
                "needs": self.clause.needs, "metrics": list(self.metrics), "gates": list(self.gates),
                "artefacts": list(self.artefacts), "produced": list(self.produced), "missing": list(self.missing),
                "status": self.status, "reason": self.reason}


def _strings(raw: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"compliance.toml: {key!r} must be a list of strings, got {value!r}")
    return tuple(value)


@functools.cache
def clauses() -> tuple[Clause, ...]:
    """The clauses of the shipped mapping ``raikit/reports/data/compliance.toml``, in file order."""
    text = resources.files("raikit.reports").joinpath("data", "compliance.toml").read_text(encoding="utf-8")
    table = tomllib.loads(text)
    out = []
    for raw in table["clause"]:
        pieces = []
        for item in raw.get("evidence", ()):
            artefact = item.get("artefact")
            if artefact is not None and artefact not in _ARTEFACTS:  # a packaging bug, not user input
                raise ValueError(f"compliance.toml: clause {raw['id']!r} has unknown artefact {artefact!r}")
            if artefact is None and not item.get("metrics"):
                raise ValueError(f"compliance.toml: clause {raw['id']!r}: evidence {item.get('what')!r} "
                                 "needs metrics or an artefact")
            pieces.append(Evidence(what=item["what"], sections=_strings(item, "sections"),
                                   metrics=_strings(item, "metrics"), artefact=artefact))
        if not pieces:
            raise ValueError(f"compliance.toml: clause {raw['id']!r} lists no evidence")
        out.append(Clause(id=raw["id"], framework=raw["framework"], title=raw["title"], needs=raw["needs"],
                          evidence=tuple(pieces), signoff=bool(raw.get("signoff", False))))
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


def _artefact(kind: str, results: Mapping[str, Any], gates: list[Mapping[str, Any]]) -> str | None:
    """The artefact of ``kind`` in the run, described in words, or None when the run lacks it."""
    run = results.get("run") or {}
    if kind == "run_log" and run.get("started") and run.get("finished"):
        return (f"dated run log {run.get('id', '')}: {run['started']} to {run['finished']}, "
                f"config sha256 {str(run.get('config_sha256') or '?')[:12]}, seed {run.get('seed')}")
    if kind == "gates" and gates:
        return f"{len(gates)} gate(s) with recorded pass/fail verdicts"
    if kind == "models":
        hashed = [m.get("id", k) for k, m in (results.get("models") or {}).items()
                  if isinstance(m, Mapping) and m.get("weights_sha256")]
        if hashed:
            return f"model weights identified by SHA-256: {', '.join(map(str, hashed))}"
    return None


def _finite(entry: Any) -> bool:
    value = entry.get("value") if isinstance(entry, Mapping) else None
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _evaluate(clause: Clause, results: Mapping[str, Any], metrics: list[str], sections: list[str],
              all_gates: list[Mapping[str, Any]], clear: list[Any]) -> ClauseEvidence:
    supporting = tuple(m for m in metrics if clause.matches(m))
    gates = [g for g in all_gates
             if clause.matches(str(g.get("metric", ""))) or _same_clause(g.get("clause"), clause.id)]
    gate_lines = tuple(f"{'PASS' if g.get('passed') else 'FAIL'} {g.get('message') or g.get('metric')}"
                       for g in gates)
    produced, missing, artefacts = [], [], []
    for piece in clause.evidence:
        if piece.artefact is not None:
            found = _artefact(piece.artefact, results, gates)
            if found:
                artefacts.append(found)
            ok = found is not None
        else:
            ran = not piece.sections or any(fnmatch.fnmatchcase(s, p) for s in sections for p in piece.sections)
            ok = ran and any(fnmatch.fnmatchcase(m, p) for m in metrics for p in piece.metrics)
        if ok:
            produced.append(piece.what)
        else:
            where = f" (needs section {' or '.join(piece.sections)})" if piece.sections else ""
            missing.append(piece.what + where)
    failed = [str(g.get("metric", "?")) for g in gates if not g.get("passed")]
    status: Status
    if failed:
        status, reason = "fail", f"gate(s) failed on {', '.join(dict.fromkeys(failed))}"
    elif not produced or not any(p.artefact is None for p in clause.evidence if p.what in produced):
        status, reason = "not run", f"no evidence produced: {'; '.join(missing)}"
    elif missing:
        status, reason = "partial", f"missing: {'; '.join(missing)}"
    elif clause.signoff:
        status, reason = "partial", ("needs the test report signed and dated by the reviewers (Sign-off); "
                                     "a run cannot record a signature")
    else:
        judged = f"{len(gates)} gate(s) on this evidence passed" if gates else "no gate sets a threshold on it"
        status, reason = "pass", f"all required evidence produced; {judged}"
        gated = {str(g.get("metric")) for g in all_gates}
        unjudged = [f for f in clear if clause.matches(f.metric) and f.metric not in gated]
        if unjudged:  # a green clause must not hide a finding nobody judged
            status = "partial"
            reason += (f"; but {len(unjudged)} finding(s) on this evidence whose 95% CI excludes no bias are judged "
                       "by no gate (see Findings), so it is partial until they are gated")
    return ClauseEvidence(clause=clause, metrics=supporting, gates=gate_lines, artefacts=tuple(artefacts),
                          produced=tuple(produced), missing=tuple(missing), status=status, reason=reason)


def _clear_findings(results: Mapping[str, Any]) -> list[Any]:
    return [f for f in findings(results) if f.clear and f.kind != "gate"]


def compliance_mapping(results: Mapping[str, Any]) -> list[ClauseEvidence]:
    """The status of every clause of the mapping, with the evidence ``results`` holds for it.

    Parameters
    ----------
    results : mapping
        A parsed ``results.json``.

    Returns
    -------
    list of ClauseEvidence
        In the mapping's order.
    """
    metrics = [name for name, entry in (results.get("metrics") or {}).items() if _finite(entry)]
    sections = list((results.get("sections") or {}).keys())
    gates = [g for g in results.get("gates") or [] if isinstance(g, Mapping)]
    clear = _clear_findings(results)
    return [_evaluate(clause, results, metrics, sections, gates, clear) for clause in clauses()]
