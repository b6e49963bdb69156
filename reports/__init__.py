"""Compliance reports from a run's ``results.json``: HTML, Markdown, JUnit XML and a model card.

Reports read plain results dicts (parsed ``results.json``), never models::

    from raikit.reports import load_results, write_reports
    write_reports(load_results("out/run/results.json"), Path("out/run"))
"""
from raikit.reports._compliance import Clause, ClauseEvidence, clauses, clauses_for_metric, compliance_mapping
from raikit.reports._diff import DiffRow, ResultsDiff, diff_results
from raikit.reports._findings import Finding, findings
from raikit.reports._html import CSP, render_html
from raikit.reports._load import load_results, results_schema
from raikit.reports._text import render_junit, render_markdown, render_model_card, render_model_cards
from raikit.reports._write import REPORT_FILES, report_paths, write_reports

__all__ = [
    "CSP", "Clause", "ClauseEvidence", "DiffRow", "Finding", "REPORT_FILES", "ResultsDiff", "clauses",
    "clauses_for_metric", "compliance_mapping", "diff_results", "findings", "load_results", "render_html",
    "render_junit", "render_markdown", "render_model_card", "render_model_cards", "report_paths", "results_schema",
    "write_reports",
]
