"""Fixtures of the report tests."""
from __future__ import annotations

from typing import Any

import pytest
from _report_results import build_results


@pytest.fixture
def results() -> dict[str, Any]:
    """A fresh realistic results dict (fairness + explain + gates, one gate failing)."""
    return build_results()
