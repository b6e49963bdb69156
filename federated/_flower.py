"""The Flower ServerApp and ClientApp (Message API) that fine-tune a sequence classifier.

``build_apps(...)`` returns a ``(ServerApp, ClientApp)`` pair bound to task providers: in simulation the
providers hand back objects built in the calling process; in a deployment each process builds its task
from the audit config named in its node or run config (see ``raikit.federated._deploy``).

The ServerApp runs a FedAvg or FedProx strategy (``flwr.serverapp.strategy``), optionally wrapped in
Flower's server-side DP wrapper (``DifferentialPrivacyServerSideFixedClipping``, with Flower's RDP
accountant when ``dp-accounting`` is installed). It talks to the clients through a recording proxy of
the Grid, so that whatever the strategy, every round's sampled clients, replies, failures and
per-client metrics are kept: the report names each lost client and the round it was lost in, and a
training round with fewer replies than ``min_clients`` stops the run.

Aggregation streams: the proxy pushes a round's messages and pulls the replies as they arrive (the Grid's
``push_messages`` / ``pull_messages``, what Flower's own ``send_and_receive`` loops over), folds each
training reply into a running weighted sum (:class:`RunningMean`; under central DP after clipping it
against the global model sent, as Flower's wrapper does) and keeps only the reply's metrics. The server
then holds one running sum and one set of global parameters, never a round's replies; the strategies'
``aggregate_train`` read the running sum (:class:`StreamingFedAvg`, for FedAvg and FedProx alike,
:class:`StreamingServerSideDP`, the last doing what Flower's wrapper does after its clipping: reply checks,
Gaussian noise, the accountant's release).
"""
from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, Message, RecordDict
from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping, FedAvg

from raikit.federated._task import ClientData, Task, local_evaluate, local_train

__all__ = ["ServerPlan", "RoundLog", "client_round_seed", "sampling_fraction", "seeded_sampling", "RunningMean", "StreamingFedAvg", "StreamingServerSideDP",
           "build_apps", "run_server"]

QUERY_TIMEOUT = 600.0


@dataclass(frozen=True)
class ServerPlan:
    """What the ServerApp runs.

    Attributes
    ----------
    strategy : {"fedavg", "fedprox"}
    rounds, clients, clients_per_round, min_clients : int
    evaluate_clients_per_round : int
        Clients sampled per round for evaluation (0: all).
    proximal_mu : float
    seed : int
    round_timeout : float
        Seconds a round waits for replies.
    join_timeout : float
        Seconds the server waits for ``clients`` SuperNodes before the first round.
    central_dp : bool
        Wrap the strategy in Flower's server-side fixed-clipping DP.
    central_noise_multiplier, central_clipping_norm, central_delta : float
    client_names : tuple of str
        The clients the run expects (one per partition); a client that never answers the opening query, because
        its SuperNode never joined or died before it, is counted as lost before round 1 under its own name.
    """

    strategy: str = "fedavg"
    rounds: int = 3
    clients: int = 3
    clients_per_round: int = 0
    evaluate_clients_per_round: int = 0
    min_clients: int = 2
    proximal_mu: float = 0.0
    seed: int = 0
    round_timeout: float = 600.0
    join_timeout: float = 120.0
    central_dp: bool = False
    central_noise_multiplier: float = 1.0
    central_clipping_norm: float = 1.0
    central_delta: float = 1e-5
    client_dp: bool = False
    send_seed: bool = True
    client_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:  # read back from plan.json, a list
        object.__setattr__(self, "client_names", tuple(str(c) for c in self.client_names))


@dataclass
class RoundLog:
    """What the server saw: clients, rounds, failures, and the final global weights."""

    node_to_client: dict[int, str] = field(default_factory=dict)
    client_facts: dict[str, dict[str, Any]] = field(default_factory=dict)
    rounds: list[dict[str, Any]] = field(default_factory=list)
    per_client: dict[str, list[float | None]] = field(default_factory=dict)
    trained: list[str] = field(default_factory=list)
    lost: list[dict[str, Any]] = field(default_factory=list)
    dp_per_client: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    central_dp: dict[str, Any] = field(default_factory=dict)
    final_state: dict[str, torch.Tensor] = field(default_factory=dict)
    seconds: float = 0.0
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"node_to_client": {str(k): v for k, v in self.node_to_client.items()},
                "client_facts": self.client_facts, "rounds": self.rounds, "per_client": self.per_client,
                "trained": self.trained, "lost": self.lost, "dp_per_client": self.dp_per_client, "central_dp": self.central_dp,
                "seconds": self.seconds, "error": self.error}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RoundLog":
        log = cls(**{k: v for k, v in data.items() if k != "node_to_client"})
        log.node_to_client = {int(k): v for k, v in data.get("node_to_client", {}).items()}
        return log


