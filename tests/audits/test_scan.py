"""raikit scan: kind detection, sections chosen by kind and data, budget sizing, gates and the pytest file.

Tiny models of all four kinds are saved as folders; ``$RAIKIT_DATA`` points at an empty folder so that which
sections need a data set (and are skipped with their fetch command) does not depend on the machine.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fairness"))

import tiny  # noqa: E402
import _probe_models  # noqa: E402

from raikit.audits.errors import RaikitInputError  # noqa: E402
from raikit.audits.scan import ScanOptions, detect_positive_label, parse_budget, scan  # noqa: E402

CORPUS = ["the nurse said she was tired .", "the engineer said he was busy .", "a person was kind and lovely ."]


def _save(model, tok, folder: Path, *, generic_labels: bool = False) -> str:
    if generic_labels:
        model.config.id2label = {0: "LABEL_0", 1: "LABEL_1"}
        model.config.label2id = {"LABEL_0": 0, "LABEL_1": 1}
    model.save_pretrained(str(folder), safe_serialization=True)
    tok.save_pretrained(str(folder))
    return str(folder)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("scan-models")
    wp = tiny.minilm_tokenizer()
    bpe = tiny.bpe_tokenizer(CORPUS * 4)
    clf = _probe_models.classifier(False)
    return {"masked_lm": _save(tiny.tiny_mlm(wp), wp, root / "mlm"),
            "causal_lm": _save(tiny.tiny_causal(bpe), bpe, root / "gpt"),
            "encoder": _save(tiny.tiny_encoder(wp), wp, root / "enc"),
            "classifier": _save(clf.model, clf.tokenizer, root / "clf", generic_labels=True)}


@pytest.fixture()
def no_data(tmp_path, monkeypatch):
    empty = tmp_path / "no-data"
    empty.mkdir()
    monkeypatch.setenv("RAIKIT_DATA", str(empty))
    return empty


def test_budget_parsing():
    assert parse_budget("5m") == 300 and parse_budget("1h30m") == 5400 and parse_budget("90") == 90
    assert parse_budget("2m30s") == 150
    for bad in ("five minutes", "3s", "-5m"):
        with pytest.raises(RaikitInputError, match="--budget"):
            parse_budget(bad)


def test_bad_flags_are_gathered_before_any_model_loads(tmp_path):
    data = tmp_path / "d.csv"
    pd.DataFrame({"text": ["a"], "label": ["positive"]}).to_csv(data, index=False)
    with pytest.raises(RaikitInputError) as err:
        scan(ScanOptions(models=("builtin:nope", str(tmp_path / "missing")), data=str(data),
                         group_column="gender", write_pytest=str(tmp_path / "t.txt"), progress=False))
    lines = str(err.value).splitlines()
    assert len(lines) == 4, lines
    assert any("builtin:nope" in line and "no such built-in" in line for line in lines)
    assert any("no such folder" in line for line in lines)
    assert any(line.startswith("--group-column") and "'gender'" in line for line in lines)
    assert any(line.startswith("--write-pytest") for line in lines)
    assert not (tmp_path / "out").exists()


def test_positive_label_from_predictions_or_a_one_line_error(models):
    from raikit.audits import load_model

    found = detect_positive_label(load_model(models["classifier"], device="cpu", progress=False))
    assert (found["positive"], found["negative"]) == ("LABEL_1", "LABEL_0") and found["ci95"][0] > 0.5
    wp = tiny.minilm_tokenizer()
    untrained = tiny.tiny_classifier(wp, seed=0)
    untrained.config.id2label = {0: "LABEL_0", 1: "LABEL_1"}
    from raikit.audits import wrap_model

    with pytest.raises(RaikitInputError, match="--positive-label") as err:
        detect_positive_label(wrap_model(untrained, wp, name="untrained", device="cpu", progress=False))
    assert len(str(err.value).splitlines()) == 1
    given = detect_positive_label(wrap_model(untrained, wp, name="untrained", device="cpu", progress=False),
                                  given="LABEL_0")
    assert (given["positive"], given["negative"]) == ("LABEL_0", "LABEL_1")


def test_scan_of_all_four_kinds_runs_what_applies_and_lists_what_it_skipped(models, no_data, tmp_path):
    order = ("masked_lm", "causal_lm", "encoder", "classifier")
    result = scan(ScanOptions(models=tuple(models[k] for k in order), budget_s=60, out_dir=str(tmp_path / "out"),
                              device="cpu", write_config=str(tmp_path / "scan.toml"), progress=False))
    res = result.outcome.results
    keys = dict(zip(order, ("mlm", "gpt", "enc", "clf")))
    assert res["run"]["scan"]["kinds"] == {keys[k]: k for k in order}
    ran = set(res["sections"])
    assert ran == ({f"fairness.template_seat.{k}" for k in keys.values()}
                   | {"fairness.fill_mask.mlm", "fairness.fill_mask.gpt", "fairness.behaviour", "fairness.groups",
                      "explain"})
    skipped = {s["section"]: s["command"] for s in res["run"]["skipped_sections"]}
    assert set(skipped) == {"fairness.aul", "fairness.crows_pairs", "fairness.honest", "fairness.seat",
                            "fairness.stereoset", "fairness.counterfactual", "fairness.bbq", "fairness.generation"}
    assert skipped["fairness.bbq"].startswith("raikit data fetch bbq")
    assert skipped["fairness.crows_pairs"].startswith("raikit data fetch crows_pairs")
    assert "--accept-license hurtlex" in skipped["fairness.honest"]
    assert {n["section"] for n in res["run"]["scan"]["not_run"]} == {"privacy", "federated", "mitigation"}
    assert res["run"]["scan"]["positive_labels"]["clf"]["positive"] == "LABEL_1"
    sizes = {s["section"]: s for s in res["run"]["scan"]["sizes"]}
    assert sizes["fairness.fill_mask"]["models"] == ["mlm", "gpt"] and sizes["fairness.fill_mask"]["size"] >= 1
    assert all(s["reason"] and len(s["pilot"]) >= 1 for s in sizes.values())
    # several models in one section: the same items (the same n behind each model's number)
    ns = {k: res["metrics"][f"fairness.template_seat.{k}.gender_occupation.effect_size"]["n"] for k in keys.values()}
    assert len(set(ns.values())) == 1, ns
    config = (tmp_path / "scan.toml").read_text()
    assert 'model = ["mlm", "gpt", "enc", "clf"]' in config and "# skipped: fairness.crows_pairs" in config
    assert '# max_items (integer):' in config  # every option with its description
    from raikit.audits.runner import load_audit

    assert {p.key for p in load_audit(tmp_path / "scan.toml").plan} == ran  # the written config runs as is


def test_written_gates_and_pytest_pass_on_the_model_and_fail_on_a_planted_bias(models, no_data, tmp_path):
    texts, labels = _probe_models.classifier_corpus(False)
    data = tmp_path / "mine.csv"
    pd.DataFrame({"review": texts, "y": ["positive" if y else "negative" for y in labels],
                  "gender": ["male" if t.startswith(("he ", "the man")) else "female" for t in texts]}
                 ).to_csv(data, index=False)
    folder = Path(models["classifier"]).parent / "clf-release"
    clf = _probe_models.classifier(False)
    _save(clf.model, clf.tokenizer, folder, generic_labels=True)
    test_file = tmp_path / "tests" / "test_fairness.py"
    test_file.parent.mkdir()
    result = scan(ScanOptions(models=(str(folder),), data=str(data), text_column="review", label_column="y",
                              group_column="gender", budget_s=40, out_dir=str(tmp_path / "out"), device="cpu",
                              write_gates=str(tmp_path / "tests" / "gates.toml"), write_pytest=str(test_file),
                              progress=False))
    res = result.outcome.results
    metrics = res["metrics"]
    for group in ("male", "female"):  # per-group metrics and calibration on the user's own texts
        assert f"fairness.groups.calibration.ece.by_group.{group}" in metrics
        assert f"fairness.groups.accuracy.by_group.{group}" in metrics
    assert set(res["sections"]["explain"]["options"]["texts"]) <= set(texts)
    gates = (tmp_path / "tests" / "gates.toml").read_text()
    assert '"fairness.groups.selection_rate.difference"' in gates

    def run_tests() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pytest", str(test_file), "-q", "-p", "no:cacheprovider",
                               "--raikit-out", str(tmp_path / "pytest-out")], capture_output=True, text=True,
                              cwd=tmp_path, timeout=900)

    same = run_tests()
    assert same.returncode == 0, same.stdout[-3000:] + same.stderr[-2000:]
    biased = _probe_models.classifier(True)  # a new "release" at the same path: gender decides the label
    _save(biased.model, biased.tokenizer, folder, generic_labels=True)
    worse = run_tests()
    assert worse.returncode == 1, worse.stdout[-3000:]
    assert "raikit gate failed: fairness.groups.selection_rate.difference" in worse.stdout
    assert "finding:" in worse.stdout


def test_cli_scan_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    from raikit.audits.cli import main

    with pytest.raises(SystemExit) as code:
        main(["scan", "builtin:nope", "--out", str(tmp_path / "out")])
    assert code.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["raikit: error: raikit scan: model 'builtin:nope': no such built-in model; known: "
                   + err[0].split("known: ")[1]]
    assert not (tmp_path / "out").exists()


def test_pacer_cuts_the_next_section_when_the_sections_before_took_longer_than_predicted():
    import dataclasses
    import time as _time

    from raikit.audits.runner import available_sections
    from raikit.audits.scan import _Candidate, _Pacer

    sections = available_sections()
    first = _Candidate(table="fairness.crows_pairs", name="crows_pairs", section=sections["crows_pairs"][1],
                       models=["gpt"])
    second = _Candidate(table="fairness.stereoset", name="stereoset", section=sections["stereoset"][1],
                        models=["gpt", "gpt2"])
    costs = {c.table: {"fixed_seconds": 1.0, "seconds_per_item": 0.1} for c in (first, second)}
    records = {c.table: {"section": c.table, "size": 100, "reason": "fits"} for c in (first, second)}

    @dataclasses.dataclass(frozen=True)
    class Planned:
        key: str
        options: object = None

    pacer = _Pacer(deadline=_time.perf_counter() + 30.0, candidates=[first, second], costs=costs,
                   sizes={"fairness.crows_pairs": 100, "fairness.stereoset": 100},
                   floors={"fairness.crows_pairs": 2, "fairness.stereoset": 2}, records=records,
                   options_of=lambda cand, n: {"max_items": n}, reuse={}, progress=False)
    # the first section is predicted 11 s and fits the 30 s left with the second's 11 s: run as planned
    assert pacer.before(Planned("fairness.crows_pairs")) == Planned("fairness.crows_pairs")
    pacer.after(Planned("fairness.crows_pairs"), 22.0)  # it took twice its prediction...
    pacer.deadline = _time.perf_counter() + 15.0  # ... and 15 s are left
    # 2x the predicted 11 s of the second no longer fits the 15 s left: cut to fit, and the cut recorded
    cut = pacer.before(Planned("fairness.stereoset.gpt"))
    n = cut.options["max_items"]
    assert 50 <= n < 100 and 2 * (1.0 + 0.1 * n) <= 15.0
    assert records["fairness.stereoset"]["size"] == n and records["fairness.stereoset"]["planned_size"] == 100
    assert "cut from 100" in records["fairness.stereoset"]["reason"]
    # the table's second model gets the same size: both models still compared on the same items
    assert pacer.before(Planned("fairness.stereoset.gpt2")).options == {"max_items": n}
