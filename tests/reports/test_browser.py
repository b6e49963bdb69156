"""The HTML report in a real headless Chromium: no request, no console error, not blank, no injected markup."""
from __future__ import annotations

import collections
import io

import pytest

from raikit.reports import write_reports
from raikit.reports._html import _SCRIPT
from raikit.reports._view import fmt

from _chromium import find_chromium
from _report_results import XSS, build_results, with_privacy_and_federated

CHROMIUM = find_chromium()
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(CHROMIUM is None, reason="no Chromium found (install the 'chromium' package "
                                                          "to run the browser tests)")]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    results = with_privacy_and_federated(build_results())
    # a wide table of long dotted names and many numbers, as the re-audit of a retrained model writes
    results["sections"]["privacy.dp"]["details"]["reaudit"] = [
        {"metric": f"fairness.counterfactual.by_pair.religion_christian_to_jewish_{i}.mean_abs_delta",
         **{f"{model} {bound}".strip(): 0.0078751 + i for model in ("original", "baseline", "dp")
            for bound in ("", "low", "high")}, "moved": bool(i % 2)} for i in range(12)]
    write_reports(results, out, formats=("html",))
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
    assert [h for h in headings if h != "Findings"][:2] == ["Verdict", "Run provenance"]
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
    # the one script is ours (allowed by its hash): no injected script element, no external one
    assert browser.evaluate("document.querySelectorAll('script').length") == 1
    assert browser.evaluate("document.querySelectorAll('script[src]').length") == 0
    assert browser.evaluate("document.querySelector('script').textContent") == _SCRIPT
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


# Every element outside a scrolling box (the box itself included) that reaches past the viewport.
_TOO_WIDE = """(() => { const bad = [];
  for (const el of document.querySelectorAll('body *')) {
    if (el.parentElement.closest('.scroll')) continue;  // scrolls inside its own box
    const r = el.getBoundingClientRect();
    if (r.width && r.right > document.documentElement.clientWidth + 1)
      bad.push(el.tagName + '.' + el.getAttribute('class'));
  }
  return bad; })()"""
# Every visible text node whose computed font size is under 10 CSS px.
_TINY_TEXT = """(() => { const bad = [];
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walk.nextNode()) {
    const node = walk.currentNode, el = node.parentElement;
    if (!node.textContent.trim() || el.closest('script, style') || !el.getClientRects().length) continue;
    const size = parseFloat(getComputedStyle(el).fontSize);
    if (size < 10) bad.push(size + 'px: ' + node.textContent.trim().slice(0, 30));
  }
  return bad; })()"""
# The smallest label of each chart in CSS px: its size in SVG units times the rendered scale of the viewBox.
_CHART_LABEL_PX = """[...document.querySelectorAll('svg[data-smallest-label-pt]')].map(s =>
  s.getAttribute('data-smallest-label-pt') * s.getBoundingClientRect().width / s.viewBox.baseVal.width)"""
# Lines each dotted name takes: a name that breaks only at its dots takes at most one line per part.
_NAME_LINES = """[...document.querySelectorAll('code.name')].filter(c => c.getClientRects().length).map(c => {
  const probe = document.createElement('code'); probe.className = 'name'; probe.textContent = 'x';
  c.parentElement.appendChild(probe); const line = probe.getBoundingClientRect().height; probe.remove();
  return [c.textContent, c.textContent.split('.').length, Math.round(c.getBoundingClientRect().height / line)]; })"""


@pytest.mark.parametrize("width,height,mobile", [(1280, 900, False), (390, 844, True)])
def test_fits_the_screen_with_readable_text(browser, report, width, height, mobile):
    browser.open(report, width=width, height=height, mobile=mobile)
    assert browser.evaluate(_TOO_WIDE) == []
    assert browser.evaluate(_TINY_TEXT) == []
    labels = browser.evaluate(_CHART_LABEL_PX)
    assert len(labels) >= 4 and min(labels) >= 10 - 1e-6
    names = browser.evaluate(_NAME_LINES)
    assert len(names) > 20
    assert [(name, lines) for name, parts, lines in names if lines > parts] == []
    # the findings section (when the report has one) is on the first screen
    top = browser.evaluate("document.getElementById('findings')?.getBoundingClientRect().top ?? null")
    if top is not None:
        assert top < height


