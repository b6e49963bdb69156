"""In headless Chromium: the findings are in the first screen at desktop and phone widths, and their links work."""
from __future__ import annotations

import pytest
from _chromium import find_chromium
from _report_results import build_results, with_privacy_and_federated

from raikit.reports import write_reports

CHROMIUM = find_chromium()
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(CHROMIUM is None, reason="no Chromium found (install the 'chromium' package "
                                                          "to run the browser tests)")]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("findings")
    write_reports(with_privacy_and_federated(build_results()), out, formats=("html",))
    return out / "report.html"


_FIRST = """(() => { const h = document.querySelector('#findings h2'), li = document.querySelector('#findings li');
  const a = h.getBoundingClientRect(), b = li.getBoundingClientRect();
  return [a.top, b.top, window.innerHeight, getComputedStyle(li).display]; })()"""


@pytest.mark.parametrize(("width", "height", "mobile"), [(1280, 800, False), (390, 844, True)])
def test_findings_heading_and_first_finding_are_in_the_first_screen(browser, report, width, height, mobile):
    browser.open(report, width=width, height=height, mobile=mobile)
    heading_top, first_top, screen, display = browser.evaluate(_FIRST)
    assert 0 <= heading_top < first_top < screen, (heading_top, first_top, screen)
    assert display != "none"


def test_each_finding_links_to_a_section_of_the_page(browser, report):
    browser.open(report)
    targets = browser.evaluate("[...document.querySelectorAll('#findings a')].map(a => a.getAttribute('href'))")
    assert targets
    missing = browser.evaluate(f"{targets!r}.filter(t => !document.getElementById(t.slice(1)))")
    assert missing == []
