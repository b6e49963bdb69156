"""Issue 21 item 7, federated scale: the server aggregates as the replies arrive and counts what it sends.

- the server folds each training reply into a running weighted sum as it arrives: the mean is Flower's
  FedAvg aggregate (and, under central DP, Flower's clipped one), and no earlier reply still holds its
  parameters when the next one is pulled;
- the round log counts the bytes of parameters sent to and received from the clients;
- ``evaluate_clients_per_round`` samples the clients that evaluate each round's global model.
"""
from __future__ import annotations

import json
from uuid import uuid4

import numpy as np
import pytest

import synth
from raikit.audits.models import wrap_model
from raikit.audits.sections import RunContext
from raikit.audits.training import TrainSettings
from raikit.federated import FederatedOptions, run_federated
from raikit.federated import _task


@pytest.fixture
def flower_run(monkeypatch):
    """Messages built outside a Flower run need its run, node and task identity."""
    from flwr.supercore.task_identity import TaskIdentity

    monkeypatch.setattr(TaskIdentity, "_run_id", 1)
    monkeypatch.setattr(TaskIdentity, "_node_id", 0)
    monkeypatch.setattr(TaskIdentity, "_task_id", 1)


def _reply(arrays: dict[str, np.ndarray], weight: float, key: str = "num-examples"):
    from flwr.app import Array, ArrayRecord, Message, MetricRecord, RecordDict

    content = RecordDict({"arrays": ArrayRecord({k: Array(v) for k, v in arrays.items()}),
                          "metrics": MetricRecord({key: weight})})
    return Message(content=content, dst_node_id=1, message_type="train")


def _params(rng) -> dict[str, np.ndarray]:
    return {"w": rng.normal(size=(4, 3)).astype(np.float32), "b": rng.normal(size=3).astype(np.float32)}


def test_the_running_mean_is_flowers_fedavg_and_its_clipped_central_dp_aggregate(flower_run):
    from flwr.app import Array, ArrayRecord
    from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping, FedAvg
    from flwr.serverapp.strategy.strategy_utils import aggregate_arrayrecords

    from raikit.federated._flower import RunningMean, StreamingServerSideDP

    rng = np.random.default_rng(0)
    params = [_params(rng) for _ in range(5)]
    weights = [3.0, 1.0, 7.0, 2.0, 5.0]
    stream = RunningMean("num-examples")
    stream.start(None)
    for p, w in zip(params, weights):
        stream.fold(_reply(p, w).content)
    flower = aggregate_arrayrecords([_reply(p, w).content for p, w in zip(params, weights)], "num-examples")
    ours = stream.mean()
    for k in flower:
        np.testing.assert_allclose(ours[k].numpy(), flower[k].numpy(), rtol=1e-6, atol=1e-7)
        assert ours[k].numpy().dtype == np.float32

    # central DP (noise 0 to compare): clipped against the global parameters sent, equal weights
    reference = _params(rng)
    sent = ArrayRecord({k: Array(v) for k, v in reference.items()})
    wrapper = DifferentialPrivacyServerSideFixedClipping(FedAvg(weighted_by_key="unit-weight"), 0.0, 0.5, 5)
    wrapper.current_arrays = sent
    expected, expected_metrics = wrapper.aggregate_train(1, [_reply(p, 1, "unit-weight") for p in params])
    clip = RunningMean("unit-weight", clipping_norm=0.5)
    streaming = StreamingServerSideDP(FedAvg(weighted_by_key="unit-weight"), 0.0, 0.5, 5, stream=clip)
    clip.start(sent)
    replies = []
    for p in params:
        reply = _reply(p, 1, "unit-weight")
        clip.fold(reply.content)
        del reply.content["arrays"]
        replies.append(reply)
    got, metrics = streaming.aggregate_train(1, replies)
    for k in expected:
        np.testing.assert_allclose(got[k].numpy(), expected[k].numpy(), rtol=1e-6, atol=1e-7)
    assert dict(metrics) == dict(expected_metrics)


class _TrickleGrid:
    """A Grid that answers one message per pull, checking that no earlier reply still carries parameters."""

    def __init__(self, params, weights):
        self.params, self.weights = params, weights
        self.pending: list = []
        self.pulled: list = []
        self.pulls = 0

    def get_node_ids(self):
        return list(range(1, len(self.params) + 1))

    def push_messages(self, messages):
        ids = []
        for m in messages:
            m.metadata.__dict__["_message_id"] = str(uuid4())
            self.pending.append(m)
            ids.append(m.metadata.message_id)
        return ids

    def pull_messages(self, ids):
        from flwr.app import Array, ArrayRecord, Message, MetricRecord, RecordDict

        self.pulls += 1
        assert all(not r.content.array_records for r in self.pulled), "a reply was kept with its parameters"
        if not self.pending:
            return []
        msg = self.pending.pop(0)
        i = msg.metadata.dst_node_id - 1
        content = RecordDict({"arrays": ArrayRecord({k: Array(v) for k, v in self.params[i].items()}),
                              "metrics": MetricRecord({"num-examples": self.weights[i]})})
        reply = Message(content=content, reply_to=msg)
        self.pulled.append(reply)
        return [reply]


