"""The raikit CLI: exit codes, one-line errors, nothing left behind on bad input."""
from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from raikit.audits.cli import main


def _run(args, cwd):
    return subprocess.run([sys.executable, "-m", "raikit.audits.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_broken_config_exits_2_with_one_line_per_problem(tmp_path):
    cfg = tmp_path / "broken.toml"
    cfg.write_text('[model]\nid = "builtin:minilm-l6"\n[fairness.seat]\nmax_tests = 3\n[run]\nseed = "zero"\n')
    proc = _run(["audit", str(cfg), "--out", str(tmp_path / "out")], tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert any("broken.toml: [run]: key 'seed' must be integer, got 'zero'" in line for line in lines)
    assert any("[fairness.seat]: unknown key 'max_tests'" in line for line in lines)
    assert all(line.startswith("raikit: error: ") for line in lines)
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_missing_config_and_bad_flag(tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        main(["audit", str(tmp_path / "nope.toml")])
    assert err.value.code == 2
    assert "nope.toml: config file not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as err:
        main(["audit", "--sed", "3"])
    assert err.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_unknown_probe_lists_known_names(tmp_path, capsys):
    cfg = tmp_path / "a.toml"
    cfg.write_text('[model]\nid = "builtin:minilm-l6"\n[fairness.crows]\n')
    with pytest.raises(SystemExit) as err:
        main(["audit", str(cfg), "--out", str(tmp_path / "out")])
    assert err.value.code == 2
    err_text = capsys.readouterr().err
    assert "unknown fairness probe 'crows'" in err_text and "crows_pairs" in err_text
    assert not (tmp_path / "out").exists()


def test_print_default_is_the_shipped_example(capsys):
    assert main(["audit", "--print-default"]) == 0
    text = capsys.readouterr().out
    shipped = (Path(__file__).parents[2] / "examples" / "default.toml").read_text()
    assert text == shipped
    assert tomllib.loads(text)["models"]


def test_models_lists_every_alias(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for alias in ("builtin:smollm2-135m", "builtin:minilm-l6", "builtin:minilm-sentiment"):
        assert alias in out


def test_unloadable_model_names_the_config_table(tmp_path, capsys):
    cfg = tmp_path / "m.toml"
    cfg.write_text(f'[models.lm]\nid = "{tmp_path / "no-model-here"}"\n[fairness.crows_pairs]\nmax_items = 2\n')
    with pytest.raises(SystemExit) as err:
        main(["audit", str(cfg), "--out", str(tmp_path / "out"), "--offline", "--quiet"])
    assert err.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "m.toml: [models.lm]: key 'id'" in lines[0] and "no-model-here" in lines[0]
    assert not (tmp_path / "out").exists()


def test_probes_lists_sections_and_prints_valid_option_tables(capsys):
    from raikit.audits.config import validate_options
    from raikit.audits.runner import available_sections

    assert main(["probes"]) == 0
    listing = capsys.readouterr().out
    assert "[fairness.template_seat]" in listing and "[explain]" in listing
    for name, (table, section) in available_sections().items():
        assert main(["probes", name]) == 0
        parsed = tomllib.loads(capsys.readouterr().out)
        options = parsed
        for part in table.split("."):
            options = options[part]
        assert options.pop("model").startswith("<")
        built, problems = validate_options(options, section.options, where=table)
        assert problems == [] and built == section.options()  # the printed table is the defaults, as TOML
    with pytest.raises(SystemExit) as exit_info:
        main(["probes", "fill_mas"])
    assert exit_info.value.code == 2
    assert "did you mean 'fill_mask'?" in capsys.readouterr().err
