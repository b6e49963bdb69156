"""raikit.fairness: bias probes and benchmarks, each registered by name in :data:`SECTIONS`."""
from raikit.fairness._registry import SECTIONS
from raikit.fairness import (  # noqa: F401  (each section module registers its Section on import)
    aul, bbq, behaviour, counterfactual, crows_pairs, fill_mask, generation, groups, honest, seat, stereoset,
    template_seat, templates,
)
from raikit.fairness import classifier  # noqa: F401  (the three classifier sections' names, as before)

__all__ = ["SECTIONS"]
