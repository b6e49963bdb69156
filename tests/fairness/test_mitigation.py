"""Known answers for ``[mitigation]``: each method lowers a planted bias by a stated margin.

* Classifier: the planted classifier of ``_probe_models`` labels neutral texts by the gender word alone
  (flip rate 1.0 on them). Retrained on its own biased labels, plain fine-tuning keeps the cue (baseline);
  cda, clp and adversarial must bring the neutral texts' flip rate to at most 0.5.
* Masked LM: the planted MLM of ``_pairs_models`` ties jobs to gender (stereotype log-odds about 2.2).
  Continued pre-training on the same planted corpus keeps it (baseline); cda must bring it below 0.3,
  dropout (Webster et al. 2020) must at least halve it.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _pairs_models as pairs  # noqa: E402
import _probe_models as probes  # noqa: E402
from raikit.audits import wrap_model  # noqa: E402
from raikit.audits.errors import RaikitInputError  # noqa: E402
from raikit.audits.sections import RunContext  # noqa: E402
from raikit.fairness.classifier import counterfactual_invariance, load_swaps  # noqa: E402
from raikit.fairness.mitigation import MitigationOptions, augment, check, run_mitigation  # noqa: E402

CLF = dict(held_out=0.25, batch_size=16, physical_batch_size=16, learning_rate=3e-3, max_length=16)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("mitigation")
    (root / "swaps.json").write_text(json.dumps({"gender": [["he", "she"], ["man", "woman"]]}), encoding="utf-8")
    (root / "mlm_swaps.json").write_text(json.dumps({"gender": [list(p) for p in zip(pairs.MALE, pairs.FEMALE)]}),
                                         encoding="utf-8")
    texts, labels = probes.classifier_corpus(True)
    pd.DataFrame({"text": texts * 2, "label": [["negative", "positive"][y] for y in labels] * 2}).to_csv(
        root / "biased.csv", index=False)
    (root / "planted.txt").write_text("\n".join(pairs.corpus("planted")), encoding="utf-8")
    return root


@pytest.fixture(autouse=True)
def _one_thread():
    with pairs.one_thread():
        yield


def _neutral_flip_rate(model, tokenizer, swaps) -> float:
    neutral = [t for t in probes.classifier_corpus(True)[0] if any(w in t for w in probes.NEUTRAL)]
    adapter = wrap_model(model, tokenizer, kind="classifier", device="cpu", progress=False)
    return counterfactual_invariance(adapter, neutral, swaps=swaps).flip_rate


def _stereotype_log_odds(model, tok) -> float:
    """Mean over the corpus' jobs of log P(own-gender subject) - log P(other gender) at the masked subject."""
    out = []
    with torch.no_grad():
        for template in pairs.TEMPLATES:
            for jobs, sign in ((pairs.MALE_JOBS, 1), (pairs.FEMALE_JOBS, -1)):
                for job in jobs:
                    enc = tok(template.format(s=tok.mask_token, o=job), return_tensors="pt")
                    pos = int((enc["input_ids"][0] == tok.mask_token_id).nonzero()[0])
                    lp = model.eval()(**enc).logits[0, pos].log_softmax(-1)
                    male = lp[tok.convert_tokens_to_ids(pairs.MALE)].logsumexp(0)
                    female = lp[tok.convert_tokens_to_ids(pairs.FEMALE)].logsumexp(0)
                    out.append(sign * float(male - female))
    return float(np.mean(out))


def test_augment_is_two_sided_and_keeps_labels():
    from raikit.fairness.classifier import SwapList

    swaps = [SwapList(axis="gender", groups=("male", "female"), tuples=(("actor", "actress"), ("he", "she")))]
    texts, labels, source = augment(["He met an actress.", "No group here."], np.array([1, 0]), swaps)
    assert texts == ["He met an actress.", "She met an actor.", "No group here."]
    assert labels.tolist() == [1, 1, 0] and source.tolist() == [0, 0, 1]


