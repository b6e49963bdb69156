"""What a federated run trains on, and the two halves of a round that are not Flower's: local training and
local evaluation.

A :class:`Task` holds the starting classifier, its tokenizer, each client's local training and test
split, and the training settings. Both runtimes build the same task from the section's data, seeded
identically, so a client's partition is the same in both: the simulation in the calling process, the
deployment in each ``raikit federated join`` (``--config ... --partition N``).

No ClientApp receives the task in a message or in its closure. :func:`save_task` writes it once to a
folder (the model and tokenizer as a model folder, the settings, one small JSON file per client
partition); each client process (a Ray actor in the simulation, a ClientApp process on a SuperNode) loads
the model from that folder once (:func:`load_task`, cached per process, with its torch thread count) and
reads only its own partition (:func:`load_client`). The ClientApp's pickled size is then that of a folder
path, whatever the model, the data or the number of clients.

Each call trains and evaluates the process's one loaded model: the global parameters a message carries are
loaded into it (:func:`load_state`) and ``fine_tune`` trains it in place, so no copy of the model is made per
message. Only the parameters that train travel (``exchanged_keys``): for ``scope = "last_layers"`` the last
layers, pooler and head, not the frozen embeddings, which no call changes.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from raikit.audits.training import (
    DPSettings, TrainSettings, dp_epsilon, dp_noise_multiplier, fine_tune, trainable_scope,
)

__all__ = ["ClientData", "Task", "exchanged_keys", "local_train", "local_evaluate", "predict", "load_arrays",
           "load_state", "save_task", "load_task", "load_client", "client_from_folder"]


@dataclass(frozen=True)
class ClientData:
    """One client's data: its id, local training split, local test split and its position among the run's
    clients (the partition id, part of its training seed)."""

    client: str
    train: pd.DataFrame
    test: pd.DataFrame
    index: int = 0


@dataclass
class Task:
    """Everything a ServerApp or ClientApp needs besides Flower's messages.

    Attributes
    ----------
    model, tokenizer
        The classifier. In the process that builds the task, the starting model (never changed); in a client
        process (:func:`load_task`), the process's working model: :func:`local_train` and
        :func:`local_evaluate` load the global parameters of each message into it and train it in place.
    label_names : tuple of str
    clients : list of ClientData
        Every client's data where the task is built; empty in a client process, which reads its own partition
        with :func:`load_client`.
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

    def initial_state(self) -> dict[str, torch.Tensor]:
        state = self.model.state_dict()
        return {k: state[k].detach().cpu().clone() for k in self.keys}


def exchanged_keys(model: Any, settings: TrainSettings) -> list[str]:
    """State-dict names of the parameters that train under ``settings.scope``.

    For LoRA, the entries a merge of trained adapters can change: the weights of the layers the adapters sit
    on and the head (trained whole). Found by a probe: adapters and head perturbed on a copy, merged, and
    compared with the model; every other entry (embeddings, norms, the layers without adapters) stays the
    starting model's, so it never needs to travel."""
    names = list(model.state_dict().keys())
    probe = trainable_scope(copy.deepcopy(model), settings)
    if settings.scope == "lora":
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for p in probe.parameters():
                if p.requires_grad:
                    p.add_(torch.rand(p.shape, generator=generator, dtype=p.dtype) + 0.5)
        merged = probe.merge_and_unload().state_dict()
        start = model.state_dict()
        return [n for n in names if n in merged and not torch.equal(merged[n], start[n])]
    trainable = {n for n, p in probe.named_parameters() if p.requires_grad}
    return [n for n in names if n in trainable]


def load_state(model: Any, state: dict[str, torch.Tensor]) -> Any:
    """``model`` itself with the exchanged parameters replaced by ``state`` (no copy), in eval mode."""
    known = model.state_dict()
    missing = [k for k in state if k not in known]
    if missing:
        raise ValueError(f"unknown parameter names from the server: {missing[:3]}")
    model.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()}, strict=False)
    return model.eval()


def load_arrays(model: Any, state: dict[str, torch.Tensor]) -> Any:
    """A copy of ``model`` with the exchanged parameters replaced by ``state`` (the final global model)."""
    return load_state(copy.deepcopy(model), state)


_TASK_FILE = "task.json"
#: per process (a Ray actor, a ClientApp process): task folder -> the Task loaded from it
_LOADED: dict[str, Task] = {}


