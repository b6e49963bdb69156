"""The [privacy] section on a tiny classifier trained in the test: known answers for the attacks, the
guarantee, the re-audit through the runner, the retrain command, and bad input."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd
import pytest

import tiny
from raikit.audits.cli import main
from raikit.audits.models import wrap_model
from raikit.audits.runner import run_audit
from raikit.audits.sections import RunContext
from raikit.privacy import PrivacyOptions, default_delta, draw_canaries, run_privacy

FILLERS = [f"f{i}" for i in range(20)]


def _random_texts(n: int, seed: int) -> pd.DataFrame:
    """Texts ``record id<k>`` with random labels: only memorising the id word fits the training set."""
    rng = random.Random(seed)
    rows = [(f"record id{k}", rng.choice(["negative", "positive"]), rng.choice(["a", "b"])) for k in range(n)]
    return pd.DataFrame(rows, columns=["text", "label", "group"])


OPTIONS = dict(group_column="group", held_out=0.5, epochs=30, batch_size=16, physical_batch_size=16,
               learning_rate=3e-3, max_length=16, canaries=0, reproducible_noise=True)


@pytest.fixture(scope="module")
def memorise(tmp_path_factory):
    """A tiny classifier whose vocabulary knows the id words of the training texts only.

    The section splits the data itself (seeded); the same split tells which texts will be members, so the
    tokenizer maps every non-member's id word to [UNK]: the model can memorise members and can tell
    nothing about non-members, the textbook setting for a membership-inference known answer. A quarter
    of the members' id words are left out of the vocabulary too, so the model sees [UNK] with both
    labels and learns 50/50 for it (instead of an arbitrary confident guess for every non-member).
    """
    from raikit.audits.textdata import read_labelled_texts
    from raikit.privacy._section import _fractions

    root = tmp_path_factory.mktemp("privacy")
    _random_texts(240, seed=1).to_csv(root / "data.csv", index=False)
    data = read_labelled_texts(root / "data.csv", group_column="group")
    train = data.split(fractions=_fractions(PrivacyOptions(**OPTIONS)), seed=0)["train"]
    tok = tiny.word_tokenizer(["record"] + [t for i, t in enumerate(train["text"]) if i % 4])
    model = tiny.tiny_classifier(tok, hidden_size=64, intermediate_size=128)
    model.save_pretrained(root / "clf")
    tok.save_pretrained(root / "clf")
    return root, tok, model


def _run(memorise, **overrides):
    root, tok, model = memorise
    adapter = wrap_model(model, tok, kind="classifier", device="cpu", progress=False)
    options = PrivacyOptions(data=str(root / "data.csv"), **{**OPTIONS, **overrides})
    return run_privacy(adapter, options, RunContext(seed=0, base_dir=root, progress=False))


def test_attack_beats_chance_on_an_overfit_model_and_not_on_a_private_one(memorise):
    result = _run(memorise, epsilon=0.5)
    m = result.metrics
    base, dp = m["mia.baseline.auc"], m["mia.dp.auc"]
    # the non-private baseline memorised its 120 random-label texts: the loss attack separates members
    assert base.value > 0.8 and base.ci95[0] > 0.6, base
    # at epsilon 0.5 the attack is near chance, and far below the baseline
    assert 0.35 < dp.value < 0.65 and dp.ci95[0] < 0.5 + 0.1 and dp.value < base.value - 0.2, dp
    # the guarantee as the accountant certifies it, and the empirical bound below it
    eps = m["dp.epsilon"].value
    n_train = result.details["data"]["split"]["train"]
    assert 0 < eps <= 0.5 and m["dp.delta"].value == default_delta(n_train) <= 1 / (10 * n_train)
    assert m["mia.dp.epsilon_lower_bound"].value <= eps
    assert m["mia.dp.epsilon_lower_bound"].details["within_guarantee"] is True
    assert m["mia.baseline.epsilon_lower_bound"].value > 0  # the overfit model leaks measurably
    # what the epsilon covers is said; the DP model's unnoised training loss is not published
    assert "baseline" in result.details["epsilon_covers"]["not_covered"]
    assert "final_loss" not in result.details["training"]["dp"] and "final_loss" in result.details["training"]["baseline"]
    assert "final_loss" not in result.models["dp"].description
    # everything Opacus reports is recorded
    dp_facts = result.details["dp"]
    assert {"noise_multiplier", "sample_rate", "steps", "accountant", "max_grad_norm"} <= set(dp_facts)
    assert dp_facts["steps"] == dp_facts["planned_steps"] and dp_facts["noise_multiplier"] > 1
    # accuracy on held-out texts (random labels: about chance for every model) with intervals, per group too
    for name in ("original", "baseline", "dp"):
        acc = m[f"{name}.accuracy"]
        assert acc.n == 120 and acc.ci95[0] <= acc.value <= acc.ci95[1]
        assert f"{name}.by_group.a.accuracy" in m
    assert "dp.accuracy_cost" in m and "dp.by_group.b.accuracy_cost" in m
    assert set(result.models) == {"baseline", "dp"}
    scores = result.tables["attack_scores"]
    assert set(scores["model"]) == {"baseline", "dp"} and scores["member"].sum() == len(scores) / 2


def test_lira_with_reference_models_and_ghost_clipping(memorise):
    result = _run(memorise, epsilon=1.0, held_out=0.3, reference_models=2, reference_fraction=0.3,
                  attacks=["loss", "lira"], grad_sample_mode="ghost", epochs=20)
    m = result.metrics
    assert "mia.baseline.lira.auc" in m and "mia.dp.lira.auc" in m
    assert m["mia.baseline.lira.auc"].value > 0.7
    assert len(result.details["reference_models"]) == 2
    split = result.details["data"]["split"]
    assert split["reference"] == 72 and split["train"] + split["held_out"] + split["reference"] == 240
    assert result.details["dp"]["grad_sample_mode"] == "ghost" and m["dp.epsilon"].value <= 1.0


def _config(root: Path, privacy: str, extra: str = "") -> Path:
    path = root / "audit.toml"
    data = "" if "data =" in privacy else 'data = "data.csv"'
    path.write_text(f'[run]\nseed = 0\ndevice = "cpu"\n[models.clf]\nid = "clf"\n{extra}'
                    f'[privacy]\nmodel = "clf"\n{data}\n'
                    f'group_column = "group"\nepochs = 2\n'
                    f'batch_size = 32\nmax_length = 16\n{privacy}\n[report]\nformats = ["html", "model_card"]\n')
    return path


def test_audit_saves_retrained_models_and_reaudits_them(memorise, tmp_path):
    root, _, _ = memorise
    config = _config(root, "", extra='[fairness.groups]\nmodel = "clf"\nmax_items = 40\n'
                                     '[gates]\n"privacy.dp.epsilon" = { max = 8.0 }\n')
    assert main(["audit", str(config), "--out", str(tmp_path), "--quiet"]) == 0
    [run] = [p for p in tmp_path.iterdir() if p.is_dir()]
    res = json.loads((run / "results.json").read_text())
    for variant in ("baseline", "dp"):
        saved = res["sections"]["privacy"]["retrained_models"][variant]
        folder = run / saved["path"]
        assert (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()
        assert res["models"][f"privacy.{variant}"]["weights_sha256"] == saved["weights_sha256"]
        # the folder is a model raikit loads, and its weights are the ones recorded
        assert wrap_model(*_load(folder), kind="classifier", progress=False).weights_sha256 == saved["weights_sha256"]
        entry = res["sections"][f"privacy.{variant}.fairness.groups"]
        assert entry["reaudit_of"] == "fairness.groups" and entry["model"] == f"privacy.{variant}"
        assert f"privacy.{variant}.fairness.groups.accuracy.overall" in res["metrics"]
    rows = res["sections"]["privacy"]["details"]["reaudit"]
    assert rows and {"metric", "original", "baseline", "dp"} <= set(rows[0])
    assert res["metrics"]["privacy.dp.epsilon"]["value"] <= 8.0
    assert "Privacy" in (run / "report.html").read_text()
    _check_cards(run, res)
    # --resume of the finished run reuses the retraining and the re-audits (nothing retrained, same numbers)
    stamp = (run / "models" / "privacy.dp" / "model.safetensors").stat().st_mtime_ns
    again = run_audit(config, out_dir=tmp_path, resume=True, progress=False)
    assert again.out_dir == run and again.results["metrics"] == res["metrics"]
    assert (run / "models" / "privacy.dp" / "model.safetensors").stat().st_mtime_ns == stamp
    assert again.results["models"]["privacy.dp"]["weights_sha256"] == res["models"]["privacy.dp"]["weights_sha256"]


def _check_cards(run: Path, res: dict) -> None:
    """Issue 28 item 1: each model's card, read back by huggingface_hub, lists every gated metric and every
    section's headline metric in its model-index; the DP model's card carries epsilon with delta and accountant."""
    from huggingface_hub import ModelCard
    from huggingface_hub.repocard_data import model_index_to_eval_results

    listed = {}
    for key in ("clf", "privacy.baseline", "privacy.dp"):
        card = ModelCard.load(run / "model_cards" / key / "README.md")
        name, evals = model_index_to_eval_results(card.data.to_dict()["model-index"])
        assert name == res["models"][key]["id"] and evals, key
        listed.update({e.metric_name.split(":")[0]: (key, e) for e in evals})
    assert [g["metric"] for g in res["gates"]] == ["privacy.dp.epsilon"]
    for gate in res["gates"]:
        assert gate["metric"] in listed
    for skey in res["sections"]:
        first = next(n for n in res["metrics"] if n.startswith(skey + ".") and ".by_" not in n
                     and not any(n.startswith(k + ".") for k in res["sections"] if len(k) > len(skey)))
        assert first in listed, (skey, first)
    owner, epsilon = listed["privacy.dp.epsilon"]
    assert owner == "privacy.dp" and epsilon.metric_value == res["metrics"]["privacy.dp.epsilon"]["value"]
    assert epsilon.metric_args["delta"] == res["metrics"]["privacy.dp.delta"]["value"]
    assert epsilon.metric_args["accountant"] == "prv" and epsilon.dataset_revision
    assert listed["privacy.dp.fairness.groups.accuracy.overall"][0] == "privacy.dp"
    text = (run / "model_cards" / "privacy.dp" / "README.md").read_text()
    assert "(epsilon, delta) = (" in text and "What the epsilon covers" in text


def _load(folder: Path):
    import transformers

    return (transformers.AutoModelForSequenceClassification.from_pretrained(folder),
            transformers.AutoTokenizer.from_pretrained(folder))


def test_retrain_dp_command_writes_the_model_folder(memorise, tmp_path, capsys):
    root, _, _ = memorise
    config = _config(root, "baseline = false", extra='[fairness.groups]\nmodel = "clf"\n')
    assert main(["retrain", "dp", str(config), "--out", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "privacy.dp" in out and "epsilon" in out
    [run] = [p for p in tmp_path.iterdir() if p.is_dir()]
    res = json.loads((run / "results.json").read_text())
    assert list(res["sections"]) == ["privacy"]  # only the retraining: no fairness section, no re-audit
    assert (run / "models" / "privacy.dp" / "model.safetensors").is_file()
    assert not (run / "models" / "privacy.baseline").exists()


@pytest.mark.parametrize("privacy,expected", [
    ("epsilon = 0", "key 'epsilon': must be a finite number > 0, got 0"),
    ("epsilon = -1.5", "key 'epsilon': must be a finite number > 0, got -1.5"),
    ("epsilon = nan", "key 'epsilon' must be a finite number, got nan"),
    ("delta = 0.5", "key 'delta': must be below 1/N"),
    ('label_column = "sentiment"', "key 'label_column': column 'sentiment' not in"),
    ('accountant = "moments"', "key 'accountant': must be one of prv, rdp, got 'moments'"),
    ('accountant = "gdp"', "key 'accountant': 'gdp' is refused for a reported epsilon"),
    ("epsilon = 1000.0", "key 'epsilon': must be at most 100"),
    ("epsilon = 1e308", "key 'epsilon': must be at most 100"),
    ('attacks = ["lira"]', "key 'attacks': 'lira' needs reference_models >= 1"),
    ('data = "missing.csv"', "key 'data': file not found"),
    ("held_out = 1.0", "key 'held_out': must be between 0 and 1, got 1.0"),
    ('scope = "head"', "key 'scope': must be one of all, last_layers, lora, got 'head'"),
])
def test_bad_privacy_input_is_one_line_exit_2_and_writes_nothing(memorise, tmp_path, capsys, privacy, expected):
    root, _, _ = memorise
    config = _config(root, privacy)
    with pytest.raises(SystemExit) as exit_info:
        main(["audit", str(config), "--out", str(tmp_path / "out"), "--quiet"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "[privacy]" in err[0] and expected in err[0], err
    assert str(config) in err[0]
    assert not (tmp_path / "out").exists()


def test_a_layer_opacus_cannot_train_is_named_with_its_fix(tmp_path, capsys):
    """BatchNorm mixes examples of a batch: Opacus refuses it, and raikit says which layer and how to fix it."""
    import torch
    import transformers

    tok = tiny.word_tokenizer(FILLERS)
    model = tiny.tiny_classifier(tok)
    model.classifier = torch.nn.Sequential(torch.nn.BatchNorm1d(32), torch.nn.Linear(32, 2))
    adapter = wrap_model(model, tok, kind="classifier", device="cpu", progress=False)
    _random_texts(40, seed=2).to_csv(tmp_path / "data.csv", index=False)
    from raikit.audits.errors import RaikitInputError

    with pytest.raises(RaikitInputError) as info:
        run_privacy(adapter, PrivacyOptions(data=str(tmp_path / "data.csv"), epochs=1, batch_size=8, baseline=False),
                    RunContext(seed=0, base_dir=tmp_path, progress=False))
    message = str(info.value)
    assert "\n" not in message and "BatchNorm" in message and "ModuleValidator.fix" in message
    assert isinstance(transformers.__version__, str)


@pytest.fixture(scope="module")
def canary_model(tmp_path_factory):
    """A tiny classifier on 480 random-label texts ``record id<k>`` that can memorise exactly what it trains on.

    As in ``memorise``, the vocabulary knows the id words the model will train on and maps the others to
    [UNK]: the section draws 100 canaries from the training split and trains on each with probability 1/2
    (seeded, ``privacy/_one_run.draw_canaries``); the fixture makes the same draw, so a left-out canary's id word is [UNK]
    and the model knows nothing of it. A quarter of the other training texts' id words are [UNK] too, so the
    model learns 50/50 for [UNK]. The test checks that its draw is the section's (the same inserted count)."""
    from raikit.audits.textdata import read_labelled_texts
    from raikit.privacy._section import _fractions

    root = tmp_path_factory.mktemp("one_run")
    _random_texts(480, seed=2).to_csv(root / "data.csv", index=False)
    options = PrivacyOptions(**{**OPTIONS, "canaries": 100})
    train = read_labelled_texts(root / "data.csv", group_column="group").split(
        fractions=_fractions(options), seed=0)["train"]
    canaries, inserted = draw_canaries(len(train), 100, seed=0)
    left_out = set(canaries[~inserted].tolist())
    others = [i for i in range(len(train)) if i not in set(canaries.tolist())]
    known = [i for i in canaries[inserted].tolist()] + [i for k, i in enumerate(others) if k % 4]
    assert not left_out & set(known)
    tok = tiny.word_tokenizer(["record"] + [train["text"].iloc[i] for i in known])
    model = tiny.tiny_classifier(tok, hidden_size=64, intermediate_size=128)
    return root, tok, model, int(inserted.sum())


