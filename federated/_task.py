"""What a federated run trains on, and the two halves of a round that are not Flower's: local training and
local evaluation.

A :class:`Task` holds the starting classifier, its tokenizer, each client's local training and test
split, and the training settings. Both runtimes build the same task: the simulation from the section's
data in one process, the deployment in each SuperNode's ClientApp and the SuperLink's ServerApp from the
audit config (``raikit federated join --config ... --partition N``), seeded identically, so a client's
partition is the same in both.

Only the parameters that train travel (``exchanged_keys``): for ``scope = "last_layers"`` the last
layers, pooler and head, not the frozen embeddings.
"""
from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from raikit.audits.training import (
    DPSettings, TrainSettings, dp_epsilon, dp_noise_multiplier, fine_tune, trainable_scope,
)

__all__ = ["ClientData", "Task", "exchanged_keys", "local_train", "local_evaluate", "predict", "load_arrays"]


@dataclass(frozen=True)
class ClientData:
    """One client's data: its id, local training split and local test split."""

    client: str
    train: pd.DataFrame
    test: pd.DataFrame


@dataclass
class Task:
    """Everything a ServerApp or ClientApp needs besides Flower's messages.

    Attributes
    ----------
    model, tokenizer
        The starting classifier (never changed; clients train copies).
    label_names : tuple of str
    clients : list of ClientData
        Every client's data in simulation; in a deployed SuperNode only its own is used.
    settings : TrainSettings
        Local training per round (``epochs`` = local epochs).
    dp : DPSettings or None
        Client-side DP: each client's (epsilon, delta) for the whole training, over ``dp_rounds`` rounds.
    dp_rounds : int
        The most rounds a client can train in: its one noise multiplier is calibrated for all their steps.
    proximal_mu : float
        FedProx proximal term weight (0: FedAvg).
    keys : list of str
        Parameter names exchanged with the server.
    device : str
    max_length, batch_size : int
        Inference settings for evaluation.
    """

    model: Any
    tokenizer: Any
    label_names: tuple[str, ...]
    clients: list[ClientData]
    settings: TrainSettings
    dp: DPSettings | None = None
    dp_rounds: int = 1
    proximal_mu: float = 0.0
    keys: list[str] = field(default_factory=list)
    device: str = "cpu"
    max_length: int = 64
    batch_size: int = 64

    def __post_init__(self) -> None:
        if not self.keys:
            self.keys = exchanged_keys(self.model, self.settings)

    def client_index(self, client: str) -> int:
        return [c.client for c in self.clients].index(client)

    def initial_state(self) -> dict[str, torch.Tensor]:
        state = self.model.state_dict()
        return {k: state[k].detach().cpu().clone() for k in self.keys}


def exchanged_keys(model: Any, settings: TrainSettings) -> list[str]:
    """State-dict names of the parameters that train under ``settings.scope`` (all of them for LoRA, whose
    merged adapters change the base weights they sit on)."""
    names = list(model.state_dict().keys())
    if settings.scope == "lora":
        return names
    probe = trainable_scope(copy.deepcopy(model), settings)
    trainable = {n for n, p in probe.named_parameters() if p.requires_grad}
    return [n for n in names if n in trainable]


def load_arrays(model: Any, state: dict[str, torch.Tensor]) -> Any:
    """A copy of ``model`` with the exchanged parameters replaced by ``state``."""
    work = copy.deepcopy(model)
    missing = [k for k in state if k not in work.state_dict()]
    if missing:
        raise ValueError(f"unknown parameter names from the server: {missing[:3]}")
    work.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()}, strict=False)
    return work.eval()


def predict(task: Task, model: Any, texts: list[str]) -> np.ndarray:
    """Predicted class index of each text."""
    from raikit.audits.models import wrap_model

    wrapped = wrap_model(model, task.tokenizer, kind="classifier", name="federated", device=task.device,
                         batch_size=task.batch_size, max_length=task.max_length, progress=False)
    return wrapped.predict_proba(texts).argmax(axis=1)


def local_train(task: Task, client: ClientData, state: dict[str, torch.Tensor], *, server_round: int,
                seed: int, proximal_mu: float = 0.0, dp_state: dict[str, Any] | None = None,
                ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """One client's local training from the global weights: new weights and what the training did.

    Under client DP, ``dp_state`` is what this client kept from its earlier rounds (``{}`` before its first):
    its noise multiplier, calibrated once for all ``task.dp_rounds`` rounds to the whole training's
    (epsilon, delta), and its Opacus accountant history. The training continues that history, so
    ``dp-epsilon`` is the accountant's epsilon composed over every step the client took; the updated state
    is returned under ``"dp-state"`` (not a metric: the caller keeps it for the next round)."""
    started = time.perf_counter()
    start = load_arrays(task.model, state)
    settings = dataclasses.replace(task.settings, seed=seed)
    kwargs: dict[str, Any] = {"proximal_mu": proximal_mu} if proximal_mu else {}
    if task.dp is not None:
        dp_state = dict(dp_state or {})
        if "noise_multiplier" not in dp_state:
            dp_state["noise_multiplier"] = dp_noise_multiplier(task.dp, examples=len(client.train),
                                                               settings=task.settings, repeats=task.dp_rounds)
        kwargs.update(noise_multiplier=dp_state["noise_multiplier"], dp_history=dp_state.get("history", []))
    trained = fine_tune(start, task.tokenizer, list(client.train["text"]), client.train["label"].to_numpy(),
                        settings=settings, dp=task.dp, device=task.device, progress=False,
                        desc=f"federated: client {client.client} round {server_round}", **kwargs)
    new_state = trained.model.state_dict()
    out = {k: new_state[k].detach().cpu().contiguous() for k in task.keys}
    facts: dict[str, Any] = {"train-seconds": float(trained.seconds), "round-seconds": time.perf_counter() - started,
                             "steps": int(trained.steps)}
    if not trained.dp:  # under DP the loss and the example count are unnoised statistics of the private data
        facts.update({"num-examples": int(len(client.train)), "train-loss": float(trained.final_loss)})
    if trained.dp:
        d = trained.dp
        alone = dp_epsilon([(d["noise_multiplier"], d["sample_rate"], d["steps_this_call"])], delta=d["delta"],
                           accountant=task.dp.accountant) if d["steps_this_call"] else 0.0
        facts.update({"dp-epsilon": float(d["epsilon"]), "dp-round-epsilon": float(alone),
                      "dp-delta": float(d["delta"]), "dp-noise-multiplier": float(d["noise_multiplier"]),
                      "dp-sample-rate": float(d["sample_rate"]), "dp-steps": int(d["steps"]),
                      "dp-round-steps": int(d["steps_this_call"]),
                      "dp-state": {"noise_multiplier": float(d["noise_multiplier"]), "history": d["history"]}})
    return out, facts


def local_evaluate(task: Task, client: ClientData, state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The global model's correct predictions on the client's local test split."""
    model = load_arrays(task.model, state)
    y = client.test["label"].to_numpy()
    correct = predict(task, model, list(client.test["text"])) == y
    return {"num-examples": int(len(y)), "correct": int(correct.sum()),
            "accuracy": float(correct.mean()) if len(y) else float("nan")}
