"""raikit.fairness: bias probes and benchmarks, each a module whose ``SECTION`` is listed in :data:`SECTIONS`."""
from raikit.audits.sections import section_registry
from raikit.fairness import (
    aul, bbq, behaviour, counterfactual, crows_pairs, fill_mask, generation, groups, honest, seat, stereoset,
    template_seat,
)
from raikit.fairness import classifier  # noqa: F401  (the three classifier sections' names, as before)

#: The ``[fairness.<name>]`` probes by name. ``[mitigation]`` is a table of its own: its section is in
#: :mod:`raikit.fairness.mitigation` (see ``raikit.audits.sections.SECTION_MODULES``).
SECTIONS = section_registry("fairness probe", *(m.SECTION for m in (
    aul, bbq, behaviour, counterfactual, crows_pairs, fill_mask, generation, groups, honest, seat, stereoset,
    template_seat)))

__all__ = ["SECTIONS"]
