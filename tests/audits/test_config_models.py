"""Config ergonomics: ``model =`` omitted when one model fits, model lists, every error before any model loads."""
from __future__ import annotations

import pytest

from raikit.audits.config import ConfigError
from raikit.audits.gates import Gate
from raikit.audits.runner import _retrained_gates, load_audit


def _write(tmp_path, text):
    path = tmp_path / "audit.toml"
    path.write_text(text)
    return path


MODELS = """
[models.lm]
id = "builtin:smollm2-135m"
[models.enc]
id = "builtin:minilm-l6"
[models.clf]
id = "builtin:minilm-sentiment"
"""


def test_model_may_be_omitted_when_one_model_has_a_kind_the_section_takes(tmp_path):
    audit = load_audit(_write(tmp_path, MODELS + "[fairness.fill_mask]\n[fairness.groups]\n[explain]\n"))
    assert {p.key: p.table.model for p in audit.plan} == {"fairness.fill_mask": "lm", "fairness.groups": "clf",
                                                          "explain": "clf"}


def test_a_list_of_models_runs_the_table_on_each(tmp_path):
    audit = load_audit(_write(tmp_path, MODELS + '[fairness.template_seat]\nmodel = ["lm", "enc", "clf"]\n'
                                      '[gates]\n"fairness.template_seat.enc.gender_occupation.effect_size" = '
                                      '{ max = 2.0 }\n'))
    assert [p.key for p in audit.plan] == ["fairness.template_seat.lm", "fairness.template_seat.enc",
                                           "fairness.template_seat.clf"]
    assert len(audit.gates) == 1


def test_every_model_error_is_gathered_one_line_each(tmp_path):
    text = (MODELS + '[fairness.template_seat]\n[fairness.fill_mask]\nmodel = ["lm", "nope"]\n'
            '[fairness.behaviour]\nmodel = ["clf", "clf"]\n[fairness.groups]\nmodel = "enc"\n')
    with pytest.raises(ConfigError) as err:
        load_audit(_write(tmp_path, text))
    lines = err.value.problems
    assert len(lines) == 4, lines
    assert any("[fairness.template_seat]" in p and "key 'model' is required" in p and "lm, enc, clf" in p
               and 'model = ["lm", "enc", "clf"]' in p for p in lines)
    assert any("[fairness.fill_mask]" in p and "unknown model 'nope'" in p for p in lines)
    assert any("[fairness.behaviour]" in p and "list of distinct model keys" in p for p in lines)
    assert any("[fairness.groups]" in p and "needs a classifier model" in p for p in lines)


def test_retrained_models_are_gated_by_their_source_models_gates():
    gates = [Gate(metric="fairness.groups.accuracy.difference", max=0.1, use="ci"),
             Gate(metric="fairness.crows_pairs.metric_score", max=60.0)]
    sections = {"fairness.groups": {}, "privacy": {},
                "privacy.dp.fairness.groups": {"reaudit_of": "fairness.groups"},
                "privacy.baseline.fairness.groups": {"reaudit_of": "fairness.groups"}}
    extra = _retrained_gates(gates, sections)
    assert [g.metric for g in extra] == ["privacy.dp.fairness.groups.accuracy.difference",
                                         "privacy.baseline.fairness.groups.accuracy.difference"]
    assert all(g.max == 0.1 and g.use == "ci" for g in extra)


def test_a_config_with_only_models_says_nothing_was_measured(tmp_path):
    from raikit.audits.runner import run_audit

    outcome = run_audit(_write(tmp_path, '[models.a]\nid = "builtin:minilm-l6"\n'), out_dir=tmp_path / "out",
                        progress=False)
    assert outcome.results["metrics"] == {} and outcome.exit_code == 0
    summary = (outcome.out_dir / "summary.md").read_text()
    assert "Nothing was measured" in summary and "No finding" not in summary
    assert "NOTHING MEASURED" in (outcome.out_dir / "report.html").read_text()
