"""raikit.fairness: bias probes and benchmarks, each registered by name in :data:`SECTIONS`."""
from raikit.fairness._registry import SECTIONS
from raikit.fairness import (  # noqa: F401  (registers)
    aul, bbq, classifier, crows_pairs, fill_mask, generation, honest, seat, stereoset, template_seat, templates,
)

__all__ = ["SECTIONS"]
