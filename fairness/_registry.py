"""The registry of fairness probes; each probe module registers its :class:`Section` here."""
from raikit.audits.registry import Registry
from raikit.audits.sections import Section

SECTIONS: Registry[Section] = Registry("fairness probe")
