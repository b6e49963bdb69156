"""raikit.audits: model adapters, audit config, the run orchestrator, CLI, pytest plugin and gates.

Names are imported lazily so that importing a light submodule (the pytest plugin, the gates) does not
import torch and transformers.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "RaikitError": "raikit.audits.errors",
    "RaikitInputError": "raikit.audits.errors",
    "RunFailedError": "raikit.audits.errors",
    "ModelSpec": "raikit.audits.models",
    "ModelAdapter": "raikit.audits.models",
    "EncoderAdapter": "raikit.audits.models",
    "MaskedLMAdapter": "raikit.audits.models",
    "CausalLMAdapter": "raikit.audits.models",
    "ClassifierAdapter": "raikit.audits.models",
    "load_model": "raikit.audits.models",
    "wrap_model": "raikit.audits.models",
    "Metric": "raikit.audits.results",
    "SectionResult": "raikit.audits.results",
    "run_audit": "raikit.audits.runner",
    "load_audit": "raikit.audits.runner",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'raikit.audits' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
