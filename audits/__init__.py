"""raikit.audits: model adapters, audit config, the run orchestrator, CLI, pytest plugin and gates."""
from raikit.audits.errors import RaikitError, RaikitInputError, RunFailedError
from raikit.audits.models import (
    CausalLMAdapter, ClassifierAdapter, EncoderAdapter, MaskedLMAdapter, ModelAdapter, ModelSpec, load_model,
    wrap_model,
)
from raikit.audits.results import Metric, SectionResult

__all__ = [
    "RaikitError", "RaikitInputError", "RunFailedError", "ModelSpec", "ModelAdapter", "EncoderAdapter",
    "MaskedLMAdapter", "CausalLMAdapter", "ClassifierAdapter", "load_model", "wrap_model", "Metric",
    "SectionResult",
]