@pytest.mark.parametrize("method, extra", [("cda", {"epochs": 10, "baseline": True}), ("clp", {"epochs": 10}),
                                           ("adversarial", {"epochs": 30, "adversary_weight": 10.0})])
def test_each_classifier_method_removes_the_planted_cue(files, method, extra):
    planted = probes.classifier(True)
    swaps = load_swaps(files / "swaps.json")
    assert _neutral_flip_rate(planted.model, planted.tokenizer, swaps) == 1.0
    options = MitigationOptions(method=method, data=str(files / "biased.csv"), swaps=str(files / "swaps.json"),
                                **{**CLF, **extra})
    result = run_mitigation(planted, options, RunContext(seed=0, progress=False))
    after = _neutral_flip_rate(result.models[method].model, planted.tokenizer, swaps)
    assert after <= 0.5, f"{method} left a flip rate of {after} on the neutral texts"
    assert result.models[method].description["method"] == method
    assert f"{method}.accuracy_change" in result.metrics and result.metrics[f"{method}.accuracy_change"].ci95
    assert result.details["held_out_verdict"].startswith(f"{method}: held-out flip rate")
    if "baseline" in result.models:  # the same fine-tuning without the mitigation keeps the cue
        assert _neutral_flip_rate(result.models["baseline"].model, planted.tokenizer, swaps) >= 0.8


@pytest.mark.parametrize("method, limit", [("cda", 0.3), ("dropout", None)])
def test_each_lm_method_lowers_the_planted_masked_lm_association(files, method, limit):
    planted = pairs.trained_mlm("planted")
    before = _stereotype_log_odds(planted.model, planted.tokenizer)
    assert before > 1.5
    options = MitigationOptions(method=method, data=str(files / "planted.txt"), swaps=str(files / "mlm_swaps.json"),
                                held_out=0.2, epochs=15, batch_size=16, physical_batch_size=16, learning_rate=3e-3,
                                max_length=16, mask_probability=0.3, baseline=method == "dropout")
    result = run_mitigation(planted, options, RunContext(seed=0, progress=False))
    after = _stereotype_log_odds(result.models[method].model, planted.tokenizer)
    assert after < (limit if limit is not None else before / 2), (method, before, after)
    assert result.models[method].description["kind"] == "masked_lm"
    if method == "dropout":
        # continued pre-training with the model's own (zero) dropout keeps the association: the dropout did it
        assert _stereotype_log_odds(result.models["baseline"].model, planted.tokenizer) > 1.5
        assert result.models[method].model.config.hidden_dropout_prob == 0.0  # saved with its own dropout


def test_cda_under_dp_reports_its_epsilon(files):
    planted = probes.classifier(True)
    options = MitigationOptions(method="cda", data=str(files / "biased.csv"), swaps=str(files / "swaps.json"),
                                dp=True, epsilon=4.0, epochs=1, **CLF)
    result = run_mitigation(planted, options, RunContext(seed=0, progress=False))
    assert 0 < result.metrics["cda.epsilon"].value <= 4.0
    assert any("group of k + 1" in n for n in result.notes)


