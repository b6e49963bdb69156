"""pyproject's lower bounds cover the library features the code uses (issue 11, item 15).

Each entry says which call needs which release; the test reads the floor declared in pyproject.toml and
scans the sources for the call, so a floor that is too low (or a new use of a newer feature) fails here
rather than on a user's machine with an old scipy.
"""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [p for area in ("audits", "fairness", "explain", "privacy", "federated", "reports")
           for p in (ROOT / area).rglob("*.py")]

# (distribution, minimum release, what needs it, regex that finds a use in the sources)
FEATURES = [
    ("scipy", "1.15", "scipy.stats.bootstrap(..., rng=...)", r"bootstrap\((?:[^()]|\([^()]*\))*\brng\s*="),
    ("scipy", "1.9", "scipy.stats.permutation_test", r"permutation_test\("),
    ("scipy", "1.7", "scipy.stats.binomtest(...).proportion_ci", r"binomtest\("),
]


def _floor(name: str) -> Version:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in deps:
        m = re.match(rf"{re.escape(name)}(\[[^\]]*\])?\s*>=\s*([0-9.]+)", dep)
        if m:
            return Version(m.group(2))
    raise AssertionError(f"{name} has no >= floor in pyproject.toml")


@pytest.mark.parametrize(("name", "minimum", "what", "pattern"), FEATURES, ids=[f[2] for f in FEATURES])
def test_declared_floor_covers_used_features(name, minimum, what, pattern):
    used = [p.relative_to(ROOT) for p in SOURCES if re.search(pattern, p.read_text(encoding="utf-8"), re.S)]
    if not used:
        pytest.skip(f"{what} is not used")
    assert _floor(name) >= Version(minimum), f"{what} (used in {used[0]}) needs {name}>={minimum}"
