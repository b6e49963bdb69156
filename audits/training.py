"""Fine-tune a sequence classifier, with or without differential privacy (Opacus).

One training loop serves every retraining capability: the non-private baseline and the DP model of
``raikit.privacy``, and each client's local training in ``raikit.federated``. It takes an ordinary
transformers model and tokenizer, never mutates them (it trains a copy), and returns the trained
model with what the training did (steps, time, loss and, under DP, everything Opacus reports).

Under DP the loop uses Opacus's ``PrivacyEngine.make_private_with_epsilon``: Poisson sampling of
logical batches, ``BatchMemoryManager`` for smaller physical batches, per-sample gradients by hooks
or ghost clipping. The HuggingFace pitfalls are handled here: BERT-style models get explicit
``token_type_ids`` and contiguous ``position_ids`` of shape (batch, length), which Opacus's
per-sample gradients need. The planned number of steps is the one the noise was calibrated for; the
epsilon spent is checked against the target after training and a run that exceeded it fails.
"""
from __future__ import annotations

import contextlib
import copy
import inspect
import math
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from raikit.audits.errors import RaikitInputError, RunFailedError

__all__ = ["TrainSettings", "DPSettings", "TrainedModel", "fine_tune", "trainable_scope", "check_dp_compatible",
           "TRAIN_SCOPES", "ACCOUNTANTS", "GRAD_SAMPLE_MODES", "REFUSED_ACCOUNTANTS", "MAX_EPSILON",
           "accountant_problem", "epsilon_problem", "unwrap", "forward_inputs"]

TrainScope = Literal["all", "last_layers", "lora"]
TRAIN_SCOPES: tuple[str, ...] = ("all", "last_layers", "lora")
ACCOUNTANTS: tuple[str, ...] = ("prv", "rdp")
#: accountants Opacus has that raikit refuses for a reported epsilon, with why
REFUSED_ACCOUNTANTS: dict[str, str] = {
    "gdp": "Opacus's GDP accountant (a central-limit approximation) under-reports epsilon (0.994 where PRV and PLD "
           "give 2.345) and its calibration can fail; use prv or rdp"}