def _dp_objective(method, planted, texts, labels, swaps, container):
    """The clp or adversarial training objective of ``run_mitigation`` over ``texts``, its adversary in ``container``."""
    from raikit.fairness.classifier import counterfactuals
    from raikit.fairness.mitigation import _adversarial_loss, _clp_loss, swap_groups

    if method == "clp":
        partner = [(cfs[0]["counterfactual"] if cfs else None) for cfs in (counterfactuals(t, swaps) for t in texts)]
        return _clp_loss(planted.tokenizer, labels, texts, partner, weight=1.0, max_length=16)
    group_of, names = swap_groups(texts, swaps)
    groups = np.array([names.index(g) if g in names else -1 for g in group_of])
    return _adversarial_loss(labels, groups, container.extras[0])


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")  # the embeddings' input needs no gradient
@pytest.mark.parametrize("method", ["clp", "adversarial"])
def test_under_dp_a_text_with_its_pair_or_adversary_term_is_one_per_example_gradient(files, method):
    """What Opacus clips per example under DP is each text's own gradient of the whole objective: for clp the
    text's and its swapped copy's pass together, for adversarial the task and the adversary term, with the
    adversary's parameters among the clipped ones. Checked against each text's gradient computed alone."""
    import copy

    from opacus import GradSampleModule

    from raikit.audits.training import _WithExtras, forward_inputs
    from raikit.fairness.mitigation import GradientReversal

    planted = probes.classifier(True)
    swaps = load_swaps(files / "swaps.json")
    # the text without a group word first: a swapped pass over fewer rows would shift every row after it
    texts = ["it was here today.", "he was happy today.", "the woman left today.", "she arrived today."]
    labels = np.array([1, 1, 0, 0])
    model = copy.deepcopy(planted.model).train()
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    torch.manual_seed(0)
    adversary = torch.nn.Sequential(GradientReversal(2.0), torch.nn.Linear(model.config.hidden_size, 2))
    extras = [adversary] if method == "adversarial" else []
    reference = _WithExtras(copy.deepcopy(model), copy.deepcopy(extras))
    private = _WithExtras(model, extras)
    enc = planted.tokenizer(texts, padding=True, return_tensors="pt")
    rows = torch.arange(len(texts))
    gsm = GradSampleModule(private)
    _dp_objective(method, planted, texts, labels, swaps, private)(
        gsm, forward_inputs(gsm, enc["input_ids"], enc["attention_mask"]), rows).backward()
    names = [n for n, p in private.named_parameters() if p.requires_grad]
    per_example = {n: p.grad_sample.detach().clone() for n, p in private.named_parameters() if p.requires_grad}
    gsm.remove_hooks()
    objective = _dp_objective(method, planted, texts, labels, swaps, reference)
    params = dict(reference.named_parameters())
    for i in range(len(texts)):
        reference.zero_grad()
        one = slice(i, i + 1)
        objective(reference, forward_inputs(reference, enc["input_ids"][one], enc["attention_mask"][one]),
                  rows[one]).backward()
        for n in names:
            alone = params[n].grad if params[n].grad is not None else torch.zeros_like(params[n])
            torch.testing.assert_close(per_example[n][i], alone, atol=2e-5, rtol=1e-3, msg=f"{method} {n} text {i}")
    if method == "adversarial":  # the adversary trains on the texts with a group, and is private
        adversary_grads = per_example["extras.0.1.weight"].flatten(1).abs().sum(1)
        assert adversary_grads[0] == 0 and bool((adversary_grads[1:] > 0).all())
    else:  # the pairing term is in the texts' gradients: without it they would differ
        task_only = _WithExtras(copy.deepcopy(reference.model), [])
        task_only.zero_grad()
        one = slice(1, 2)
        out = task_only(**forward_inputs(task_only, enc["input_ids"][one], enc["attention_mask"][one])).logits
        torch.nn.functional.cross_entropy(out, torch.tensor([1])).backward()
        head = "model.classifier.weight"
        assert not torch.allclose(dict(task_only.named_parameters())[head].grad, per_example[head][1], atol=1e-4)


@pytest.mark.parametrize("method", ["clp", "adversarial"])
def test_clp_and_adversarial_train_under_dp_within_the_target_epsilon(files, method):
    planted = probes.classifier(True)
    options = MitigationOptions(method=method, data=str(files / "biased.csv"), swaps=str(files / "swaps.json"),
                                dp=True, epsilon=4.0, epochs=1, **CLF)
    result = run_mitigation(planted, options, RunContext(seed=0, progress=False))
    assert 0 < result.metrics[f"{method}.epsilon"].value <= 4.0
    assert result.details["training"][method]["steps"] > 0
    assert any("Under DP with " + method in n for n in result.notes)
    trained = result.models[method].model
    assert not any(hasattr(m, "activations") for m in trained.modules())  # Opacus's hooks and buffers are gone
    assert not any(m._forward_hooks or m._backward_hooks for m in trained.modules())
    assert any(not torch.equal(a, b) for a, b in zip(trained.state_dict().values(),
                                                     planted.model.state_dict().values()))


