"""Issue 22.5: a client lost before round 1 is counted as lost under its own name and reports no accuracy.

The simulation test runs Flower's real runtime with one ClientApp that fails from its first message (a
SuperNode dead before round 1); the unit tests read the opening-query bookkeeping on its own.
"""
from __future__ import annotations

import pytest

import synth
from raikit.audits.models import wrap_model
from raikit.federated import FederatedOptions
from raikit.federated._flower import RoundLog, ServerPlan, build_apps, lost_before_round_1
from raikit.federated._section import build_clients, make_task, server_plan, _read
from raikit.audits.sections import RunContext


def test_a_client_that_never_joins_is_lost_before_round_1_under_its_name():
    log = RoundLog(node_to_client={11: "0", 12: "1"})
    lost_before_round_1(log, [11, 12], {11, 12}, ServerPlan(client_names=("0", "1", "2")))
    assert [(x["client"], x["round"], x["phase"]) for x in log.lost] == [("2", 1, "query")]
    assert "no SuperNode for it joined" in log.lost[0]["reason"]


def test_a_silent_node_is_named_after_the_one_missing_client_and_unmatched_ones_by_node_id():
    log = RoundLog(node_to_client={11: "0", 12: "1"})
    lost_before_round_1(log, [11, 12, 13], {11, 12}, ServerPlan(client_names=("0", "1", "2")))
    assert [(x["client"], x["node_id"]) for x in log.lost] == [("2", 13)] and log.node_to_client[13] == "2"

    log = RoundLog(node_to_client={11: "0"})
    lost_before_round_1(log, [11, 12, 13], {11}, ServerPlan(client_names=("0", "1")))
    assert sorted(x["client"] for x in log.lost) == ["1", "node-12", "node-13"]

    log = RoundLog(node_to_client={11: "0", 12: "1"})
    lost_before_round_1(log, [11, 12], {11, 12}, ServerPlan(client_names=("0", "1")))
    assert log.lost == []


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    root = tmp_path_factory.mktemp("lost")
    tok, model = synth.make_task(root)
    return root, tok, model


def test_a_client_dead_from_the_start_is_lost_in_round_1_and_takes_no_part(task):
    from flwr.simulation import run_simulation

    root, tok, model = task
    adapter = wrap_model(model, tok, kind="classifier", device="cpu", progress=False)
    o = FederatedOptions(data=str(root / "data.csv"), clients=3, min_clients=2, rounds=2, local_epochs=1,
                         batch_size=16, physical_batch_size=16, learning_rate=3e-3, max_length=16)
    ctx = RunContext(seed=0, base_dir=root, progress=False)
    data = _read(o, ctx)
    clients = build_clients(data, o, 0)
    fed = make_task(adapter.model, adapter.tokenizer, data.label_names, clients, o, 0, max_length=16, batch_size=16)
    plan = server_plan(o, len(clients), 0, tuple(c.client for c in clients))
    box = {}

    def client_task(context):
        partition = int(context.node_config["partition-id"])
        if partition == 2:
            raise RuntimeError("this SuperNode died before round 1")
        return fed, fed.clients[partition]

    server, client = build_apps(lambda context: (fed.initial_state(), plan), client_task,
                                lambda log, context: box.setdefault("log", log))
    run_simulation(server_app=server, client_app=client, num_supernodes=3,
                   backend_config={"client_resources": {"num_cpus": 1.0, "num_gpus": 0.0},
                                   "init_args": {"num_cpus": 2, "include_dashboard": False, "log_to_driver": False}})
    log = box["log"]
    assert not log.error, log.error
    assert len(log.rounds) == 2 and all(r["clients_ok"] == 2 for r in log.rounds)
    assert {x["client"] for x in log.lost} == {"2"}, log.lost  # never "node-<id>"
    first = min(log.lost, key=lambda x: x["round"])
    assert first["round"] == 1 and first["phase"] == "query"
    assert sorted(log.trained) == ["0", "1"] and "2" not in log.per_client