#: the largest target epsilon accepted: above it the guarantee means nothing (e^100) and Opacus's noise search
#: does not end (it bisects towards a vanishing noise multiplier)
MAX_EPSILON = 100.0
GRAD_SAMPLE_MODES: tuple[str, ...] = ("hooks", "ghost")
BatchLoss = Callable[[Any, dict[str, torch.Tensor], torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class TrainSettings:
    """Hyperparameters shared by private and non-private training (so their comparison is fair).

    Parameters
    ----------
    epochs : int
        Passes over the training data.
    batch_size : int
        Logical batch size: examples per optimizer step (the expected size under Poisson sampling).
    physical_batch_size : int
        Examples per forward/backward pass; logical batches are split into these.
    learning_rate : float
        AdamW learning rate (constant).
    max_length : int
        Texts are truncated to this many tokens.
    scope : {"all", "last_layers", "lora"}
        Which parameters train: all of them, the last ``last_layers`` transformer layers plus the
        pooler and head, or LoRA adapters (through peft) plus the head.
    last_layers : int
        Layers that train when ``scope = "last_layers"``.
    lora_rank : int
        LoRA rank when ``scope = "lora"``.
    seed : int
        Seeds initialisation and batch order; under DP it seeds Poisson sampling and the noise only with
        ``DPSettings.reproducible_noise``.
    """

    epochs: int = 1
    batch_size: int = 64
    physical_batch_size: int = 32
    learning_rate: float = 5e-4
    max_length: int = 64
    scope: TrainScope = "all"
    last_layers: int = 2
    lora_rank: int = 8
    seed: int = 0


@dataclass(frozen=True)
class DPSettings:
    """The differential-privacy guarantee to train under.

    Parameters
    ----------
    epsilon, delta : float
        Target (epsilon, delta); the noise multiplier is calibrated so that the planned steps spend
        at most epsilon.
    max_grad_norm : float
        Per-sample gradient clipping norm.
    accountant : {"prv", "rdp"}
        Opacus accountant by name (``gdp`` is refused: it under-reports epsilon).
    grad_sample_mode : {"hooks", "ghost"}
        Per-sample gradients by hooks, or ghost clipping (norms without materialising them).
    poisson_sampling : bool
        Poisson-sampled logical batches (what the accountants assume).
    reproducible_noise : bool
        False (the default): the Poisson sampling and the Gaussian noise draw from generators seeded with a
        fresh 63-bit seed from the operating system's entropy (``secrets``), never recorded, so nobody can
        replay the noise. True: both are seeded from the run seed (a replayable run); the epsilon then does
        not hold against anyone who knows the seed, and the result says so.
    """

    epsilon: float
    delta: float
    max_grad_norm: float = 1.0
    accountant: str = "prv"
    grad_sample_mode: str = "hooks"
    poisson_sampling: bool = True
    reproducible_noise: bool = False


def accountant_problem(accountant: str) -> str:
    """Why ``accountant`` is not accepted for a reported epsilon ("" when it is)."""
    if accountant in REFUSED_ACCOUNTANTS:
        return f"{accountant!r} is refused for a reported epsilon: {REFUSED_ACCOUNTANTS[accountant]}"
    if accountant not in ACCOUNTANTS:
        return f"must be one of {', '.join(ACCOUNTANTS)}, got {accountant!r}"
    return ""


def epsilon_problem(epsilon: Any) -> str:
    """Why ``epsilon`` is not a usable target ("" when it is): a finite number in (0, MAX_EPSILON]."""
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not math.isfinite(epsilon) or epsilon <= 0:
        return f"must be a finite number > 0, got {epsilon!r}"
    if epsilon > MAX_EPSILON:
        return (f"must be at most {MAX_EPSILON:g} (a larger epsilon guarantees nothing, and the noise search for it "
                f"does not end), got {epsilon!r}")
    return ""


def noise_seed(dp: DPSettings, run_seed: int) -> int:
    """The seed of the DP noise and Poisson sampling: the run seed with ``reproducible_noise``, else a fresh
    63-bit seed from the operating system's entropy that is returned to the caller only."""
    import secrets

    return int(run_seed) + 1 if dp.reproducible_noise else secrets.randbits(63)


@dataclass(frozen=True)
class TrainedModel:
    """A trained copy of the model and what its training did.

    Attributes
    ----------
    model : transformers.PreTrainedModel
        A plain model (LoRA adapters merged), in eval mode, on the CPU.
    tokenizer
        The tokenizer (unchanged).
    steps : int
        Optimizer steps taken.
    seconds : float
        Training wall time.
    seconds_per_step : float
        Mean wall time of one optimizer step (one logical batch).
    examples : int
        Training examples.
    final_loss : float
        Mean training loss over the last epoch (under DP an unnoised statistic of the private data: kept out of
        :meth:`describe` and of everything a result shows).
    trainable_parameters : int
        Parameters that were trained.
    dp : dict
        Under DP: epsilon spent, delta, noise multiplier, sample rate, steps, accountant, clipping norm,
        per-sample gradient mode, Poisson sampling; empty without DP.
    """

    model: Any
    tokenizer: Any
    steps: int
    seconds: float
    seconds_per_step: float
    examples: int
    final_loss: float
    trainable_parameters: int
    dp: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """JSON-able facts about the training (the model itself excluded)."""
        # Under DP the training loss is an unnoised statistic of the private examples, outside the epsilon: withheld.
        loss = ({"final_loss_withheld": "unnoised statistic of the private training data, not covered by the epsilon"}
                if self.dp else {"final_loss": round(self.final_loss, 6)})
        return {"steps": self.steps, "seconds": round(self.seconds, 3),
                "seconds_per_step": round(self.seconds_per_step, 4), "examples": self.examples,
                **loss, "trainable_parameters": self.trainable_parameters,
                **({"dp": self.dp} if self.dp else {})}


def _layer_list(model: Any) -> torch.nn.ModuleList | None:
    """The transformer's list of layers: the longest ``ModuleList`` in the base model."""
    base = getattr(model, "base_model", model)
    lists = [m for m in base.modules() if isinstance(m, torch.nn.ModuleList) and len(m) > 0]
    return max(lists, key=len) if lists else None


def trainable_scope(model: Any, settings: TrainSettings) -> Any:
    """Set ``requires_grad`` (or wrap in LoRA adapters) for ``settings.scope``; returns the model to train.

    Raises
    ------
    RaikitInputError
        ``last_layers`` out of range, or a model whose layers cannot be found.
    """
    if settings.scope == "all":
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    if settings.scope == "last_layers":
        layers = _layer_list(model)
        if layers is None:
            raise RaikitInputError("key 'scope': no transformer layer list found in the model; use scope = \"all\"")
        if not 1 <= settings.last_layers <= len(layers):
            raise RaikitInputError(f"key 'last_layers': must be between 1 and {len(layers)} (the model's layers), "
                                   f"got {settings.last_layers}")
        frozen = {id(p) for layer in list(layers)[: len(layers) - settings.last_layers] for p in layer.parameters()}
        embeddings = model.get_input_embeddings()
        base = getattr(model, "base_model", model)
        for name, module in base.named_children():  # the embedding block (word, position, type, norm)
            if any(p is embeddings.weight for p in module.parameters()):
                frozen |= {id(p) for p in module.parameters()}
        frozen.add(id(embeddings.weight))
        for p in model.parameters():
            p.requires_grad_(id(p) not in frozen)
        return model
    if settings.scope == "lora":
        try:
            import peft
        except ImportError as exc:
            raise RaikitInputError("key 'scope': scope = \"lora\" needs peft (pip install peft)") from exc
        for p in model.parameters():
            p.requires_grad_(False)
        try:
            config = peft.LoraConfig(task_type=peft.TaskType.SEQ_CLS, r=settings.lora_rank,
                                     lora_alpha=2 * settings.lora_rank, lora_dropout=0.0)
            return peft.get_peft_model(model, config)
        except ValueError:  # no default target modules known for this architecture
            config = peft.LoraConfig(task_type=peft.TaskType.SEQ_CLS, r=settings.lora_rank,
                                     lora_alpha=2 * settings.lora_rank, lora_dropout=0.0, target_modules="all-linear")
            return peft.get_peft_model(model, config)
    raise RaikitInputError(f"key 'scope': unknown scope {settings.scope!r}; use one of {', '.join(TRAIN_SCOPES)}")


def check_dp_compatible(model: Any) -> None:
    """Raise a one-line error listing the layers Opacus cannot compute per-sample gradients for.

    Uses ``opacus.validators.ModuleValidator.validate(model, strict=False)`` (every finding at once).
    """
    from opacus.validators import ModuleValidator

    errors = ModuleValidator.validate(model, strict=False)
    if errors:
        found = "; ".join(dict.fromkeys(str(e).strip().splitlines()[0] for e in errors))
        raise RaikitInputError(f"key 'model': Opacus cannot train this model privately ({found}); replace those "
                               "layers (e.g. BatchNorm by GroupNorm: opacus.validators.ModuleValidator.fix(model)) "
                               "or pick a model without them")


class _Batches(torch.utils.data.Dataset):
    """Token ids padded to ``max_length`` (trimmed per batch), attention masks and labels."""

    def __init__(self, tokenizer: Any, texts: Sequence[str], labels: Sequence[int], max_length: int) -> None:
        enc = tokenizer(list(texts), truncation=True, max_length=max_length, padding="max_length",
                        return_tensors="pt")
        self.ids = enc["input_ids"]
        self.mask = enc["attention_mask"]
        self.labels = torch.as_tensor(np.array(labels, dtype=np.int64, copy=True))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.ids[i], self.mask[i], self.labels[i]


class _WithExtras(torch.nn.Module):
    """The model and the modules trained beside it (an adversary) as one module, so that under DP Opacus computes
    and clips the per-example gradient of all their parameters together; its forward is the model's."""

    def __init__(self, model: torch.nn.Module, extras: Sequence[torch.nn.Module]) -> None:
        super().__init__()
        self.model = model
        self.extras = torch.nn.ModuleList(extras)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)


def unwrap(model: Any) -> Any:
    """The trained transformers model inside Opacus's wrappers and the container of :func:`fine_tune`'s extras."""
    while hasattr(model, "_module"):  # Opacus GradSampleModule
        model = model._module
    return model.model if isinstance(model, _WithExtras) else model


def forward_inputs(model: Any, ids: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Forward kwargs, trimmed to the longest text of the batch; explicit position and type ids where accepted."""
    length = max(int(mask.sum(1).max()), 1)
    ids, mask = ids[:, :length].contiguous(), mask[:, :length].contiguous()  # ghost clipping views input ids
    kwargs = {"input_ids": ids, "attention_mask": mask}
    target = unwrap(model)
    params = inspect.signature(getattr(target, "get_base_model", lambda: target)().forward).parameters
    if "token_type_ids" in params:
        kwargs["token_type_ids"] = torch.zeros_like(ids)
    if "position_ids" in params:
        kwargs["position_ids"] = _position_ids(target, ids)
    return kwargs


def _position_ids(model: Any, ids: torch.Tensor) -> torch.Tensor:
    """The position ids the model computes itself at inference, of shape (batch, length) and contiguous (Opacus
    needs the batch dimension): RoBERTa-style embeddings (RoBERTa, XLM-R, CamemBERT, ...) number real tokens from
    ``padding_idx + 1`` and give padding ``padding_idx``; every other model counts ``0 .. L-1``."""
    for module in model.modules():
        make = getattr(type(module), "create_position_ids_from_input_ids", None)
        if make is not None and getattr(module, "padding_idx", None) is not None:
            return make(ids, module.padding_idx).contiguous()
    return torch.arange(ids.shape[1], device=ids.device).repeat(ids.shape[0], 1)


@contextlib.contextmanager
def _quiet_opacus() -> Iterator[None]:
    """Silence Opacus advice that raikit acts on or records itself: secure RNG off (recorded), the RDP alpha
    range, and the full-backward-hook notice when the lowest trained layer's input needs no gradient."""
    with warnings.catch_warnings():
        for message in (".*[Ss]ecure RNG.*", "Optimal order is the", "Full backward hook is firing"):
            warnings.filterwarnings("ignore", message=message)
        yield


def _release_opacus(work: Any) -> Any:
    """The plain model back from Opacus's wrapper, holding no training state (the extras' neither).

    ``to_standard_module`` removes the hooks and every per-parameter attribute Opacus lists
    (``grad_sample``, ``_norm_sample``, ...); what it leaves is dropped here: the captured activations and
    batch length on each module and the optimizer's ``summed_grad`` on each parameter.
    """
    if hasattr(work, "to_standard_module"):
        work = work.to_standard_module()
    for module in work.modules():
        for name in ("activations", "max_batch_len"):
            if name in module.__dict__:
                delattr(module, name)
    for p in work.parameters():
        if "summed_grad" in p.__dict__:
            delattr(p, "summed_grad")
    return unwrap(work)


def _empty_noise_step(optimizer: Any, grad_sample_mode: str) -> None:
    """Take the DP optimizer's step for an empty batch: zero per-sample gradients, so clipping adds nothing and
    the update is the Gaussian noise alone, as the accountant (which counts this step) assumes."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            if not p.requires_grad:
                continue
            if grad_sample_mode == "ghost":
                p.grad = torch.zeros_like(p)
            else:
                p.grad_sample = torch.zeros((0, *p.shape), dtype=p.dtype, device=p.device)
    optimizer.step()
    optimizer.zero_grad()


def dp_steps_per_epoch(examples: int, settings: TrainSettings) -> int:
    """Logical batches (optimizer steps) per epoch as :func:`fine_tune` plans them under DP; Opacus's Poisson
    sample rate is its inverse."""
    return math.ceil(examples / max(1, min(settings.batch_size, examples)))


def dp_noise_multiplier(dp: DPSettings, *, examples: int, settings: TrainSettings, repeats: int) -> float:
    """The Gaussian noise multiplier that keeps ``repeats`` calls of :func:`fine_tune` (each ``settings.epochs``
    epochs over ``examples`` examples) within ``dp.epsilon`` at ``dp.delta`` in total, calibrated by Opacus
    (``get_noise_multiplier``, the same search ``make_private_with_epsilon`` runs) with ``dp.accountant``.
    Pass it to each call as ``noise_multiplier`` with the previous calls' ``dp_history``."""
    from opacus.accountants.utils import get_noise_multiplier

    per_epoch = dp_steps_per_epoch(examples, settings)
    with _quiet_opacus():
        return float(get_noise_multiplier(target_epsilon=dp.epsilon, target_delta=dp.delta, sample_rate=1 / per_epoch,
                                          steps=repeats * settings.epochs * per_epoch, accountant=dp.accountant))


def dp_epsilon(history: Sequence[Sequence[float]], *, delta: float, accountant: str) -> float:
    """Epsilon at ``delta`` of an Opacus accountant history (``(noise_multiplier, sample_rate, steps)`` rows)."""
    from opacus.accountants import create_accountant

    acc = create_accountant(accountant)
    acc.history = [(float(nm), float(q), int(n)) for nm, q, n in history]
    with _quiet_opacus():
        return float(acc.get_epsilon(delta))


@dataclass
class _Step:
    """The training loop's running state: the objective, the optimizer steps taken, this epoch's losses."""

    objective: Callable[[Any, dict[str, torch.Tensor], torch.Tensor], torch.Tensor]
    bar: Any
    count: int = 0
    losses: list[float] = field(default_factory=list)

    def taken(self) -> None:
        self.count += 1
        self.bar.update(1)


def _objective(criterion: Any, batch_loss: Any) -> Callable[[Any, dict[str, torch.Tensor], torch.Tensor], torch.Tensor]:
    """``loss(model, inputs, labels)``: the custom objective, else the criterion on the logits."""
    if batch_loss is not None:
        return batch_loss
    return lambda model, inputs, y: criterion(model(**inputs).logits, y)


def _proximal_term(trainable: list[torch.nn.Parameter], anchors: list[torch.Tensor],
                   mu: float) -> Callable[[], Any] | None:
    """FedProx's ``mu / 2 * ||w - w_global||^2`` over the trained parameters, or None without an anchor."""
    if not anchors:
        return None
    return lambda: (mu / 2) * sum((p - a).pow(2).sum() for p, a in zip(trainable, anchors))


def _dp_epoch(work: Any, optimizer: Any, loader: Any, step: _Step, *, physical: int, device: torch.device,
              grad_sample_mode: str) -> None:
    """One epoch under Opacus: logical batches split into physical ones by ``BatchMemoryManager``; an empty
    Poisson batch is still a step (the noise alone is the update)."""
    from opacus.utils.batch_memory_manager import BatchMemoryManager

    with BatchMemoryManager(data_loader=loader, max_physical_batch_size=physical, optimizer=optimizer) as batches:
        for ids, mask, y in batches:
            if len(y) == 0:
                _empty_noise_step(optimizer, grad_sample_mode)
            else:
                ids, mask, y = ids.to(device), mask.to(device), y.to(device)
                loss = step.objective(work, forward_inputs(work, ids, mask), y)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
                step.losses.append(float(loss.detach()))
            if not optimizer._is_last_step_skipped:
                step.taken()


def _plain_epoch(work: Any, optimizer: Any, loader: Any, step: _Step, *, physical: int, device: torch.device,
                 proximal: Callable[[], Any] | None) -> None:
    """One epoch without DP: each logical batch's gradient accumulated over its physical parts, each part's
    loss (and FedProx term) weighted by its share of the batch."""
    for ids, mask, y in loader:
        for start in range(0, len(y), physical):
            part = slice(start, start + physical)
            pi, pm, py = ids[part].to(device), mask[part].to(device), y[part].to(device)
            share = len(py) / len(y)
            loss = step.objective(work, forward_inputs(work, pi, pm), py) * share
            if proximal is not None:
                loss = loss + proximal() * share
            loss.backward()
            step.losses.append(float(loss.detach()) / share)
        optimizer.step()
        optimizer.zero_grad()
        step.taken()


def _dp_facts(engine: Any, optimizer: Any, dp: DPSettings, *, planned: int, dp_history: Sequence[Sequence[float]],
              fixed_noise: bool) -> dict[str, Any]:
    """What the accountant says the training spent (raising if above the target), for ``TrainedModel.dp``."""
    with _quiet_opacus():
        spent = float(engine.get_epsilon(dp.delta))
    history = engine.accountant.history
    facts = {
        "epsilon": spent, "target_epsilon": dp.epsilon, "delta": dp.delta,
        "noise_multiplier": float(optimizer.noise_multiplier), "sample_rate": float(history[-1][1]),
        "steps": int(sum(h[2] for h in history)), "accountant": engine.accountant.mechanism(),
        "max_grad_norm": dp.max_grad_norm, "grad_sample_mode": dp.grad_sample_mode,
        "poisson_sampling": dp.poisson_sampling, "planned_steps": int(planned), "secure_mode": False,
        "reproducible_noise": dp.reproducible_noise,
        "noise_seed": ("the run seed (reproducible_noise = true): the epsilon does not hold against anyone "
                       "who knows it" if dp.reproducible_noise else
                       "fresh 63-bit seed from the OS entropy, not recorded anywhere"),
        # (the accountant merges a step into the last history row when noise and rate are unchanged)
        "steps_this_call": int(sum(h[2] for h in history) - sum(int(h[2]) for h in dp_history)),
        "history": [[float(nm), float(q), int(n)] for nm, q, n in history],
        "noise": "fixed" if fixed_noise else "calibrated to the target for this call",
    }
    if spent > dp.epsilon * (1 + 1e-9):
        raise RunFailedError(f"DP training spent epsilon {spent:.4f}, above the target {dp.epsilon}; the model "
                             "is discarded")
    return facts


def fine_tune(model: Any, tokenizer: Any, texts: Sequence[str], labels: Sequence[int], *,
              settings: TrainSettings, dp: DPSettings | None = None, device: str | torch.device = "cpu",
              progress: bool = True, desc: str = "training", proximal_mu: float = 0.0,
              noise_multiplier: float | None = None,
              dp_history: Sequence[Sequence[float]] = (), batch_loss: BatchLoss | None = None,
              extra_modules: Sequence[torch.nn.Module] = (), in_place: bool = False) -> TrainedModel:
    """Fine-tune a copy of a sequence classifier on labelled texts.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        A ``...ForSequenceClassification`` model; it is copied, never changed (unless ``in_place``).
    tokenizer
        Its tokenizer.
    texts, labels : sequence
        Training texts and integer class labels.
    settings : TrainSettings
        Hyperparameters.
    dp : DPSettings, optional
        Train with differential privacy (Opacus); None trains without.
    device : str or torch.device
        Where to train.
    progress : bool
        Show a progress bar.
    desc : str
        Progress bar label.
    proximal_mu : float
        FedProx (Li et al., MLSys 2020): adds ``mu / 2 * ||w - w0||^2`` over the trained parameters to
        each step's loss, ``w0`` being the starting weights (the global model of a federated round).
        0 (the default) trains exactly as without it; not available under DP.
    noise_multiplier : float, optional
        Under DP, train with this fixed noise multiplier (``make_private``) instead of calibrating one to
        ``dp.epsilon`` for this call alone (``make_private_with_epsilon``, the default): for training split
        over several calls (federated rounds) whose total must stay within ``dp.epsilon``; see
        :func:`dp_noise_multiplier`.
    dp_history : sequence of (noise_multiplier, sample_rate, steps)
        Under DP, the accountant history of earlier calls on the same examples (``dp["history"]`` of the
        previous result): the accountant continues from it, so ``dp["epsilon"]`` is the epsilon composed
        over every step of every call, by the accountant itself.
    batch_loss : callable, optional
        ``batch_loss(model, inputs, labels) -> loss`` replaces the cross-entropy of ``model(**inputs).logits``
        against ``labels`` (the mean over the physical batch): a training objective of a mitigation method
        (counterfactual logit pairing, an adversary's loss, masked or causal language modelling). ``labels``
        are the values given for the batch's texts, so a caller that passes row numbers can look up any
        per-text data. Not available with ``grad_sample_mode = "ghost"``. Under DP the loss must be the mean
        of per-text terms over the physical batch, and every forward pass it makes (a text's swapped copy, an
        adversary) must keep the batch's rows in order, one per text: Opacus then adds each pass's per-example
        gradient to that text's before clipping, so a text and what is computed from it are one DP unit.
    extra_modules : sequence of torch.nn.Module
        Modules outside ``model`` that ``batch_loss`` trains too (an adversary head): moved to ``device``,
        put in train mode and optimised with the model's parameters. Under DP they are wrapped with the model
        in one module, so their per-example gradients are clipped and noised with the model's.
    in_place : bool
        Train ``model`` itself instead of a copy (a federated client's working model, which loads the next
        global weights anyway): no copy of the weights is made. The returned ``model`` is then ``model``
        (float32, on the CPU, in eval mode) or, for LoRA, the plain model the adapters were merged into.

    Returns
    -------
    TrainedModel

    Raises
    ------
    RaikitInputError
        A model Opacus cannot train, or settings that do not fit the data.
    RunFailedError
        If the privacy spent ended above the target (never expected; checked, not assumed).
    """
    from raikit.audits.progress import progress_bar

    if len(texts) != len(labels) or not len(texts):
        raise RaikitInputError(f"training needs texts and labels of equal, non-zero length "
                               f"(got {len(texts)} and {len(labels)})")
    if dp is not None:  # every input check before the model is touched (it may be trained in place)
        for problem, key in ((accountant_problem(dp.accountant), "accountant"), (epsilon_problem(dp.epsilon), "epsilon")):
            if problem:
                raise RaikitInputError(f"key {key!r}: {problem}")
        if batch_loss is not None and dp.grad_sample_mode == "ghost":
            raise RaikitInputError("key 'grad_sample_mode': a custom training objective needs grad_sample_mode = "
                                   "\"hooks\"")
        if proximal_mu:
            raise RaikitInputError("key 'proximal_mu': the FedProx term is not available with DP training")
    torch.manual_seed(settings.seed)
    device = torch.device(device)
    work = (model if in_place else copy.deepcopy(model)).to(device=device, dtype=torch.float32)
    work = trainable_scope(work, settings)
    work.train()
    trainable = [p for p in work.parameters() if p.requires_grad]
    n_trainable = int(sum(p.numel() for p in trainable))
    data = _Batches(tokenizer, texts, labels, settings.max_length)
    generator = torch.Generator().manual_seed(settings.seed)
    seed_noise = 0
    if dp is not None:
        # The noise and the batch sampling draw from generators seeded by noise_seed: fresh OS entropy that is
        # never recorded, unless reproducible_noise asks for the run seed (Opacus's secure_mode needs torchcsprng).
        seed_noise = noise_seed(dp, settings.seed)
        generator = torch.Generator().manual_seed(seed_noise ^ 0x5DEECE66D)  # Opacus's Poisson sampler follows it
    logical = min(settings.batch_size, len(data))
    physical = max(1, min(settings.physical_batch_size, logical))
    loader = torch.utils.data.DataLoader(data, batch_size=logical, shuffle=dp is None or not dp.poisson_sampling,
                                         generator=generator)
    extra = [p for module in extra_modules for p in module.to(device).train().parameters() if p.requires_grad]
    if extra and dp is not None:
        work = _WithExtras(work, extra_modules)
    optimizer = torch.optim.AdamW(trainable + extra, lr=settings.learning_rate, weight_decay=0.0)
    anchors = [p.detach().clone() for p in trainable] if proximal_mu else []
    criterion: Any = torch.nn.CrossEntropyLoss()
    engine = None
    if dp is not None:
        from opacus import PrivacyEngine

        check_dp_compatible(work)
        with _quiet_opacus():
            engine = PrivacyEngine(accountant=dp.accountant, secure_mode=False)
            common = dict(module=work, optimizer=optimizer, criterion=criterion, data_loader=loader,
                          max_grad_norm=dp.max_grad_norm, poisson_sampling=dp.poisson_sampling,
                          grad_sample_mode=dp.grad_sample_mode,
                          noise_generator=torch.Generator(device=device).manual_seed(seed_noise))
            if noise_multiplier is None:
                made = engine.make_private_with_epsilon(**common, target_epsilon=dp.epsilon, target_delta=dp.delta,
                                                        epochs=settings.epochs)
            else:
                made = engine.make_private(**common, noise_multiplier=float(noise_multiplier))
            # the accountant continues from the earlier calls: get_epsilon composes over all their steps
            engine.accountant.history = [(float(nm), float(q), int(n)) for nm, q, n in dp_history]
        if dp.grad_sample_mode == "ghost":
            work, optimizer, criterion, loader = made
        else:
            work, optimizer, loader = made
    try:
        planned = settings.epochs * len(loader)
        bar = progress_bar(total=planned, desc=desc, unit="step", disable=not progress)
        step = _Step(objective=_objective(criterion, batch_loss), bar=bar)
        started = time.perf_counter()
        with _quiet_opacus():
            for _ in range(settings.epochs):
                step.losses = []
                if dp is not None:
                    _dp_epoch(work, optimizer, loader, step, physical=physical, device=device,
                              grad_sample_mode=dp.grad_sample_mode)
                else:
                    proximal = _proximal_term(trainable, anchors, proximal_mu)
                    _plain_epoch(work, optimizer, loader, step, physical=physical, device=device, proximal=proximal)
            seconds = time.perf_counter() - started
            bar.close()
        facts: dict[str, Any] = {}
        if engine is not None:
            facts = _dp_facts(engine, optimizer, dp, planned=planned, dp_history=dp_history,
                              fixed_noise=noise_multiplier is not None)
    finally:
        if engine is not None:  # also when training fails: an in-place model must not keep the hooks
            work = _release_opacus(work)
    if hasattr(work, "merge_and_unload"):  # LoRA: fold the adapters into a plain model
        work = work.merge_and_unload()
    for p in work.parameters():
        p.requires_grad_(False)
    work = work.to("cpu").eval()
    return TrainedModel(model=work, tokenizer=tokenizer, steps=step.count, seconds=seconds,
                        seconds_per_step=seconds / max(step.count, 1), examples=len(data),
                        final_loss=float(np.mean(step.losses)) if step.losses else math.nan,
                        trainable_parameters=n_trainable, dp=facts)
