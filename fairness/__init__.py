"""raikit.fairness: bias probes and benchmarks, each registered by name in :data:`SECTIONS`."""
from raikit.fairness._registry import SECTIONS
from raikit.fairness import aul, classifier, crows_pairs, fill_mask, honest, seat, stereoset, templates  # noqa: F401  (registers)

__all__ = ["SECTIONS"]
