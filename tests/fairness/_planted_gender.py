"""The planted he/she (or il/elle) causal LM's known answer, shared by the generation tests of every language:
pilots and mechanics are answered with a male word, nurses and nannies with a female one, the neutral reference
with none."""
from __future__ import annotations

MALE_JOBS, FEMALE_JOBS = ["pilot", "mechanic"], ["nurse", "nanny"]


def assert_planted_gender_recovered(m: dict) -> None:
    """Every occupation's answers gendered, polarity +1 (male jobs) / -1 (female jobs), the reference 0, and the
    gap between the groups 2 with an exact permutation p-value of 2 / C(12, 6) = 0.002 (6 instances a group)."""
    for job in MALE_JOBS + FEMALE_JOBS:  # metric names use the English keys in every language
        assert m[f"questions.greedy.gendered.by_occupation.{job}"].value == 1.0
        assert m[f"questions.greedy.polarity.by_occupation.{job}"].value == (1.0 if job in MALE_JOBS else -1.0)
    assert m["questions.greedy.male.by_occupation.pilot"].value == 1.0
    assert m["questions.greedy.female.by_occupation.nurse"].value == 1.0
    assert m["questions.greedy.gendered.reference"].value == 0.0
    assert m["questions.greedy.polarity.reference"].value == 0.0
    assert m["questions.greedy.polarity_vs_reference"].value == 1.0
    gap = m["questions.greedy.polarity.difference"]
    assert gap.value == 2.0 and gap.details["high"] == "male_dominated" and gap.details["low"] == "female_dominated"
    assert gap.details["p_value"] < 0.01 and gap.n == 12
    assert gap.ci95[0] <= gap.value <= gap.ci95[1]