def test_tables_sort_and_filter(browser, report):
    browser.open(report)
    table = "document.getElementById('m-fairness-1')"
    assert browser.evaluate(f"{table}.querySelector('thead th:nth-child(2)').getAttribute('aria-sort')") == "none"
    values = f"[...{table}.tBodies[0].rows].map(r => parseFloat(r.cells[1].textContent))"
    before = browser.evaluate(values)
    browser.evaluate(f"{table}.querySelector('thead th:nth-child(2) button').click()")
    assert browser.evaluate(values) == sorted(before)
    browser.evaluate(f"{table}.querySelector('thead th:nth-child(2) button').click()")
    assert browser.evaluate(values) == sorted(before, reverse=True)
    shown = f"[...{table}.tBodies[0].rows].filter(r => !r.hidden).map(r => r.cells[0].dataset.sort)"
    browser.evaluate("(() => { const i = document.querySelector('input.filter[data-table=m-fairness-1]');"
                     " i.value = 'by_bias_type race'; i.dispatchEvent(new Event('input')); })()")
    assert browser.evaluate(shown) == ["by_bias_type.race"]
    assert browser.evaluate("document.getElementById('m-fairness-1-count').textContent") == (
        f"1 of {len(before)} shown")
    assert browser.problems() == []


def _pdf_pages(browser, report):
    """Print the report as Chromium does (A4 from the page's own @page rule); text and x-extent of each page."""
    import base64

    pypdf = pytest.importorskip("pypdf")
    browser.open(report)
    data = base64.b64decode(browser.call("Page.printToPDF", session=True, preferCSSPageSize=True,
                                         printBackground=True)["data"])
    pages = []
    for page in pypdf.PdfReader(io.BytesIO(data)).pages:
        xs: list[float] = []
        sizes: collections.Counter[float] = collections.Counter()

        def visit(text, cm, tm, font, size, xs=xs, sizes=sizes):
            if text.strip():
                xs.append(tm[4] * cm[0] + tm[5] * cm[2] + cm[4])
                sizes[round(size * tm[0] * cm[0], 1)] += len(text)  # the size on paper, in points

        text = page.extract_text(visitor_text=visit)
        pages.append((text, max(xs, default=0.0), float(page.mediabox.width), sizes))
    return pages


def test_print_shows_everything(browser, report):
    pages = _pdf_pages(browser, report)
    assert len(pages) >= 3
    # nothing starts past the right edge of the paper, and nothing made Chromium shrink the pages to fit
    # (it scales a page down when content is wider than the paper): body text prints at its 10 pt
    assert [(i, x, w) for i, (_, x, w, _) in enumerate(pages) if x > w] == []
    sizes = sum((s for *_, s in pages), collections.Counter())
    assert sum(n for size, n in sizes.items() if abs(size - 10.0) <= 0.2) > 0.1 * sum(sizes.values())
    # running header: the run id and "page n of m" on every page
    for i, (text, *_) in enumerate(pages, 1):
        assert "20260101-120000-abcdef12" in text and f"page {i} of {len(pages)}" in text
    squeezed = "".join("".join(text.split()) for text, *_ in pages)
    # every <details> content is there: package versions, the attention maps, the other details JSON
    for expected in ("transformers", "5.23.0", "last-layerattention", "attentionrollout", '"nested":'):
        assert expected in squeezed
    # per-word scores are printed as text beside the words
    assert "Terrible0.45" in squeezed
    # the right-most column of every table is on the paper: the gates' clause, the models' weights hash, and
    # every row of the wide re-audit table whole (name, nine numbers, "moved")
    assert "EUAIActArt.10(2)(f)" in squeezed and "ef" * 32 in squeezed
    for i in range(12):
        row = f"christian_to_jewish_{i}.mean_abs_delta" + fmt(0.0078751 + i) * 9 + str(bool(i % 2))
        assert row in squeezed, row


def test_print_layout_fits_the_paper(browser, report):
    """In print media at the A4 text width (186 mm = 703 px), no element reaches past the right margin."""
    browser.open(report, width=703, height=1000)
    browser.call("Emulation.setEmulatedMedia", session=True, media="print")
    try:
        assert browser.evaluate(_TOO_WIDE.replace("if (el.parentElement.closest('.scroll')) continue;", "")) == []
        closed = browser.evaluate("[...document.querySelectorAll('details')].filter(d => "
                                  "!d.lastElementChild.getClientRects().length).length")
        assert closed == 0
    finally:
        browser.call("Emulation.setEmulatedMedia", session=True, media="")


def test_details_open_for_print_and_close_after(browser, report):
    browser.open(report)
    count = "[...document.querySelectorAll('details')].filter(d => d.open).length"
    total = browser.evaluate("document.querySelectorAll('details').length")
    assert total >= 3 and browser.evaluate(count) == 0
    browser.evaluate("window.dispatchEvent(new Event('beforeprint'))")
    assert browser.evaluate(count) == total
    browser.evaluate("window.dispatchEvent(new Event('afterprint'))")
    assert browser.evaluate(count) == 0