@pytest.mark.parametrize("change, message", [
    ({"method": "debias"}, "key 'method': must be one of cda, clp, adversarial, dropout"),
    ({"clp_lambda": -1.0}, "key 'clp_lambda'"),
    ({"hidden_dropout": 1.0}, "key 'hidden_dropout'"),
    # the DP keys are checked as [privacy] checks them, before any model loads
    ({"epsilon": 1000.0}, "key 'epsilon': must be at most 100"),
    ({"accountant": "gdp"}, "key 'accountant': 'gdp' is refused for a reported epsilon"),
])
def test_bad_options_are_named(files, change, message):
    options = MitigationOptions(data=str(files / "biased.csv"), swaps=str(files / "swaps.json"), **change)
    with pytest.raises(RaikitInputError, match=message.replace("(", r"\(")):
        check(options, RunContext(seed=0, progress=False))


def test_a_method_for_another_model_kind_is_refused(files):
    options = MitigationOptions(method="dropout", data=str(files / "biased.csv"), swaps=str(files / "swaps.json"))
    with pytest.raises(RaikitInputError, match="'dropout' applies to masked_lm and causal_lm models"):
        run_mitigation(probes.classifier(True), options, RunContext(seed=0, progress=False))


def test_audit_saves_the_mitigated_model_and_reaudits_it_with_a_paired_table(files, tmp_path):
    from raikit.audits.runner import run_audit

    planted = probes.classifier(True)
    folder = tmp_path / "clf"
    planted.model.save_pretrained(folder)
    planted.tokenizer.save_pretrained(folder)
    neutral = [t for t in probes.classifier_corpus(True)[0] if any(w in t for w in probes.NEUTRAL)]
    (tmp_path / "texts.txt").write_text("\n".join(neutral), encoding="utf-8")
    config = tmp_path / "audit.toml"
    config.write_text(
        f'[run]\nseed = 0\ndevice = "cpu"\n[models.clf]\nid = "clf"\n'
        f'[fairness.counterfactual]\nmodel = "clf"\ntexts = "texts.txt"\nswaps = "{files / "swaps.json"}"\n'
        f'axes = ["gender"]\nn_bootstrap = 200\n'
        f'[mitigation]\nmodel = "clf"\nmethod = "cda"\ndata = "{files / "biased.csv"}"\n'
        f'swaps = "{files / "swaps.json"}"\nheld_out = 0.25\nepochs = 10\nbatch_size = 16\nphysical_batch_size = 16\n'
        f'learning_rate = 3e-3\nmax_length = 16\n[report]\nformats = ["html"]\n', encoding="utf-8")
    outcome = run_audit(config, out_dir=tmp_path / "out", progress=False)
    res, run = outcome.results, outcome.out_dir
    saved = res["sections"]["mitigation"]["retrained_models"]["cda"]
    recipe = json.loads((run / saved["path"] / "raikit.json").read_text())
    assert recipe["method"] == "cda" and recipe["kind"] == "classifier" and recipe["augmented_rows"] > 0
    assert recipe["weights_sha256"] == saved["weights_sha256"]  # issue 22.9: the folder carries its weights' hash
    assert res["sections"]["mitigation.cda.fairness.counterfactual"]["reaudit_of"] == "fairness.counterfactual"
    rows = {r["metric"]: r for r in res["sections"]["mitigation"]["details"]["reaudit"]}
    flip = rows["fairness.counterfactual.flip_rate"]
    assert flip["original"] == 1.0 and flip["cda change"] <= -0.5 and flip["cda change high"] < 0
    assert flip["moved"] is True and flip["paired n"] == len(neutral)
    verdict = res["sections"]["mitigation"]["details"]["verdict"]
    assert verdict.startswith("cda: flip rate 1.00 -> ") and ", accuracy " in verdict
    html = (run / "report.html").read_text()
    import html as html_lib

    assert html.index("Bias mitigation") < html.index(html_lib.escape(verdict))  # the verdict leads the section
