"""Fixtures of the report tests."""
from __future__ import annotations

from typing import Any

import pytest
from _chromium import Browser, find_chromium
from _report_results import build_results

#: The Chromium the browser tests drive, or None (those tests then skip with :data:`NO_CHROMIUM`).
CHROMIUM = find_chromium()
NO_CHROMIUM = "no Chromium found (install the 'chromium' package to run the browser tests)"


@pytest.fixture
def results() -> dict[str, Any]:
    """A fresh realistic results dict (fairness + explain + gates, one gate failing)."""
    return build_results()


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium per test module."""
    if CHROMIUM is None:
        pytest.skip(NO_CHROMIUM)
    b = Browser(CHROMIUM)
    yield b
    b.close()