def client_round_seed(seed: int, server_round: int, client: int) -> int:
    """The training seed of one client in one round: distinct for every (run seed, round, client) triple.

    (A linear mix such as ``seed * 1000 + round * 97 + client`` gives client k + 97 in round r the seed of
    client k in round r + 1 once there are 97 clients.)"""
    return int(np.random.SeedSequence([seed, server_round, client]).generate_state(1, dtype=np.uint32)[0])


def sampling_fraction(wanted: int, available: int) -> float:
    """The ``fraction_train`` / ``fraction_evaluate`` that makes Flower sample exactly ``wanted`` of ``available``
    nodes: it samples ``int(available * fraction)``, and ``wanted / available`` can fall a hair short
    (3 of 47 gives 2); half a node more cannot reach the next integer."""
    return min(1.0, (wanted + 0.5) / available)


@contextlib.contextmanager
def seeded_sampling(seed: int) -> Iterator[None]:
    """Flower samples each round's nodes with the global ``random.sample``: seed it for the run (clients in
    :meth:`_RecordingGrid.get_node_ids` order), and give the caller's random state back afterwards."""
    state = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(state)


def array_bytes(content: RecordDict) -> int:
    """Bytes of the parameters a message carries (the serialized arrays of its ArrayRecords)."""
    return sum(len(a.data) for record in content.array_records.values() for a in record.values())


class RunningMean:
    """The weighted mean of one round's training replies, folded in one reply at a time.

    Holds one running sum (float64) of the exchanged parameters, whatever the number of replies. The mean is
    Flower's FedAvg aggregate (``aggregate_arrayrecords``: each reply's arrays weighted by its
    ``weight_key`` metric over the total), summed in a different order and in float64.

    Parameters
    ----------
    weight_key : str
        The metric each reply is weighted by (``num-examples``, or ``unit-weight`` for equal weights).
    clipping_norm : float, optional
        Central DP: each reply's update against the parameters the server sent (``start``'s reference) is
        clipped to this L2 norm before it is folded in, with the function Flower's
        ``DifferentialPrivacyServerSideFixedClipping`` clips with (``compute_clip_model_update``).
    """

    def __init__(self, weight_key: str, clipping_norm: float | None = None) -> None:
        self.weight_key = weight_key
        self.clipping_norm = clipping_norm
        self.start(None)

    def start(self, reference: ArrayRecord | None) -> None:
        """Begin a round; ``reference`` is the global ArrayRecord sent to the clients (clipped against)."""
        self._reference = (None if reference is None or self.clipping_norm is None else
                           {k: a.numpy() for k, a in reference.items()})
        self._sum: dict[str, np.ndarray] = {}
        self._dtypes: dict[str, np.dtype] = {}
        self.weight = 0.0
        self.count = 0

    def fold(self, content: RecordDict) -> None:
        """Add one reply's parameters, weighted; the caller may drop them afterwards."""
        import math

        metrics = next(iter(content.metric_records.values()), None)
        weight = metrics.get(self.weight_key) if metrics is not None else None
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight <= 0:
            raise ValueError(f"a training reply has no positive {self.weight_key!r} metric to weight it by")
        records = list(content.array_records.values())
        if len(records) != 1:
            raise ValueError(f"a training reply carries {len(records)} ArrayRecords, expected 1")
        values = {k: a.numpy() for k, a in records[0].items()}
        if self._reference is not None:
            from flwr.supercore.differential_privacy import compute_clip_model_update

            keys = list(self._reference)
            if set(values) != set(keys):
                raise ValueError("a training reply's parameter names differ from those the server sent")
            clipped = [values[k] for k in keys]
            compute_clip_model_update(param1=clipped, param2=[self._reference[k] for k in keys],
                                      clipping_norm=float(self.clipping_norm))
            values = dict(zip(keys, clipped))
        if self.count and set(values) != set(self._sum):
            raise ValueError("a training reply's parameter names differ from the round's first reply")
        for k, v in values.items():
            term = np.multiply(v, float(weight), dtype=np.float64)
            if k in self._sum:
                self._sum[k] += term
            else:
                self._sum[k], self._dtypes[k] = term, np.asarray(v).dtype
        self.weight += float(weight)
        self.count += 1

    def mean(self) -> ArrayRecord | None:
        """The round's weighted mean (None before any reply), in each parameter's own dtype."""
        if not self.count:
            return None
        out = {}
        for k, total in self._sum.items():
            value = total / self.weight
            if np.issubdtype(self._dtypes[k], np.integer):
                value = np.rint(value)
            out[k] = Array(np.asarray(value, dtype=self._dtypes[k]))
        return ArrayRecord(out)


