"""Config validation: every problem at once, each naming file, table, key and value."""
from __future__ import annotations

from pathlib import Path

import pytest

from raikit.audits.config import ConfigError, RunOptions, parse_config, read_config, validate_options


def _parse(text: str, tmp_path: Path):
    path = tmp_path / "audit.toml"
    path.write_text(text)
    raw, sha = read_config(path)
    return parse_config(raw, source=str(path), sha256=sha, base_dir=tmp_path)


def test_minimal_config(tmp_path):
    cfg = _parse('[model]\nid = "builtin:minilm-l6"\n[fairness.seat]\n', tmp_path)
    assert list(cfg.models) == ["model"] and cfg.sections[0].model == "model"
    assert cfg.sections[0].prefix == "fairness.seat" and cfg.run.seed == 0


def test_named_models_and_probe_key(tmp_path):
    cfg = _parse('[models.a]\nid = "x"\n[models.b]\nid = "y"\n'
                 '[fairness.fm_a]\nprobe = "fill_mask"\nmodel = "a"\n', tmp_path)
    assert set(cfg.models) == {"a", "b"}
    assert cfg.sections[0].probe == "fill_mask" and cfg.sections[0].name == "fm_a"


def test_every_problem_is_reported(tmp_path):
    with pytest.raises(ConfigError) as err:
        _parse('[run]\nsede = 1\ndevice = "gpu"\n[model]\nid = 3\nbatch_size = "big"\n[fairnes.x]\n'
               '[report]\nformats = ["pdf"]\n', tmp_path)
    problems = err.value.problems
    text = "\n".join(problems)
    assert "unknown key 'sede' (did you mean 'seed'?)" in text
    assert "[run]: key 'device'" in text and "'gpu'" in text
    assert "[model]: key 'id' must be string, got 3" in text
    assert "key 'batch_size' must be integer" in text
    assert "unknown table [fairnes] (did you mean [fairness]?)" in text
    assert "unknown format 'pdf'" in text
    assert all("audit.toml" in p and "\n" not in p for p in problems)


def test_several_models_need_a_model_key(tmp_path):
    from raikit.audits.runner import load_audit

    # the kind of a hub model is not known before loading: the table must name its model (or the model its kind)
    (tmp_path / "two.toml").write_text('[models.a]\nid = "x/x"\n[models.b]\nid = "y/y"\n[fairness.seat]\n')
    with pytest.raises(ConfigError, match="key 'model' is required: the kind of model"):
        load_audit(tmp_path / "two.toml")
    with pytest.raises(ConfigError, match="unknown model 'c'"):
        _parse('[models.a]\nid = "x"\n[fairness.seat]\nmodel = "c"\n', tmp_path)


def test_bad_toml_is_one_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[model\nid=")
    with pytest.raises(Exception) as err:
        read_config(path)
    assert "bad.toml" in str(err.value) and "not valid TOML" in str(err.value)


def test_validate_options_types():
    opts, problems = validate_options({"seed": 3, "offline": True}, RunOptions, where="f: [run]")
    assert problems == [] and opts.seed == 3
    opts, problems = validate_options({"seed": True}, RunOptions, where="f: [run]")
    assert opts is None and problems == ["f: [run]: key 'seed' must be integer, got True"]
