"""The HTML report in a real headless Chromium: no request, no console error, not blank, no injected markup."""
from __future__ import annotations

import io

import pytest

from raikit.reports import write_reports

from _chromium import Browser, find_chromium
from _report_results import XSS, build_results, with_privacy_and_federated

CHROMIUM = find_chromium()
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(CHROMIUM is None, reason="no Chromium found (install the 'chromium' package "
                                                          "to run the browser tests)")]


@pytest.fixture(scope="module")
def browser():
    b = Browser(CHROMIUM)
    yield b
    b.close()


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    write_reports(with_privacy_and_federated(build_results()), out, formats=("html",))
    return out / "report.html"


def _pixel_spread(png: bytes) -> tuple[float, int]:
    from PIL import Image, ImageStat

    with Image.open(io.BytesIO(png)) as image:
        grey = image.convert("L")
        return ImageStat.Stat(grey).stddev[0], sum(1 for count in grey.histogram() if count)


def test_renders_without_requests_or_console_errors(browser, report):
    browser.open(report)
    assert browser.problems() == []
    page_url = report.resolve().as_uri()
    assert [u for u in browser.requests() if u != page_url] == []
    headings = browser.evaluate("[...document.querySelectorAll('h2')].map(h => h.textContent)")
    assert headings[:2] == ["Verdict", "Run provenance"]
    assert {"Fairness", "Explanations", "Privacy", "Federated learning", "Compliance mapping",
            "Limitations"} <= set(headings)
    assert browser.evaluate("document.querySelectorAll('figure svg').length") >= 4  # 3 forest plots, ROC, rounds
    stddev, levels = _pixel_spread(browser.screenshot())
    assert stddev > 10 and levels > 20


def test_csp_blocks_a_request_the_page_tries(browser, tmp_path, report):
    """The policy in the page really stops loads: an injected image request is refused, not sent."""
    html = report.read_text(encoding="utf-8").replace(
        "</main>", '<img id="probe" src="http://127.0.0.1:9/x.png" alt=""></main>')
    probe = tmp_path / "probe.html"
    probe.write_text(html, encoding="utf-8")
    browser.open(probe)
    assert "http://127.0.0.1:9/x.png" in browser.requests()  # the page asked...
    assert browser.blocked() == {"http://127.0.0.1:9/x.png": "csp"}  # ...and the policy refused it
    assert not [u for u in browser.responses() if u.startswith("http")]
    assert any("Content Security Policy" in p for p in browser.problems())


def test_untrusted_text_is_text_not_markup(browser, report):
    browser.open(report)
    assert browser.evaluate("document.querySelectorAll('script').length") == 0
    assert browser.evaluate("document.querySelectorAll('img').length") == 0
    assert browser.evaluate("document.querySelectorAll('[onerror]').length") == 0
    text = browser.evaluate("document.body.innerText")
    assert "<script>alert(1)</script>" in text and "<img src=x onerror=alert(1)>" in text
    assert XSS.split("&")[0].strip() in text
    assert browser.evaluate("document.title") == "Audit of <b>demo</b> models"


def test_readable_on_a_phone(browser, report):
    browser.open(report, width=390, height=844, mobile=True)
    # nothing but the scrollable table wrappers may be wider than the screen
    overflow = browser.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1
    stddev, _ = _pixel_spread(browser.screenshot(full_page=False))
    assert stddev > 10