class StreamingFedAvg(FedAvg):
    """Flower's FedAvg whose aggregate is folded in as each reply arrives (:class:`RunningMean`).

    ``aggregate_train`` reads the running mean the recording grid folded the round's replies into (the replies
    it hands back carry only their metrics). It serves FedProx too: Flower's FedProx differs from FedAvg on
    the server only by putting ``proximal-mu`` in the training config, which :func:`run_server` sends itself.
    """

    def __init__(self, *, stream: RunningMean, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stream = stream

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> tuple[Any, Any]:
        valid, _ = self._check_and_log_replies(replies, is_train=True, validate=False)  # type: ignore[attr-defined]
        if not valid or not self.stream.count:
            return None, None
        metrics = self.train_metrics_aggr_fn([m.content for m in valid], self.weighted_by_key)  # type: ignore[attr-defined]
        return self.stream.mean(), metrics


class StreamingServerSideDP(DifferentialPrivacyServerSideFixedClipping):
    """Flower's server-side fixed-clipping DP wrapper over a running mean of clipped replies.

    The recording grid clips each reply as it arrives (:class:`RunningMean` with ``clipping_norm``) and folds
    it in; ``aggregate_train`` then does what Flower's ``aggregate_train`` does after its own clipping loop,
    with Flower's code: the reply checks (``validate_replies``, equal weights under the accountant), the
    Gaussian noise on the aggregate, the accountant's release. The inner strategy (plain FedAvg) configures the
    rounds and aggregates the metrics.
    """

    def __init__(self, strategy: Any, noise_multiplier: float, clipping_norm: float, num_sampled_clients: int, *,
                 stream: RunningMean, **kwargs: Any) -> None:
        super().__init__(strategy, noise_multiplier, clipping_norm, num_sampled_clients, **kwargs)
        if stream.clipping_norm != clipping_norm:
            raise ValueError("the running mean must clip to the wrapper's clipping norm")
        self.stream = stream

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> tuple[Any, Any]:
        from flwr.serverapp.strategy.dp_fixed_clipping import validate_replies

        replies_list = list(replies)
        event = self._pop_pending_event(server_round)
        if not validate_replies(replies_list, self.num_sampled_clients, strict=self.accountant is not None):
            return None, None
        self._validate_uniform_weights(replies_list)
        inner = self.strategy
        metrics = inner.train_metrics_aggr_fn([m.content for m in replies_list], inner.weighted_by_key)
        arrays = self.stream.mean()
        if arrays is not None:
            arrays = self._add_noise_to_aggregated_arrays(arrays)
            self._compose_release(event)
        return arrays, metrics


class _RecordingGrid:
    """Delegates to Flower's Grid; records every train/evaluate exchange and enforces ``min_clients``; folds
    each training reply into ``stream`` as it arrives (streaming aggregation)."""

    def __init__(self, grid: Any, log: RoundLog, plan: ServerPlan, stream: RunningMean | None = None) -> None:
        self._grid = grid
        self._log = log
        self._plan = plan
        self._stream = stream
        self._round_started = 0.0
        self.joined: list[int] = []  # the SuperNodes the run started with (set by run_server)

    def lose_absent(self, rnd: int, sent: list[int], phase: str) -> None:
        """Count as lost every SuperNode the run started with that is no longer connected and was not sent this
        round's messages (killed before the round: the strategy never samples it, so no reply can be missing)."""
        try:
            connected = set(self._grid.get_node_ids())
        except Exception:  # noqa: BLE001  (a Grid that cannot list nodes: the replies alone decide)
            return
        counted = {x["node_id"] for x in self._log.lost}
        for node in self.joined:
            if node not in connected and node not in sent and node not in counted and node in self._log.node_to_client:
                self._log.lost.append({"round": rnd, "phase": phase, "client": self._client(node), "node_id": node,
                                       "reason": f"SuperNode gone before round {rnd} (no longer connected)"})

    def __getattr__(self, name: str) -> Any:
        return getattr(self._grid, name)

    def get_node_ids(self) -> list[int]:
        """The connected SuperNodes in the order of their clients (partitions), not of their random node ids,
        so a seeded sample of them picks the same clients in every run."""
        def order(node: int) -> tuple[int, str, int]:
            client = self._log.node_to_client.get(node, "")
            return (0, f"{int(client):012d}", node) if client.isdigit() else (1, client, node)

        return sorted(self._grid.get_node_ids(), key=order)

    def _client(self, node: int) -> str:
        return self._log.node_to_client.get(node, f"node-{node}")

    def _replies(self, messages: list[Any], timeout: float | None) -> Iterable[Any]:
        """Each reply as it arrives: push the messages, then pull until every one is answered or ``timeout``
        (what Flower's Grid ``send_and_receive`` does, without collecting the replies first)."""
        if not (hasattr(self._grid, "push_messages") and hasattr(self._grid, "pull_messages")):
            yield from self._grid.send_and_receive(messages, timeout=timeout)
            return
        waiting = set(self._grid.push_messages(messages))
        interval = float(getattr(self._grid, "pull_interval", 0.5))
        end = time.time() + (timeout if timeout is not None else 0.0)
        while waiting and (timeout is None or time.time() < end):
            pulled = list(self._grid.pull_messages(waiting))
            waiting.difference_update(m.metadata.reply_to_message_id for m in pulled)
            yield from pulled
            del pulled
            if waiting:
                time.sleep(interval)

    def send_and_receive(self, messages: Iterable[Any], *, timeout: float | None = None) -> Iterable[Any]:
        from flwr.app import MessageType

        messages = list(messages)
        if not messages:
            return []
        kind = messages[0].metadata.message_type
        sent = [m.metadata.dst_node_id for m in messages]
        config = next(iter(messages[0].content.config_records.values()), {})
        rnd = int(config.get("server-round", 0))
        bytes_out = sum(array_bytes(m.content) for m in messages)
        streaming = kind == MessageType.TRAIN and self._stream is not None
        if streaming:
            self._stream.start(next(iter(messages[0].content.array_records.values()), None))
        bytes_in = 0
        started = time.perf_counter()
        replies = []
        for reply in self._replies(messages, timeout):
            if not reply.has_error():
                bytes_in += array_bytes(reply.content)
                if streaming:  # fold the update in, keep only the metrics
                    self._stream.fold(reply.content)
                    for name in list(reply.content.array_records):
                        del reply.content[name]
            replies.append(reply)
        del messages
        seconds = time.perf_counter() - started
        if kind == MessageType.TRAIN:
            self.lose_absent(rnd, sent, "train")
        ok = {r.metadata.src_node_id: r for r in replies if not r.has_error()}
        failed = {r.metadata.src_node_id: r.error.reason for r in replies if r.has_error()}
        for node in sent:
            if node not in ok:
                reason = failed.get(node) or "no reply before the round timeout (client gone)"
                self._log.lost.append({"round": rnd, "phase": "train" if kind == MessageType.TRAIN else "evaluate",
                                       "client": self._client(node), "node_id": node,
                                       "reason": (reason or "")[:300]})
        if kind == MessageType.TRAIN:
            self._round_started = started
            row = {"round": rnd, "clients_sampled": len(sent), "clients_ok": len(ok), "train_seconds": seconds,
                   "bytes_to_clients": bytes_out, "bytes_from_clients": bytes_in}
            losses = []
            for node, reply in ok.items():
                metrics = next(iter(reply.content.metric_records.values()), {})
                client = self._client(node)
                if client not in self._log.trained:
                    self._log.trained.append(client)
                if "train-loss" in metrics:  # absent under client DP (an unnoised statistic of private data)
                    losses.append(float(metrics["train-loss"]))
                if "dp-epsilon" in metrics:
                    self._log.dp_per_client.setdefault(client, []).append(
                        {"round": rnd, **{k[3:]: float(metrics[k]) for k in metrics if k.startswith("dp-")}})
            row["train_loss"] = float(sum(losses) / len(losses)) if losses else None
            self._log.rounds.append(row)
            if len(ok) < self._plan.min_clients:
                raise _TooFewClients(f"round {rnd}: {len(ok)} of {len(sent)} clients returned an update, "
                                     f"fewer than min_clients = {self._plan.min_clients}")
        elif kind == MessageType.EVALUATE:
            correct = n = 0
            for node, reply in ok.items():
                metrics = next(iter(reply.content.metric_records.values()), {})
                correct += int(metrics["correct"])
                n += int(metrics["num-examples"])
                client = self._client(node)
                self._log.per_client.setdefault(client, [None] * (rnd - 1))
                series = self._log.per_client[client]
                series.extend([None] * (rnd - len(series)))
                series[rnd - 1] = float(metrics["accuracy"])
                self._log.client_facts.setdefault(client, {})["last_eval"] = {"correct": int(metrics["correct"]),
                                                                             "n": int(metrics["num-examples"])}
            for row in self._log.rounds:
                if row["round"] == rnd:
                    row.update({"accuracy": correct / n if n else None, "eval_examples": n,
                                "eval_correct": correct, "clients_evaluated": len(ok),
                                "round_seconds": time.perf_counter() - self._round_started,
                                "bytes_to_clients": row.get("bytes_to_clients", 0) + bytes_out,
                                "bytes_from_clients": row.get("bytes_from_clients", 0) + bytes_in})
        return replies


class _TooFewClients(RuntimeError):
    pass


def _state_to_record(state: dict[str, torch.Tensor]) -> Any:
    from flwr.app import ArrayRecord

    return ArrayRecord(torch_state_dict={k: v.detach().cpu().contiguous() for k, v in state.items()})


def _wait_for_nodes(grid: Any, wanted: int, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        nodes = list(grid.get_node_ids())
        if len(nodes) >= wanted or time.monotonic() > deadline:
            return nodes
        time.sleep(0.5)


def lost_before_round_1(log: RoundLog, nodes: list[int], described: set[int], plan: ServerPlan) -> None:
    """Record the clients lost before round 1: each expected client (``plan.client_names``) that no SuperNode
    answered the opening query for, under its own name, and each SuperNode that joined but never said which
    client it is (``node-<id>``, when it cannot be matched to one missing client)."""
    silent = [n for n in nodes if n not in described]
    missing = [c for c in plan.client_names if c not in set(log.node_to_client.values())]
    for client in missing:
        why = ("its SuperNode joined but did not answer the opening query" if silent else
               "no SuperNode for it joined (or it died before the opening query)")
        log.lost.append({"round": 1, "phase": "query", "client": client, "node_id": None,
                         "reason": f"lost before round 1: {why}"})
    if len(silent) == 1 and len(missing) == 1:  # the one silent node is the one missing client
        log.node_to_client[silent[0]] = missing[0]
        log.lost[-1]["node_id"] = silent[0]
        return
    if plan.client_names and len(silent) <= len(missing):
        return  # every silent node is one of the missing clients, already named
    for node in silent:
        log.lost.append({"round": 1, "phase": "query", "client": f"node-{node}", "node_id": node,
                         "reason": "SuperNode joined but did not answer the opening query (gone before round 1)"})


def run_server(grid: Any, task_state: dict[str, torch.Tensor], plan: ServerPlan, log: RoundLog) -> RoundLog:
    """The ServerApp's body: meet the clients, run the strategy, keep the log and the final weights."""
    from flwr.app import ConfigRecord, Message, MessageType, RecordDict
    from flwr.serverapp import strategy as strategies

    started = time.perf_counter()
    nodes = _wait_for_nodes(grid, plan.clients, plan.join_timeout)
    if len(nodes) < plan.min_clients:
        raise _TooFewClients(f"only {len(nodes)} SuperNode(s) joined within {plan.join_timeout:g} s, fewer than "
                             f"min_clients = {plan.min_clients}")
    hello = [Message(content=RecordDict({"config": ConfigRecord({"what": "describe"})}),
                     message_type=MessageType.QUERY, dst_node_id=node) for node in nodes]
    described = set()
    for reply in grid.send_and_receive(hello, timeout=min(plan.round_timeout, QUERY_TIMEOUT)):
        if reply.has_error():
            continue
        facts = dict(next(iter(reply.content.config_records.values())))
        client = str(facts.pop("client"))
        log.node_to_client[reply.metadata.src_node_id] = client
        log.client_facts.setdefault(client, {}).update(facts)
        described.add(reply.metadata.src_node_id)
    lost_before_round_1(log, nodes, described, plan)
    n_nodes = len(nodes)
    per_round = plan.clients_per_round or n_nodes
    evaluated = plan.evaluate_clients_per_round or n_nodes
    # Central DP needs equal client weights (each client's clipped update counts once); otherwise FedAvg
    # weights clients by their number of training examples.
    common: dict[str, Any] = dict(
        fraction_train=sampling_fraction(per_round, n_nodes), fraction_evaluate=sampling_fraction(evaluated, n_nodes),
        min_train_nodes=min(plan.min_clients, per_round), min_evaluate_nodes=min(plan.min_clients, evaluated),
        min_available_nodes=plan.min_clients,
        weighted_by_key="unit-weight" if plan.central_dp or plan.client_dp else "num-examples")
    stream = RunningMean(common["weighted_by_key"],
                         clipping_norm=plan.central_clipping_norm if plan.central_dp else None)
    # FedProx is FedAvg on the server plus "proximal-mu" in the training config, sent below for both
    if plan.central_dp:  # the wrapper aggregates the stream; the inner strategy only configures the rounds
        strategy: Any = strategies.FedAvg(**common)
    else:
        strategy = StreamingFedAvg(**common, stream=stream)
    accountant = None
    if plan.central_dp:
        sampled = max(int(n_nodes * common["fraction_train"]), common["min_train_nodes"])
        try:
            from flwr.supercore.privacy_accounting import (
                NeighboringRelation, PrivacyConfig, SamplingMethod,
            )
            from flwr.supercore.privacy_accounting.rdp_accountant import RdpAccountant

            accountant = RdpAccountant(PrivacyConfig(
                target_delta=plan.central_delta, population_size=n_nodes,
                neighboring_relation=NeighboringRelation.ADD_OR_REMOVE_ONE,
                sampling_method=SamplingMethod.NO_AMPLIFICATION))
        except ImportError:  # older Flower or no dp-accounting: noise without a reported epsilon
            accountant = None
        strategy = StreamingServerSideDP(strategy, plan.central_noise_multiplier, plan.central_clipping_norm, sampled,
                                         stream=stream, **({"accountant": accountant} if accountant is not None else {}))
    recorder = _RecordingGrid(grid, log, plan, stream)
    recorder.joined = list(nodes)
    train_config = ConfigRecord({**({"seed": plan.seed} if plan.send_seed else {}),
                                 "proximal-mu": float(plan.proximal_mu)})
    with seeded_sampling(plan.seed):
        result = strategy.start(grid=recorder, initial_arrays=_state_to_record(task_state), num_rounds=plan.rounds,
                                timeout=plan.round_timeout, train_config=train_config)
    log.final_state = {k: v.clone() for k, v in result.arrays.to_torch_state_dict().items()}
    if plan.central_dp:
        log.central_dp = {"noise_multiplier": plan.central_noise_multiplier,
                          "clipping_norm": plan.central_clipping_norm, "clients_per_round": strategy.num_sampled_clients,
                          "delta": plan.central_delta, "population": n_nodes}
        spent = strategy.privacy_spent() if accountant is not None else None
        if spent is not None:
            log.central_dp.update({"epsilon": float(spent.epsilon), "releases": int(spent.num_releases),
                                   "accounting": str(spent.accounting_method),
                                   "unit": "client-level (add or remove one client), no sampling amplification"})
    log.seconds = time.perf_counter() - started
    return log


_DP_STATE = "raikit-client-dp"


def _load_dp_state(context: Any) -> dict[str, Any]:
    """This client's DP state from its Flower context (kept by Flower between a node's messages, in the
    simulation and on a SuperNode): noise multiplier and Opacus accountant history; ``{}`` before round one."""
    if _DP_STATE not in context.state:
        return {}
    rec = context.state[_DP_STATE]
    history = [[float(nm), float(q), int(n)] for nm, q, n in zip(rec["nm"], rec["q"], rec["steps"])]
    return {"noise_multiplier": float(rec["noise"]), "history": history}


def _save_dp_state(context: Any, dp_state: dict[str, Any]) -> None:
    from flwr.app import ConfigRecord

    h = dp_state["history"]
    context.state[_DP_STATE] = ConfigRecord({"noise": float(dp_state["noise_multiplier"]),
                                             "nm": [float(r[0]) for r in h], "q": [float(r[1]) for r in h],
                                             "steps": [int(r[2]) for r in h]})


def build_apps(server_task: Callable[[Any], tuple[dict[str, torch.Tensor], ServerPlan]],
               client_task: Callable[[Any], tuple[Task, ClientData]],
               on_done: Callable[[RoundLog, Any], None]) -> tuple[Any, Any]:
    """A ServerApp and a ClientApp.

    Parameters
    ----------
    server_task : callable
        ``context -> (initial exchanged state, ServerPlan)``.
    client_task : callable
        ``context -> (Task, this node's ClientData)``.
    on_done : callable
        ``(RoundLog, context)``: called when the ServerApp finishes or fails (``log.error`` set).
    """
    from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp
    from flwr.serverapp import ServerApp

    server = ServerApp()
    client = ClientApp()

    @server.main()
    def main(grid: Any, context: Any) -> None:
        log = RoundLog()
        try:
            state, plan = server_task(context)
            run_server(grid, state, plan, log)
        except Exception as exc:  # reported to the caller, who turns it into a one-line error
            log.error = f"{type(exc).__name__}: {exc}" if not isinstance(exc, _TooFewClients) else str(exc)
        on_done(log, context)

    @client.query()
    def describe(msg: Message, context: Any) -> Message:
        task, data = client_task(context)
        facts: dict[str, Any] = {"client": data.client}
        if task.dp is None:  # under client DP the sizes and label mix of the private training data stay home
            counts = data.train["label"].value_counts().sort_index()
            facts.update({"train": int(len(data.train)), "test": int(len(data.test)),
                          "labels": ",".join(f"{task.label_names[int(i)]}:{int(c)}" for i, c in counts.items())})
        return Message(content=RecordDict({"facts": ConfigRecord(facts)}), reply_to=msg)

    @client.train()
    def train(msg: Message, context: Any) -> Message:
        task, data = client_task(context)
        config = msg.content["config"]
        rnd = int(config["server-round"])
        state = msg.content["arrays"].to_torch_state_dict()
        seed = client_round_seed(int(config.get("seed", 0)), rnd, data.index)
        new_state, facts = local_train(task, data, state, server_round=rnd, seed=seed,
                                       proximal_mu=float(config.get("proximal-mu", 0.0)),
                                       dp_state=_load_dp_state(context))
        if "dp-state" in facts:
            _save_dp_state(context, facts.pop("dp-state"))
        content = RecordDict({"arrays": ArrayRecord(torch_state_dict=new_state),
                              "metrics": MetricRecord({**facts, "unit-weight": 1})})
        return Message(content=content, reply_to=msg)

    @client.evaluate()
    def evaluate(msg: Message, context: Any) -> Message:
        task, data = client_task(context)
        facts = local_evaluate(task, data, msg.content["arrays"].to_torch_state_dict())
        return Message(content=RecordDict({"metrics": MetricRecord({**facts, "unit-weight": 1})}), reply_to=msg)

    return server, client
