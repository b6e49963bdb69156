"""Every option of every registered section has its own description, its allowed values listed, and the same text
in docs/options.md (issue 28 item 2; issue 22 item 10: `probes federated` documented a runtime that is refused)."""
from __future__ import annotations

from pathlib import Path

import pytest

from raikit.audits.cli import main, options_markdown
from raikit.audits.config import option_docs
from raikit.audits.runner import available_sections

SECTIONS = available_sections()
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(SECTIONS))
def test_every_option_has_a_description_of_its_own(name):
    _, section = SECTIONS[name]
    docs = option_docs(section.options)
    assert docs, name
    missing = [d.name for d in docs if len(d.description.split()) < 3]
    assert not missing, f"[{name}] options without a description of their own: {missing}"
    by_text: dict[str, list[str]] = {}
    for d in docs:
        by_text.setdefault(" ".join(d.description.lower().split()), []).append(d.name)
    shared = [names for names in by_text.values() if len(names) > 1]
    assert not shared, f"[{name}] options sharing one description: {shared}"


def test_probes_lists_the_allowed_values_the_check_accepts(capsys):
    from raikit.audits.training import ACCOUNTANTS, GRAD_SAMPLE_MODES, TRAIN_SCOPES
    from raikit.federated._section import RUNTIMES, STRATEGIES
    from raikit.privacy._section import ATTACKS

    expected = {"privacy": {"accountant": ACCOUNTANTS, "scope": TRAIN_SCOPES, "grad_sample_mode": GRAD_SAMPLE_MODES,
                            "attacks": ATTACKS},
                "federated": {"runtime": RUNTIMES, "strategy": STRATEGIES, "scope": TRAIN_SCOPES,
                              "accountant": ACCOUNTANTS}}
    for name, options in expected.items():
        choices = {d.name: d.choices for d in option_docs(SECTIONS[name][1].options)}
        for key, allowed in options.items():
            assert choices[key] == tuple(allowed), (name, key)
    assert main(["probes", "federated"]) == 0
    out = " ".join(capsys.readouterr().out.split()).replace(" #   ", " ")
    runtime = out.split("# runtime (string):")[1].split('runtime = "simulation"')[0]
    assert 'Allowed: "simulation", "deployment".' in runtime
    assert "(`superlink`)" not in runtime  # read as a third runtime value, which the check refuses


def test_every_section_shows_its_choices_in_probes(capsys):
    for name, (_, section) in SECTIONS.items():
        assert main(["probes", name]) == 0
        out = capsys.readouterr().out
        for d in option_docs(section.options):
            if d.choices:
                assert "Allowed: " + ", ".join(f'"{c}"' for c in d.choices) in " ".join(out.replace("#   ", "").split()), \
                    (name, d.name)


def test_docs_options_md_is_the_generated_text(capsys):
    """docs/options.md says what `raikit probes` says; regenerate it with `raikit probes --markdown > docs/options.md`."""
    assert main(["probes", "--markdown"]) == 0
    printed = capsys.readouterr().out
    assert printed == options_markdown(SECTIONS)
    assert (ROOT / "docs" / "options.md").read_text(encoding="utf-8") == printed, \
        "docs/options.md is stale: run `raikit probes --markdown > docs/options.md`"
    for name, (table, section) in SECTIONS.items():
        assert f"## `[{table}]` ({name})" in printed
        for d in option_docs(section.options):
            assert f"- `{d.name}` (" in printed