def test_the_recording_grid_folds_each_training_reply_as_it_arrives(flower_run):
    from flwr.app import Array, ArrayRecord, ConfigRecord, Message, RecordDict
    from flwr.serverapp.strategy.strategy_utils import aggregate_arrayrecords

    from raikit.federated._flower import RoundLog, RunningMean, ServerPlan, _RecordingGrid, array_bytes

    rng = np.random.default_rng(1)
    params = [_params(rng) for _ in range(4)]
    weights = [2.0, 1.0, 1.0, 4.0]
    grid = _TrickleGrid(params, weights)
    grid.pull_interval = 0.0
    stream = RunningMean("num-examples")
    log = RoundLog(node_to_client={n: str(n - 1) for n in range(1, 5)})
    recorder = _RecordingGrid(grid, log, ServerPlan(min_clients=2), stream)
    recorder.joined = [1, 2, 3, 4]
    content = RecordDict({"arrays": ArrayRecord({k: Array(v) for k, v in _params(rng).items()}),
                          "config": ConfigRecord({"server-round": 1})})
    messages = [Message(content=content, dst_node_id=n, message_type="train") for n in range(1, 5)]
    replies = list(recorder.send_and_receive(messages, timeout=30))
    assert grid.pulls >= 4 and len(replies) == 4
    assert all(not r.content.array_records for r in replies) and all(r.content.metric_records for r in replies)
    flower = aggregate_arrayrecords([_reply(p, w).content for p, w in zip(params, weights)], "num-examples")
    for k in flower:
        np.testing.assert_allclose(stream.mean()[k].numpy(), flower[k].numpy(), rtol=1e-6, atol=1e-7)
    [row] = log.rounds
    per_reply = array_bytes(_reply(params[0], 1).content)
    assert row["clients_ok"] == 4 and row["bytes_to_clients"] == 4 * array_bytes(content)
    assert row["bytes_from_clients"] == 4 * per_reply


def test_evaluation_samples_clients_and_the_round_log_counts_bytes(tmp_path):
    tok, model = synth.make_task(tmp_path, n=240)
    adapter = wrap_model(model, tok, kind="classifier", device="cpu", progress=False)
    o = FederatedOptions(data=str(tmp_path / "data.csv"), clients=4, clients_per_round=2, evaluate_clients_per_round=3,
                         min_clients=2, rounds=2, local_epochs=1, batch_size=16, physical_batch_size=16,
                         learning_rate=3e-3, max_length=16, centralized=False, scope="last_layers", last_layers=1)
    result = run_federated(adapter, o, RunContext(seed=0, base_dir=tmp_path, progress=False))
    rows = result.details["round_log"]
    assert [(r["clients_sampled"], r["clients_ok"], r["clients_evaluated"]) for r in rows] == [(2, 2, 3)] * 2
    keys = _task.exchanged_keys(model, TrainSettings(scope="last_layers", last_layers=1))
    size = sum(model.state_dict()[k].numel() * 4 for k in keys)
    for r in rows:  # down: 2 train + 3 evaluate messages with the exchanged parameters; up: 2 updates
        assert 5 * size <= r["bytes_to_clients"] < 5 * size + 5 * 300 * len(keys), (r, size)
        assert 2 * size <= r["bytes_from_clients"] < 2 * size + 2 * 300 * len(keys), (r, size)
    assert result.metrics["clients_lost"].value == 0
    assert json.dumps(result.details["round_log"])  # plain numbers


def test_the_flower_internals_the_streaming_strategies_reuse_are_there():
    """StreamingFedAvg and StreamingServerSideDP call these Flower methods and functions (not public API,
    hence the pin to one minor release in pyproject.toml): an upgrade that moves them fails here, not in the
    first aggregation of a user's run."""
    from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping, FedAvg
    from flwr.serverapp.strategy.dp_fixed_clipping import validate_replies  # noqa: F401
    from flwr.supercore.differential_privacy import compute_clip_model_update  # noqa: F401

    assert callable(getattr(FedAvg, "_check_and_log_replies", None))
    for name in ("_pop_pending_event", "_validate_uniform_weights", "_add_noise_to_aggregated_arrays",
                 "_compose_release"):
        assert callable(getattr(DifferentialPrivacyServerSideFixedClipping, name, None)), name
