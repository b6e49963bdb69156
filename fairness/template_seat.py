"""Templated embedding association: SEAT tests built from raikit's templates and lexicons.

SEAT (May et al. 2019) turns WEAT's word sets into sentences by putting each word into
"semantically bleached" templates ("This is {word}.") and compares sentence embeddings. This probe
does the same with any lexicons: a test names a *target* lexicon and an *attribute* lexicon (two groups
of each, e.g. ``person: male / female`` and ``occupation: male_dominated / female_dominated``); every
template whose one slot is that lexicon (``{person}``, ``{a:occupation}``) is filled with every word
of the group, giving the four sentence sets X, Y, A and B of a WEAT.

The numbers are those of :func:`raikit.fairness.seat.weat` (effect size over sentences, as SEAT),
with the sentences' words as clusters: the 95% bootstrap interval resamples words, each with all its
sentences, and the one-sided permutation p-value splits the target words (not sentences) between X
and Y, so templates do not pass for independent evidence. Positive effect size: X is closer to A and
Y to B. It runs on every model kind (sentence embeddings are mean-pooled hidden states), which gives
encoders such as MiniLM a templated probe.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from raikit.audits.errors import RaikitInputError
from raikit.audits.results import SectionResult
from raikit.audits.sections import RunContext, Section
from raikit.fairness.seat import ASSOCIATION_RULE, SeatResult, SeatTest, seat
from raikit.fairness.templates import Lexicon, Template, expand, load_configured, pick_two_groups

__all__ = ["SECTION", "TemplateTest", "TemplateSeatOptions", "build_seat_tests", "template_seat", "CITATION"]

CITATION = ("May, C., Wang, A., Bordia, S., Bowman, S. R., Rudinger, R. (2019). On Measuring Social Biases in "
            "Sentence Encoders. NAACL 2019. Ribeiro, M. T., Wu, T., Guestrin, C., Singh, S. (2020). Beyond "
            "Accuracy: Behavioral Testing of NLP Models with CheckList. ACL 2020.")
_TEST_KEYS = ("targets", "attributes", "target_groups", "attribute_groups")


@dataclass(frozen=True)
class TemplateTest:
    """One templated association test.

    Attributes
    ----------
    name : str
        The test name (metric prefix).
    targets, attributes : str
        Lexicon names of the target words (X, Y) and of the attribute words (A, B).
    target_groups, attribute_groups : tuple of str
        The two groups of each lexicon to compare; empty means its first two groups.
    """

    name: str
    targets: str
    attributes: str
    target_groups: tuple[str, ...] = ()
    attribute_groups: tuple[str, ...] = ()


def _templates_for(lexicon: str, templates: Sequence[Template]) -> list[Template]:
    """Single-slot templates (no ``{mask}``, no perturbed text) whose slot is ``{lexicon}`` or ``{lexicon<n>}``."""
    def fits(slot: str) -> bool:
        return slot == lexicon or (slot.rstrip("0123456789") == lexicon and slot != slot.rstrip("0123456789"))

    return [t for t in templates
            if len(t.slots) == 1 and fits(t.slots[0]) and not t.has_mask and t.perturbed is None]


def build_seat_tests(tests: Sequence[TemplateTest], *, templates: Sequence[Template],
                     lexicons: Mapping[str, Lexicon]) -> list[SeatTest]:
    """Expand each test's templates over its lexicons into a SEAT test whose clusters are the words.

    Raises
    ------
    RaikitInputError
        For an unknown lexicon or group, or a lexicon no template has a slot for.
    """
    out = []
    for test in tests:
        examples: dict[str, tuple[str, ...]] = {}
        clusters: dict[str, tuple[str, ...]] = {}
        categories: dict[str, str] = {}
        for role, name, chosen, keys in (("target", test.targets, test.target_groups, ("targ1", "targ2")),
                                         ("attribute", test.attributes, test.attribute_groups, ("attr1", "attr2"))):
            if name not in lexicons:
                raise RaikitInputError(f"template_seat test {test.name!r}: no lexicon {name!r}; known: "
                                       f"{', '.join(sorted(lexicons))}")
            lexicon = lexicons[name]
            tpls = _templates_for(name, templates)
            if not tpls:
                raise RaikitInputError(f"template_seat test {test.name!r}: no template has the single slot "
                                       f"{{{name}}} (write one such as \"This is {{{name}}}.\")")
            # each template expanded on its own, its slot column renamed, so {occupation} and {occupation2}
            # templates line up
            frame = pd.concat([expand([t], {name: lexicon}).rename(columns={t.slots[0]: "word",
                                                                          f"{t.slots[0]}_group": "group"})
                               for t in tpls], ignore_index=True)
            for key, group in zip(keys, pick_two_groups(lexicon, chosen, key=f"{role}_groups",
                                                              context=f"template_seat test {test.name!r}: ")):
                rows = frame[frame["group"] == group]
                order = {w: i for i, w in enumerate(lexicon.groups[group])}
                rows = rows.sort_values("word", key=lambda col: col.map(order), kind="stable")  # word by word
                examples[key] = tuple(rows["text"])
                clusters[key] = tuple(rows["word"])
                categories[key] = f"{name}:{group}"
        out.append(SeatTest(name=test.name, categories=categories, examples=examples, clusters=clusters))
    return out


def template_seat(adapter: Any, *, tests: Sequence[TemplateTest], templates: Sequence[Template],
                  lexicons: Mapping[str, Lexicon], layer: int = -1, n_samples: int = 100_000,
                  n_bootstrap: int = 1000, seed: int = 0) -> SeatResult:
    """Run templated association tests on the model's sentence embeddings.

    Parameters
    ----------
    adapter : ModelAdapter
        Any kind; ``adapter.embed`` gives the embeddings.
    tests : sequence of TemplateTest
    templates : sequence of Template
        Single-slot templates; a test on lexicon ``L`` uses those whose slot is ``{L}``.
    lexicons : mapping of str to Lexicon
    layer, n_samples, n_bootstrap, seed
        As in :func:`raikit.fairness.seat.seat`.

    Returns
    -------
    SeatResult
        With the words as clusters; its ``items`` table has every target sentence's association.
    """
    built = build_seat_tests(tests, templates=templates, lexicons=lexicons)
    return seat(adapter, built, layer=layer, n_samples=n_samples, n_bootstrap=n_bootstrap, seed=seed)


def _default_tests() -> dict[str, dict[str, Any]]:
    return {
        "gender_occupation": {"targets": "person", "attributes": "occupation"},
        "names_occupation": {"targets": "first_name", "attributes": "occupation"},
        "disability_valence": {"targets": "disability", "attributes": "valence",
                               "target_groups": ["nondisabled", "disabled"]},
        "age_valence": {"targets": "age", "attributes": "valence", "target_groups": ["young", "old"]},
    }


@dataclass(frozen=True)
class TemplateSeatOptions:
    """Options of ``[fairness.template_seat]``.

    Attributes
    ----------
    templates : str
        Single-slot template file; ``builtin:templates/seat.toml`` covers raikit's starter lexicons.
    lexicons : list of str
        Lexicon files holding every lexicon the tests name.
    tests : dict of str to dict
        Test name -> ``{targets = "<lexicon>", attributes = "<lexicon>"}`` with optional
        ``target_groups`` / ``attribute_groups`` (two group names each; default the first two).
    layer : int
        Hidden layer to mean-pool.
    n_samples : int
        Permutation partitions of the p-value's test: exact when the test has no more than this many,
        else this many random ones.
    n_bootstrap : int
        Bootstrap resamples of each effect size's 95% confidence interval.
    """

    templates: str = "builtin:templates/seat.toml"
    lexicons: list[str] = field(default_factory=lambda: [
        "builtin:lexicons/gender.toml", "builtin:lexicons/occupations.toml", "builtin:lexicons/valence.toml",
        "builtin:lexicons/disability.toml", "builtin:lexicons/age.toml"])
    tests: dict[str, dict[str, Any]] = field(default_factory=_default_tests)
    layer: int = -1
    n_samples: int = 100_000
    n_bootstrap: int = 1000

    def __post_init__(self) -> None:
        if not self.tests:
            raise ValueError("key 'tests' is empty; name at least one test")
        for name, spec in self.tests.items():
            if not isinstance(spec, dict):
                raise ValueError(f"tests.{name} must be a table {{targets = ..., attributes = ...}}, got {spec!r}")
            unknown = sorted(set(spec) - set(_TEST_KEYS))
            if unknown:
                raise ValueError(f"tests.{name}: unknown key {unknown[0]!r}; allowed: {', '.join(_TEST_KEYS)}")
            for key in ("targets", "attributes"):
                if not isinstance(spec.get(key), str) or not spec[key]:
                    raise ValueError(f"tests.{name}: key {key!r} must name a lexicon, got {spec.get(key)!r}")
            for key in ("target_groups", "attribute_groups"):
                value = spec.get(key, [])
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise ValueError(f"tests.{name}: key {key!r} must be a list of two group names, got {value!r}")

    def template_tests(self) -> list[TemplateTest]:
        """The tests as :class:`TemplateTest` objects."""
        return [TemplateTest(name=name, targets=spec["targets"], attributes=spec["attributes"],
                             target_groups=tuple(spec.get("target_groups", ())),
                             attribute_groups=tuple(spec.get("attribute_groups", ())))
                for name, spec in self.tests.items()]


def _check(options: TemplateSeatOptions, ctx: RunContext) -> None:
    templates, lexicons = load_configured(options.templates, options.lexicons, ctx,
                                           section="template_seat")
    build_seat_tests(options.template_tests(), templates=templates, lexicons=lexicons)


def _run(adapter: Any, options: TemplateSeatOptions, ctx: RunContext) -> SectionResult:
    templates, lexicons = load_configured(options.templates, options.lexicons, ctx,
                                           section="template_seat")
    result = template_seat(adapter, tests=options.template_tests(), templates=templates, lexicons=lexicons,
                           layer=options.layer, n_samples=options.n_samples, n_bootstrap=options.n_bootstrap,
                           seed=ctx.seed)
    return result.to_section()


SECTION = Section(
    name="template_seat", options=TemplateSeatOptions,
    model_kinds=("masked_lm", "causal_lm", "encoder", "classifier"), run=_run,
    description="Templated SEAT: embedding association of lexicon groups filled into bleached templates",
    citation=CITATION, metrics=("*.effect_size", "*.p_value"), check=_check,
    meanings=(("*.effect_size", "Association effect size, {}",
               "Cohen's d of lexicon groups filled into bleached templates; 0 is none, |d| > 0.8 is large."),
              ("*.p_value", "Permutation p-value, {}",
               "Chance of an association at least this strong if the group words were shuffled.")),
    rules=(ASSOCIATION_RULE,),
)
