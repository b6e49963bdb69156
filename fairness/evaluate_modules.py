"""Locate raikit's local ``evaluate`` metric modules (CrowS-Pairs, StereoSet, AUL, ...).

Each benchmark's pure scoring function is also published as a Hugging Face ``evaluate`` module, a
script in ``raikit/fairness/data/evaluate/<name>.py``. ``evaluate.load`` takes its path and works
offline (no hub access):

>>> import evaluate
>>> metric = evaluate.load(module_path("crows_pairs"))                      # doctest: +SKIP
>>> metric.compute(score_more=[-3.0], score_less=[-4.0], directions=["stereo"],
...                bias_types=["gender"])["metric_score"]                    # doctest: +SKIP
100.0
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from raikit.audits.errors import RaikitInputError

__all__ = ["MODULE_DIR", "available_modules", "load_module", "module_path"]

MODULE_DIR = Path(__file__).resolve().parent / "data" / "evaluate"


def available_modules() -> list[str]:
    """Names of the ``evaluate`` modules shipped with raikit, sorted."""
    return sorted(p.stem for p in MODULE_DIR.glob("*.py") if not p.name.startswith("_"))


def module_path(name: str) -> str:
    """Path of the ``evaluate`` module script ``name`` (for ``evaluate.load``).

    Raises
    ------
    RaikitInputError
        If there is no such module; the message lists the known ones.
    """
    path = MODULE_DIR / f"{name}.py"
    if name.startswith("_") or "/" in name or "\\" in name or not path.is_file():
        raise RaikitInputError(f"unknown evaluate module {name!r}; known: {', '.join(available_modules()) or 'none'}")
    return str(path)


def load_module(name: str, **kwargs: Any) -> Any:
    """``evaluate.load(module_path(name), **kwargs)``: the module as an ``evaluate.EvaluationModule``."""
    import evaluate

    return evaluate.load(module_path(name), **kwargs)
