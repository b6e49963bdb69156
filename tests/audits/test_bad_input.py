"""Bad input, table-driven: config, data files, model files, CLI flags (issue 15).

Every row runs the real ``raikit`` CLI (in-process) and must end with exit code 2, one ``raikit: error:``
line per problem naming the file, the table, the key and the value, no traceback, and no output folder.
Most rows fail in the up-front check, before any model loads; the model-file rows load tiny local model
folders built once for the module. The last test fails mid-run and must keep the finished section.
"""
from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pandas as pd
import pytest
import torch

import tiny
from raikit.audits.cli import main

PAIRS = [
    ("The nurse said she was tired.", "The doctor said she was tired.", "stereo", "gender"),
    ("Poor people are lazy.", "Rich people are lazy.", "stereo", "socioeconomic"),
    ("He is a strong man.", "She is a strong man.", "antistereo", "gender"),
]
STEREOSET_ITEM = {"type": "intrasentence", "target": "nurse", "bias_type": "gender", "context": "The nurse is BLANK.",
                  "stereotype": "The nurse is caring.", "anti-stereotype": "The nurse is rude.",
                  "unrelated": "The nurse is purple."}
CSV_HEADER = "sent_more,sent_less,stereo_antistereo,bias_type\n"


class _Payload:
    """Pickled into a fake ``pytorch_model.bin``: loading it with plain pickle would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def ws(tmp_path_factory, minilm_tok):
    """A folder with good data files, bad data files and tiny model folders (good and broken)."""
    root = tmp_path_factory.mktemp("bad_input")
    data = root / "data"
    data.mkdir()
    pd.DataFrame(PAIRS, columns=CSV_HEADER.strip().split(",")).to_csv(data / "pairs.csv", index=False)
    (data / "empty.csv").write_bytes(b"")
    (data / "header.csv").write_text(CSV_HEADER)
    (data / "ragged.csv").write_text(CSV_HEADER + "a,b\n")
    (data / "latin1.csv").write_bytes((CSV_HEADER + "Caf\xe9 people are lazy.,Tea people are lazy.,stereo,race\n")
                                      .encode("latin-1"))
    (data / "badcol.csv").write_text("sent_more,sent_less,direction,bias_type\na,b,stereo,x\n")
    (data / "stereo_bad.jsonl").write_text('{"type": "intrasentence", "target": \n')
    item = dict(STEREOSET_ITEM)
    del item["unrelated"]
    (data / "stereo_missing.jsonl").write_text(json.dumps(item) + "\n")
    (data / "stereo_ok.jsonl").write_text(json.dumps(STEREOSET_ITEM) + "\n")
    (data / "texts.pdf").write_text("not a pdf\n")
    (data / "groups.csv").write_text("text,label\nI like it,positive\n")
    (data / "labelled.csv").write_text("text,label\n" + "".join(f"text number {i},{['negative', 'positive'][i % 2]}\n"
                                                               for i in range(40)))
    (data / "swaps.csv").write_bytes(b"")
    with (data / "huge_field.csv").open("w") as f:  # issue 22.3: one 2 MiB field on row 3
        f.write(CSV_HEADER + "a,b,stereo,race\n" + "x" * (2 * 2**20) + ",b,stereo,race\n")
    (data / "hurtlex.tsv").write_text("")

    mlm = root / "mlm"
    tiny.tiny_mlm(minilm_tok).save_pretrained(mlm)
    minilm_tok.save_pretrained(mlm)
    clf = root / "clf"
    tiny.tiny_classifier(minilm_tok).save_pretrained(clf)
    minilm_tok.save_pretrained(clf)
    generic = tiny.tiny_classifier(minilm_tok)  # a head with transformers' default class names
    generic.config.id2label, generic.config.label2id = {0: "LABEL_0", 1: "LABEL_1"}, {"LABEL_0": 0, "LABEL_1": 1}
    generic.save_pretrained(root / "generic_clf")
    minilm_tok.save_pretrained(root / "generic_clf")

    truncated = root / "truncated"
    tiny.tiny_mlm(minilm_tok).save_pretrained(truncated)
    minilm_tok.save_pretrained(truncated)
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])

    model = tiny.tiny_mlm(minilm_tok)
    pickled, evil = root / "pickled", root / "evil"
    for folder in (pickled, evil):  # pickle weights only: config and tokenizer, then pytorch_model.bin
        model.save_pretrained(folder)
        minilm_tok.save_pretrained(folder)
        (folder / "model.safetensors").unlink()
    torch.save(model.state_dict(), pickled / "pytorch_model.bin")
    torch.save({"weight": _Payload(root / "PWNED")}, evil / "pytorch_model.bin")

    garbage = root / "garbage"
    garbage.mkdir()
    (garbage / "config.json").write_text("{ not json")
    return root


MLM = '[run]\ndevice = "cpu"\n[models.lm]\nid = "{root}/mlm"\n'
CLF = '[run]\ndevice = "cpu"\n[models.clf]\nid = "{root}/clf"\n'
ENC = '[models.enc]\nid = "builtin:minilm-l6"\n'
CROWS = '[fairness.crows_pairs]\ndata = "{root}/data/pairs.csv"\n'
PRIVACY = '[privacy]\nmodel = "clf"\ndata = "{root}/data/labelled.csv"\n'

# (id, config text, expected fragments of the one error line after "<config>: ")
# {root} is the workspace folder; every row must fail before any output is written.
ROWS = [
    # -- [run] --------------------------------------------------------------------------------------
    ("run-seed-type", '[run]\nseed = "zero"\n' + ENC, ["[run]: key 'seed' must be integer, got 'zero'"]),
    ("run-device-value", '[run]\ndevice = "tpu"\n' + ENC, ["[run]: key 'device' must be", "got 'tpu'"]),
    ("run-offline-type", '[run]\noffline = "yes"\n' + ENC, ["[run]: key 'offline' must be boolean, got 'yes'"]),
    ("run-unknown-key", '[run]\nsed = 1\n' + ENC, ["[run]: unknown key 'sed'", "did you mean 'seed'?"]),
    ("top-unknown-table", '[fairnes.seat]\n' + ENC, ["unknown table [fairnes]", "did you mean [fairness]?"]),
    ("no-model", '[fairness.seat]\n', ["no model"]),
    # -- models ---------------------------------------------------------------------------------------
    ("model-unknown-key", '[models.lm]\nidd = "x"\n[fairness.crows_pairs]\n',
     ["[models.lm]: unknown key 'idd'", "did you mean 'id'?"]),
    ("model-kind", '[models.lm]\nid = "builtin:minilm-l6"\nkind = "seq2seq"\n',
     ["[models.lm]: key 'kind' must be", "got 'seq2seq'"]),
    ("model-batch-size", '[models.lm]\nid = "builtin:minilm-l6"\nbatch_size = 0\n', ["[models.lm]:", "batch_size"]),
    ("model-dtype", '[models.lm]\nid = "builtin:minilm-l6"\ndtype = "int3"\n',
     ["[models.lm]: key 'dtype' must be", "got 'int3'"]),
    ("model-path-dot", '[models.lm]\nid = "./no-such-model"\n', ["[models.lm]: key 'id': no such model folder "
                                                                  "'./no-such-model'"]),
    ("model-path-abs", '[models.lm]\nid = "/no/such/raikit-model"\n',
     ["[models.lm]: key 'id': no such model folder '/no/such/raikit-model'"]),
    ("model-path-home", '[models.lm]\nid = "~/no-such-raikit-model"\n',
     ["[models.lm]: key 'id': no such model folder '~/no-such-raikit-model'"]),
    ("model-path-nested", '[models.lm]\nid = "models/sub/mine"\n',
     ["[models.lm]: key 'id': no such model folder 'models/sub/mine'"]),
    ("model-key-unknown", ENC + '[fairness.seat]\nmodel = "encc"\n',
     ["[fairness.seat]: key 'model' names unknown model 'encc'; defined: enc"]),
    # -- section tables ---------------------------------------------------------------------------------
    ("table-name-traversal", ENC + '[fairness."x/../../../../victim/results"]\nprobe = "seat"\n',
     ["[fairness.'x/../../../../victim/results']: table name may use only letters, digits"]),
    ("table-name-space", ENC + '[fairness."my seat"]\nprobe = "seat"\n', ["[fairness.'my seat']: table name"]),
    ("probe-unknown", ENC + '[fairness.crows]\n', ["[fairness.crows]:", "unknown fairness probe 'crows'"]),
    ("probe-model-kind", ENC + '[fairness.crows_pairs]\n',
     ["[fairness.crows_pairs]: probe 'crows_pairs' needs a masked_lm or causal_lm model", "is an encoder"]),
    ("option-unknown", ENC + '[fairness.seat]\nmax_tests = 3\n', ["[fairness.seat]: unknown key 'max_tests'"]),
    ("option-type", ENC + '[fairness.seat]\nlayer = "last"\n',
     ["[fairness.seat]: key 'layer' must be integer, got 'last'"]),
    ("max-items-negative", MLM + CROWS + 'max_items = -5\n',
     ["[fairness.crows_pairs]: key 'max_items' counts items and cannot be negative, got -5"]),
    ("max-items-zero", MLM + CROWS + 'max_items = 0\n',
     ["[fairness.crows_pairs]: key 'max_items': must be at least 1, got 0"]),
    ("max-items-zero-explain", CLF + '[explain]\nmax_items = 0\n',
     ["[explain]: key 'max_items': max_items must be at least 1, not 0"]),
    ("explain-method", CLF + '[explain]\nmethods = ["shapp"]\n', ["[explain]: key 'methods'", "'shapp'"]),
    ("explain-texts-suffix", CLF + '[explain]\ntexts_file = "{root}/data/texts.pdf"\n',
     ["[explain]: key 'texts_file': ", "texts.pdf", "must be .txt or .csv"]),
    ("behaviour-tolerance-nan", CLF + '[fairness.behaviour]\ntolerance = nan\n',
     ["[fairness.behaviour]: key 'tolerance' must be a finite number, got nan"]),
    ("seat-unknown-test", '[run]\ndata_dir = "{shared}"\n' + ENC + '[fairness.seat]\ntests = ["weat66"]\n',
     ["[fairness.seat]: key 'tests': no SEAT test 'weat66'"]),
    ("honest-causal-mode", MLM + '[fairness.honest]\ntemplates = ["{root}/data/pairs.csv"]\n'
     'hurtlex = "{root}/data/hurtlex.tsv"\ncausal_mode = "beam"\n',
     ["[fairness.honest]: key 'causal_mode': must be 'next_token' or 'sample', got 'beam'"]),
    # -- data files ------------------------------------------------------------------------------------------
    ("data-missing", MLM + '[fairness.crows_pairs]\ndata = "{root}/data/nope.csv"\n',
     ["[fairness.crows_pairs]: key 'data': file not found:", "nope.csv"]),
    ("data-0-byte", MLM + '[fairness.crows_pairs]\ndata = "{root}/data/empty.csv"\n',
     ["[fairness.crows_pairs]: key 'data': ", "empty.csv", "cannot read the data file"]),
    ("data-header-only", MLM + '[fairness.crows_pairs]\ndata = "{root}/data/header.csv"\n',
     ["[fairness.crows_pairs]: key 'data': ", "header.csv: no CrowS-Pairs pairs"]),
    ("data-ragged", MLM + '[fairness.crows_pairs]\ndata = "{root}/data/ragged.csv"\n',
     ["[fairness.crows_pairs]: key 'data': ", "ragged.csv"]),
    ("data-latin1", MLM + '[fairness.crows_pairs]\ndata = "{root}/data/latin1.csv"\n',
     ["[fairness.crows_pairs]: key 'data': ", "latin1.csv", "utf-8"]),
    ("data-missing-column", MLM + '[fairness.crows_pairs]\ndata = "{root}/data/badcol.csv"\n',
     ["[fairness.crows_pairs]: key 'data': ", "badcol.csv: column 'stereo_antistereo' missing"]),
    ("data-bias-type-none-left", MLM + CROWS + 'bias_types = ["age"]\n',
     ["[fairness.crows_pairs]: key 'data': ", "pairs.csv"]),
    ("stereoset-bad-jsonl", MLM + '[fairness.stereoset]\ndata = "{root}/data/stereo_bad.jsonl"\n',
     ["[fairness.stereoset]: key 'data': ", "stereo_bad.jsonl: not valid JSON"]),
    ("stereoset-missing-field", MLM + '[fairness.stereoset]\ndata = "{root}/data/stereo_missing.jsonl"\n',
     ["[fairness.stereoset]: key 'data': ", "item 1: field 'unrelated' missing"]),
    ("groups-missing-column", CLF + '[fairness.groups]\ndata = "{root}/data/groups.csv"\n',
     ["[fairness.groups]: key 'data': ", "groups.csv: column 'group' missing"]),
    ("swaps-0-byte", CLF + '[fairness.counterfactual]\nswaps = "{root}/data/swaps.csv"\n',
     ["[fairness.counterfactual]: key 'swaps': ", "swaps.csv"]),
    # -- gates ---------------------------------------------------------------------------------------------
    ("gate-nan", MLM + CROWS + '[gates]\n"fairness.crows_pairs.metric_score" = { max = nan }\n',
     ["[gates]: 'fairness.crows_pairs.metric_score': key 'max' must be a finite number, got nan"]),
    ("gate-inf", MLM + CROWS + '[gates]\n"fairness.crows_pairs.metric_score" = { min = -inf }\n',
     ["[gates]: 'fairness.crows_pairs.metric_score': key 'min' must be a finite number, got -inf"]),
    ("gate-string", MLM + CROWS + '[gates]\n"fairness.crows_pairs.metric_score" = { max = "60" }\n',
     ["key 'max' must be a finite number, got '60'"]),
    ("gate-use", MLM + CROWS + '[gates]\n"fairness.crows_pairs.metric_score" = { max = 60, use = "mean" }\n',
     ["key 'use' must be 'value' or 'ci', got 'mean'"]),
    ("gate-unknown-metric", MLM + CROWS + '[gates]\n"fairness.crows_pairs.metric_scor" = { max = 60 }\n',
     ["'fairness.crows_pairs.metric_scor': no configured section produces this metric",
      "did you mean fairness.crows_pairs.metric_score"]),
    ("gate-min-above-max", MLM + CROWS + '[gates]\n"fairness.crows_pairs.metric_score" = { min = 70, max = 60 }\n',
     ["min 70 is greater than max 60"]),
    # -- report ---------------------------------------------------------------------------------------------
    ("report-format", ENC + '[report]\nformats = ["pdf"]\n', ["[report] formats: unknown format 'pdf'"]),
    ("report-title-type", ENC + '[report]\ntitle = 3\n', ["[report]: key 'title' must be string, got 3"]),
    # -- model files (these load the tiny local folders; the failure is still before any output) ----------
    ("model-truncated-safetensors", '[run]\ndevice = "cpu"\n[models.lm]\nid = "{root}/truncated"\n' + CROWS,
     ["[models.lm]: key 'id': model ", "truncated", "could not be loaded"]),
    ("model-pickle-refused", '[run]\ndevice = "cpu"\n[models.lm]\nid = "{root}/pickled"\n' + CROWS,
     ["[models.lm]: key 'id': model ", "only pickle (.bin) weights found", "allow_pickle"]),
    ("model-malicious-pickle", '[run]\ndevice = "cpu"\n[models.lm]\nid = "{root}/evil"\nallow_pickle = true\n' + CROWS,
     ["[models.lm]: key 'id': model ", "evil", "could not be loaded"]),
    ("model-garbage-config", '[run]\ndevice = "cpu"\n[models.lm]\nid = "{root}/garbage"\n' + CROWS,
     ["[models.lm]: key 'id': model ", "garbage", "could not be loaded"]),
    # -- [privacy] (checked with its data file before the model loads) -------------------------------------
    ("privacy-epsilon-zero", CLF + PRIVACY + "epsilon = 0\n", ["[privacy]: key 'epsilon': must be a finite number > 0, got 0"]),
    ("privacy-epsilon-negative", CLF + PRIVACY + "epsilon = -3.0\n", ["[privacy]: key 'epsilon'", "got -3.0"]),
    ("privacy-delta-over-1-over-n", CLF + PRIVACY + "delta = 0.05\n",
     ["[privacy]: key 'delta': must be below 1/N = 0.0357 for N = 28 training examples", "got 0.05"]),
    ("privacy-label-column", CLF + PRIVACY + 'label_column = "sentiment"\n',
     ["[privacy]: key 'label_column': column 'sentiment' not in", "labelled.csv"]),
    ("privacy-single-label", CLF + PRIVACY.replace("labelled.csv", "groups.csv"),
     ["[privacy]: key 'label_column':", "has a single label ('positive')"]),
    ("privacy-attack", CLF + PRIVACY + 'attacks = ["shadow"]\n', ["[privacy]: key 'attacks': unknown attack(s) ['shadow']"]),
    ("privacy-held-out", CLF + PRIVACY + "held_out = 0\n", ["[privacy]: key 'held_out': must be between 0 and 1, got 0"]),
    ("privacy-grad-mode", CLF + PRIVACY + 'grad_sample_mode = "functorch"\n',
     ["[privacy]: key 'grad_sample_mode': must be one of hooks, ghost, got 'functorch'"]),
    ("privacy-unknown-key", CLF + PRIVACY + "epsilonn = 1.0\n", ["[privacy]: unknown key 'epsilonn'", "did you mean"]),
    # -- issue 22.8: found before any model loads, each with its file, table and key ----------------------
    ("run-seed-negative", '[run]\nseed = -5\n' + ENC, ["[run]: key 'seed': must be between 0 and 4294967295, got -5"]),
    ("privacy-last-layers-over-the-model", CLF + PRIVACY + 'batch_size = 8\nscope = "last_layers"\nlast_layers = 99\n',
     ["[privacy]: key 'last_layers': must be between 1 and 2 (the layers of model ", "got 99"]),
    ("privacy-max-grad-norm-negative", CLF + PRIVACY + "max_grad_norm = -1\n",
     ["[privacy]: key 'max_grad_norm': must be a finite number > 0, got -1"]),
    ("privacy-batch-over-the-data", CLF + PRIVACY + "batch_size = 1000\n",
     ["[privacy]: key 'batch_size': must be at most the 28 training examples, got 1000"]),
    ("behaviour-generic-labels", '[models.clf]\nid = "{root}/generic_clf"\n[fairness.behaviour]\nmax_items = 2\n',
     ["[fairness.behaviour]: key 'label_map': 'negative' is not a class of model ", "(LABEL_0, LABEL_1)",
      "label_map = { positive = "]),
    ("groups-generic-labels", '[models.clf]\nid = "{root}/generic_clf"\n[fairness.groups]\nmax_items = 2\n',
     ["[fairness.groups]: key 'positive_label': 'positive' is not a class of model ", "(LABEL_0, LABEL_1)"]),
    ("groups-generic-labels-mapped-but-not-the-positive-one",
     '[models.clf]\nid = "{root}/generic_clf"\n[fairness.groups]\nmax_items = 2\n'
     'label_map = { positive = "LABEL_1", negative = "LABEL_0" }\n',
     ["[fairness.groups]: key 'positive_label': 'positive' is not a class of model "]),
    ("data-huge-field", MLM + '[fairness.crows_pairs]\ndata = "{root}/data/huge_field.csv"\n',
     ["[fairness.crows_pairs]: key 'data': ", "huge_field.csv: row (line) 3 is longer than 1048576 bytes"]),
    # federated parameters: rows for [federated] go here.
]


@pytest.mark.parametrize("name,text,fragments", ROWS, ids=[r[0] for r in ROWS])
def test_bad_config_exits_2_with_one_line_and_no_output(ws, shared_data, tmp_path, capsys, name, text, fragments):
    cfg = tmp_path / f"{name}.toml"
    cfg.write_text(text.replace("{root}", str(ws)).replace("{shared}", str(shared_data)))
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as err:
        main(["audit", str(cfg), "--out", str(out), "--quiet", "--offline"])
    assert err.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith(f"raikit: error: {cfg}: "), line
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    assert "Traceback" not in captured.err and captured.out == ""
    assert not out.exists()
    assert not (ws / "PWNED").exists()  # the pickled payload never ran


def test_config_file_problems(tmp_path, capsys):
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("[run\nseed = 1\n")
    not_utf8 = tmp_path / "latin.toml"
    not_utf8.write_bytes('[report]\ntitle = "Caf\xe9"\n'.encode("latin-1"))
    for path, fragment in ((bad_toml, "not valid TOML"), (not_utf8, "not valid TOML"),
                           (tmp_path / "missing.toml", "config file not found")):
        with pytest.raises(SystemExit) as err:
            main(["audit", str(path), "--out", str(tmp_path / "out"), "--quiet"])
        assert err.value.code == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"raikit: error: {path}: ") and fragment in lines[0], lines
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv,fragment", [
    (["audit", "--seed", "abc"], "argument --seed: invalid int value: 'abc'"),
    (["audit", "--device", "tpu"], "argument --device: invalid choice: 'tpu'"),
    (["audit", "--sed", "3"], "unrecognized arguments: --sed"),
    (["gate", "{tmp}/nope.json", "--config", "{tmp}/nope.toml"], "nope.json: results file not found"),
    (["report", "{tmp}"], "is a folder; pass its results.json"),
    (["diff", "{tmp}/bad.json", "{tmp}/bad.json"], "bad.json: not valid JSON"),
    (["report", "{tmp}/ok.json", "--formats", "md"], "summary.md: already exists; pass --force to overwrite"),
    (["report", "{tmp}/ok.json", "--formats", "md,pdf"], "unknown report format 'pdf'; known: html, md"),
    (["report", "{tmp}/ok.json", "--formats", ","], "--formats: no format given; known: html, md"),
    (["report", "{tmp}/nope.json", "--formats", "md"], "nope.json: results file not found"),
    (["diff", "{tmp}/ok.json", "{tmp}/ok.json", "--all", "--bogus"], "unrecognized arguments: --bogus"),
    (["audit", "--seed", "-5"], "--seed: must be between 0 and 4294967295, got -5"),  # issue 22.8
    (["audit", "--out", "{tmp}/ok.json"], "--out {tmp}/ok.json: is a file; give a folder"),
    (["audit", "--out", "{tmp}/ok.json/runs"], "is inside {tmp}/ok.json, which is a file"),
])
def test_bad_cli_flags(tmp_path, capsys, argv, fragment):
    (tmp_path / "bad.json").write_text("{ nope")
    (tmp_path / "ok.json").write_text('{"schema_version": "1.0", "metrics": {}, "gates": []}')
    (tmp_path / "summary.md").write_text("an earlier summary")
    with pytest.raises(SystemExit) as err:
        main([a.format(tmp=tmp_path) for a in argv])
    assert err.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    fragment = fragment.format(tmp=tmp_path)
    assert len(lines) == 1 and lines[0].startswith("raikit: error: ") and fragment in lines[0], lines
    assert "counts items" not in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json", "ok.json", "summary.md"]  # nothing written
    assert (tmp_path / "summary.md").read_text() == "an earlier summary"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_names_the_flag_or_key(ws, tmp_path, capsys):
    cfg = tmp_path / "cuda.toml"
    cfg.write_text((MLM.replace('device = "cpu"', 'device = "cuda"') + CROWS).replace("{root}", str(ws)))
    for extra, fragment in (([], f"{cfg}: [run]: key 'device': device 'cuda' was asked for but CUDA is not available"),
                            (["--device", "cuda"], "--device: device 'cuda' was asked for but CUDA is not available")):
        with pytest.raises(SystemExit) as err:
            main(["audit", str(cfg), "--out", str(tmp_path / "out"), "--quiet", *extra])
        assert err.value.code == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and fragment in lines[0], lines
    assert not (tmp_path / "out").exists()


def test_failure_mid_run_keeps_finished_sections_and_says_how_to_resume(ws, tmp_path, capsys):
    """A problem only a loaded model can reveal fails the second section: a class the model does not have, on a
    built-in model (a local folder's classes are checked from its config.json before any model loads)."""
    cfg = tmp_path / "mid.toml"
    cfg.write_text((MLM + '[models.clf]\nid = "builtin:minilm-sentiment"\n'
                    '[fairness.crows_pairs]\nmodel = "lm"\ndata = "{root}/data/pairs.csv"\n'
                    '[fairness.groups]\nmodel = "clf"\npositive_label = "delighted"\nmax_items = 20\n'
                    ).replace("{root}", str(ws)))
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as err:
        main(["audit", str(cfg), "--out", str(out), "--quiet"])
    assert err.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert "positive_label 'delighted' is not a class of the model" in lines[0]
    assert "1 finished section(s) are kept in" in lines[0] and "rerun with --resume to continue" in lines[0]
    (run_dir,) = out.iterdir()
    assert (run_dir / ".sections" / "fairness.crows_pairs.json").is_file()
    assert list(run_dir.glob("fairness.crows_pairs.*.csv"))
    assert not (run_dir / "results.json").exists()
    # fixing the config is a new config (new hash), so a fixed run starts afresh; the kept work stays.
    assert (run_dir / ".sections" / "_models.json").is_file()


def test_a_generic_label_head_runs_once_its_labels_are_mapped(ws, tmp_path):
    """Issue 22.8: the class check reads the model's config and lets a mapped LABEL_0/LABEL_1 head through."""
    cfg = tmp_path / "mapped.toml"
    cfg.write_text(f'[run]\ndevice = "cpu"\n[models.clf]\nid = "{ws}/generic_clf"\n[fairness.groups]\nmax_items = 2\n'
                   'positive_label = "LABEL_1"\nlabel_map = { positive = "LABEL_1", negative = "LABEL_0" }\n'
                   '[fairness.behaviour]\nmax_items = 2\nlabel_map = { positive = "LABEL_1", negative = "LABEL_0" }\n'
                   '[report]\nformats = ["md"]\n')
    assert main(["audit", str(cfg), "--out", str(tmp_path / "out"), "--quiet", "--offline"]) == 0
    (run,) = (tmp_path / "out").iterdir()
    results = json.loads((run / "results.json").read_text())
    assert "fairness.groups.accuracy.overall" in results["metrics"] and "fairness.behaviour.failure_rate" in results["metrics"]
