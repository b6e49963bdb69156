"""docs/definitions.md: every section of the HTML report links to its formulas, and every anchor exists."""
from __future__ import annotations

import re
from pathlib import Path

from raikit.reports import render_html
from raikit.reports._html import _DEFINITION_ANCHORS, DEFINITIONS_DOC, definition_link

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "definitions.md"


def test_every_anchor_is_a_heading_of_the_definitions_page():
    text = DOC.read_text(encoding="utf-8")
    anchors = set(re.findall(r'^<a id="([a-z0-9-]+)"></a>$', text, re.M))
    assert set(_DEFINITION_ANCHORS.values()) <= anchors, set(_DEFINITION_ANCHORS.values()) - anchors
    assert "EFFECTS_TABLE" not in text and "STEREOSET_TABLE" not in text  # placeholders filled with measurements
    assert "docs/definitions.md" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_each_metric_section_of_the_report_links_to_its_definition(results):
    html = render_html(results)
    sections = re.findall(r'<article class="card" id="sec-([^"]+)">(.*?)</article>', html, re.S)
    assert sections
    linked = 0
    for key, body in sections:
        target = definition_link(key)
        if key.rsplit(".", 1)[-1] in _DEFINITION_ANCHORS:
            assert f'href="{target}"' in body, key
            linked += 1
    assert linked >= 3
    assert definition_link("fairness.crows_pairs") == f"{DEFINITIONS_DOC}#crows-pairs"
    assert definition_link("explain") == f"{DEFINITIONS_DOC}#explain"