def test_one_run_audit_of_a_memorising_model_is_well_above_one_and_of_an_epsilon_one_model_at_most_one(
        canary_model):
    """Issue 21 item 4, on trained models: the section's one-run audit (100 canaries from the training split,
    each trained on with probability 1/2) gives the non-private baseline, which memorises random labels, a 95%
    lower bound well above 1, and the model trained at epsilon 1 a bound of at most 1 (its accountant's)."""
    root, tok, model, inserted = canary_model
    adapter = wrap_model(model, tok, kind="classifier", device="cpu", progress=False)
    options = PrivacyOptions(data=str(root / "data.csv"), **{**OPTIONS, "canaries": 100, "epsilon": 1.0})
    result = run_privacy(adapter, options, RunContext(seed=0, base_dir=root, progress=False))
    m = result.metrics
    base, dp = m["baseline.one_run_epsilon_lower_bound"], m["dp.one_run_epsilon_lower_bound"]
    assert base.details["canaries"] == 100 and base.details["inserted"] == inserted  # the fixture's draw
    assert base.value > 1.5, base
    assert base.value <= base.details["perfect_attack_bound"] == m["one_run.perfect_attack_bound"].value
    assert m["dp.epsilon"].value <= 1.0
    assert dp.value <= 1.0 and dp.details["within_guarantee"] is True, dp
    assert dp.details["can_contradict_accountant"] is True  # 100 canaries could show a leak above epsilon 1