def save_task(task: Task, folder: Path, *, clients: list[ClientData] | None = None, torch_threads: int = 0) -> Path:
    """Write ``task`` once for the client processes: ``model/`` (model and tokenizer), ``task.json`` (the
    settings) and ``clients/<index>.json`` for each of ``clients`` (default: every client of the task).

    ``torch_threads`` > 0 is the intra-op thread count each client process sets when it loads the task (one
    per Ray actor in the simulation); 0 leaves torch's default.
    """
    folder = Path(folder)
    (folder / "clients").mkdir(parents=True, exist_ok=True)
    task.model.save_pretrained(folder / "model")
    task.tokenizer.save_pretrained(folder / "model")
    spec = {"label_names": list(task.label_names), "settings": dataclasses.asdict(task.settings),
            "dp": dataclasses.asdict(task.dp) if task.dp else None, "dp_rounds": task.dp_rounds,
            "proximal_mu": task.proximal_mu, "keys": list(task.keys), "device": task.device,
            "max_length": task.max_length, "batch_size": task.batch_size, "torch_threads": int(torch_threads)}
    (folder / _TASK_FILE).write_text(json.dumps(spec), encoding="utf-8")
    for c in task.clients if clients is None else clients:
        record = {"client": c.client, "index": c.index, "train": c.train.to_dict(orient="list"),
                  "test": c.test.to_dict(orient="list")}
        (folder / "clients" / f"{c.index}.json").write_text(json.dumps(record), encoding="utf-8")
    return folder


def load_task(folder: str | Path) -> Task:
    """The task :func:`save_task` wrote to ``folder``, its model loaded once per process (cached), without any
    client's data; sets the process's torch thread count the first time."""
    key = str(Path(folder).resolve())
    if key not in _LOADED:
        import transformers

        spec = json.loads((Path(key) / _TASK_FILE).read_text(encoding="utf-8"))
        if spec.get("torch_threads"):
            torch.set_num_threads(int(spec["torch_threads"]))
        # the folder save_task wrote (safetensors): a task folder, not a model a user named (load_model's job)
        model = transformers.AutoModelForSequenceClassification.from_pretrained(Path(key) / "model",
                                                                                use_safetensors=True).eval()
        tokenizer = transformers.AutoTokenizer.from_pretrained(Path(key) / "model")
        _LOADED[key] = Task(model=model, tokenizer=tokenizer, label_names=tuple(spec["label_names"]), clients=[],
                            settings=TrainSettings(**spec["settings"]),
                            dp=DPSettings(**spec["dp"]) if spec["dp"] else None,
                            dp_rounds=int(spec.get("dp_rounds", 1)), proximal_mu=float(spec["proximal_mu"]),
                            keys=list(spec["keys"]), device=str(spec.get("device", "cpu")),
                            max_length=int(spec["max_length"]), batch_size=int(spec["batch_size"]))
    return _LOADED[key]


def load_client(folder: str | Path, index: int) -> ClientData:
    """Client ``index``'s partition, read from the file :func:`save_task` wrote (nobody else's is read)."""
    path = Path(folder) / "clients" / f"{int(index)}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no partition {int(index)} in {folder} (this node serves another partition)")
    record = json.loads(path.read_text(encoding="utf-8"))
    return ClientData(client=str(record["client"]), train=pd.DataFrame(record["train"]),
                      test=pd.DataFrame(record["test"]), index=int(record["index"]))


def client_from_folder(folder: str, context: Any) -> tuple[Task, ClientData]:
    """A ClientApp's task provider: the process's task from ``folder`` and the partition of the node
    (``partition-id`` in its Flower node config). Bind the folder with ``functools.partial``: the ClientApp then
    carries only the path."""
    return load_task(folder), load_client(folder, int(context.node_config["partition-id"]))


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
    start = load_state(task.model, state)
    settings = dataclasses.replace(task.settings, seed=seed)
    kwargs: dict[str, Any] = {"proximal_mu": proximal_mu} if proximal_mu else {}
    if task.dp is not None:
        dp_state = dict(dp_state or {})
        if "noise_multiplier" not in dp_state:
            dp_state["noise_multiplier"] = dp_noise_multiplier(task.dp, examples=len(client.train),
                                                               settings=task.settings, repeats=task.dp_rounds)
        kwargs.update(noise_multiplier=dp_state["noise_multiplier"], dp_history=dp_state.get("history", []))
    try:
        trained = fine_tune(start, task.tokenizer, list(client.train["text"]), client.train["label"].to_numpy(),
                            settings=settings, dp=task.dp, device=task.device, progress=False,
                            desc=f"federated: client {client.client} round {server_round}", in_place=True, **kwargs)
    except BaseException:
        # the model was trained in place: a failure can leave LoRA layers injected or Opacus hooks on it, so
        # the process's next message loads the model afresh instead of reusing this one
        for key in [k for k, loaded in _LOADED.items() if loaded is task]:
            del _LOADED[key]
        raise
    task.model = trained.model  # the same model, or for LoRA the plain model the adapters were merged into
    new_state = trained.model.state_dict()
    out = {k: new_state[k].detach().cpu().clone() for k in task.keys}  # not views of the reused model
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
    model = load_state(task.model, state)
    y = client.test["label"].to_numpy()
    correct = predict(task, model, list(client.test["text"])) == y
    return {"num-examples": int(len(y)), "correct": int(correct.sum()),
            "accuracy": float(correct.mean()) if len(y) else float("nan")}
