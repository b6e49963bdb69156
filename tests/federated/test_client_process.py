"""Issue 21 item 7, federated scale: what each simulated or deployed client process gets and how it trains.

- the simulation's ClientApp carries a folder path, not the task: its pickled size (what Ray ships with every
  message) does not grow with the model, the data or the number of clients;
- a client process loads the model once, sets its torch threads, reads only its own partition, and trains
  and evaluates that one model in place (no copy per message) with the same result as training a copy;
- under LoRA only the weights the merged adapters and the head change are exchanged.
"""
from __future__ import annotations

import copy
import dataclasses
import subprocess
import sys
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

import synth
import tiny
from raikit.audits.textdata import LabelledTexts
from raikit.audits.training import fine_tune
from raikit.federated import FederatedOptions
from raikit.federated import _task
from raikit.federated._section import build_clients, make_task, server_plan


def _task_of(n_clients: int, n_rows: int, hidden: int = 32, **options):
    tok = tiny.word_tokenizer(synth.VOCAB)
    model = tiny.tiny_classifier(tok, hidden_size=hidden, intermediate_size=2 * hidden)
    frame = synth.texts(n_rows, seed=2).assign(label=lambda f: (f["label"] == "positive").astype(int))
    data = LabelledTexts(frame=frame[["text", "label"]], label_names=("negative", "positive"), source="synthetic",
                         sha256="")
    o = FederatedOptions(clients=n_clients, rounds=1, max_length=16, batch_size=8, physical_batch_size=8, **options)
    clients = build_clients(data, o, 0)
    return make_task(model, tok, data.label_names, clients, o, 0, max_length=16, batch_size=8), o, clients


class _Captured(Exception):
    pass


def _pickled_client_app(monkeypatch, n_clients: int, n_rows: int, hidden: int = 32) -> int:
    """Bytes of the ClientApp the section hands Flower's run_simulation, pickled as Ray pickles it."""
    import cloudpickle
    import flwr.simulation

    from raikit.federated._section import run_simulation

    task, o, clients = _task_of(n_clients, n_rows, hidden)
    box = {}

    def capture(*, client_app, **kwargs):
        box["size"] = len(cloudpickle.dumps(client_app))
        raise _Captured

    monkeypatch.setattr(flwr.simulation, "run_simulation", capture)
    with pytest.raises(_Captured):
        run_simulation(task, server_plan(o, len(clients), 0), client_cpus=1.0)
    return box["size"]


def test_the_client_app_carries_a_path_whatever_the_model_the_data_or_the_clients(monkeypatch):
    small = _pickled_client_app(monkeypatch, n_clients=3, n_rows=60)
    many = _pickled_client_app(monkeypatch, n_clients=300, n_rows=3000)
    wide = _pickled_client_app(monkeypatch, n_clients=3, n_rows=60, hidden=128)
    assert abs(many - small) < 1_000 and abs(wide - small) < 1_000, (small, many, wide)
    assert small < 20_000, small  # the tiny model alone is larger than this


def _context(partition: int) -> SimpleNamespace:
    return SimpleNamespace(node_config={"partition-id": partition})


def test_a_client_process_loads_the_model_once_and_reads_only_its_partition(tmp_path, monkeypatch):
    import transformers

    task, _, clients = _task_of(4, 80)
    folder = _task.save_task(task, tmp_path / "task", clients=clients[:2])
    monkeypatch.setattr(_task, "_LOADED", {})
    loads = []
    real = transformers.AutoModelForSequenceClassification.from_pretrained

    def counting(*args, **kwargs):
        loads.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForSequenceClassification, "from_pretrained", counting)
    a, c0 = _task.client_from_folder(str(folder), _context(0))
    b, c1 = _task.client_from_folder(str(folder), _context(1))
    assert a is b and len(loads) == 1 and a.clients == []
    assert (c0.client, c0.index, c1.index) == ("0", 0, 1)
    pd.testing.assert_frame_equal(c1.train, clients[1].train, check_dtype=False)
    with pytest.raises(FileNotFoundError, match="partition 2"):
        _task.client_from_folder(str(folder), _context(2))  # only the partitions written are there


def test_the_client_process_sets_one_torch_thread(tmp_path):
    task, _, clients = _task_of(2, 40)
    folder = _task.save_task(task, tmp_path / "task", clients=clients, torch_threads=1)
    code = ("import sys, torch; torch.set_num_threads(2); from raikit.federated._task import load_task; "
            "load_task(sys.argv[1]); print(torch.get_num_threads())")
    out = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1", out.stderr[-2000:]


def test_local_training_reuses_the_loaded_model_with_the_result_of_training_a_copy(tmp_path, monkeypatch):
    task, _, clients = _task_of(3, 90)
    folder = _task.save_task(task, tmp_path / "task", clients=clients)
    monkeypatch.setattr(_task, "_LOADED", {})
    worker, mine = _task.client_from_folder(str(folder), _context(1))
    start = task.initial_state()
    # the reference: the old path, a copy of the starting model trained by fine_tune (which copies again)
    settings = dataclasses.replace(task.settings, seed=5)
    expected = fine_tune(_task.load_arrays(task.model, start), task.tokenizer, list(mine.train["text"]),
                         mine.train["label"].to_numpy(), settings=settings, progress=False).model.state_dict()
    # another client trains first on the same process model: nothing of it may leak into client 1's round
    _task.local_train(worker, _task.load_client(folder, 0), start, server_round=1, seed=9)

    def no_model_copies(obj, *args, **kwargs):
        if isinstance(obj, torch.nn.Module):
            raise AssertionError("a model was copied")
        return real_deepcopy(obj, *args, **kwargs)

    real_deepcopy = copy.deepcopy
    monkeypatch.setattr(copy, "deepcopy", no_model_copies)
    model_before = worker.model
    new_state, facts = _task.local_train(worker, mine, start, server_round=1, seed=5)
    evaluated = _task.local_evaluate(worker, mine, new_state)
    assert worker.model is model_before
    assert set(new_state) == set(task.keys)
    for k, v in new_state.items():
        torch.testing.assert_close(v, expected[k], rtol=0, atol=0)
    assert evaluated["num-examples"] == len(mine.test) and facts["steps"] > 0
    # the returned parameters are the client's, not views of the model the next message reuses
    _task.local_train(worker, _task.load_client(folder, 2), start, server_round=1, seed=7)
    for k, v in new_state.items():
        torch.testing.assert_close(v, expected[k], rtol=0, atol=0)


def test_lora_exchanges_only_the_weights_its_merged_adapters_and_head_change():
    from raikit.audits.training import TrainSettings

    tok = tiny.word_tokenizer(synth.VOCAB)
    model = tiny.tiny_classifier(tok, hidden_size=32, intermediate_size=64)
    settings = TrainSettings(scope="lora", lora_rank=4, epochs=2, batch_size=8, max_length=16, learning_rate=1e-2)
    keys = _task.exchanged_keys(model, settings)
    assert keys and len(keys) < len(model.state_dict()) / 2, keys
    assert not any("embeddings" in k for k in keys) and {"classifier.weight", "classifier.bias"} <= set(keys)
    frame = synth.texts(48, seed=4)
    trained = fine_tune(model, tok, list(frame["text"]), (frame["label"] == "positive").to_numpy(dtype=int),
                        settings=settings, progress=False).model.state_dict()
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, trained[k])}
    assert changed and changed <= set(keys), sorted(changed - set(keys))


def test_a_failed_local_training_leaves_no_half_trained_model_for_the_next_message(tmp_path, monkeypatch):
    """The process model is trained in place; a failure mid-training (here the first optimizer step) must not
    leave its injected LoRA layers for the next message, which then loads the model afresh and trains as a
    fresh process would."""
    task, _, clients = _task_of(2, 60, scope="lora", lora_rank=2)
    folder = _task.save_task(task, tmp_path / "task", clients=clients)
    start = task.initial_state()
    monkeypatch.setattr(_task, "_LOADED", {})
    fresh, mine = _task.client_from_folder(str(folder), _context(0))
    expected, _ = _task.local_train(fresh, mine, start, server_round=1, seed=3)

    monkeypatch.setattr(_task, "_LOADED", {})
    worker, mine = _task.client_from_folder(str(folder), _context(0))
    real_step = torch.optim.AdamW.step

    def fail_once(self, *args, **kwargs):
        monkeypatch.setattr(torch.optim.AdamW, "step", real_step)
        raise RuntimeError("a transient failure")

    monkeypatch.setattr(torch.optim.AdamW, "step", fail_once)
    with pytest.raises(RuntimeError, match="transient"):
        _task.local_train(worker, mine, start, server_round=1, seed=3)
    again, mine = _task.client_from_folder(str(folder), _context(0))
    assert again is not worker
    new_state, _ = _task.local_train(again, mine, start, server_round=1, seed=3)
    for k, v in new_state.items():
        torch.testing.assert_close(v, expected[k], rtol=0, atol=0)


def test_every_client_round_and_run_seed_trains_with_its_own_seed():
    from raikit.federated._flower import client_round_seed

    seeds = {(s, r, c): client_round_seed(s, r, c) for s in (0, 1) for r in range(1, 4) for c in range(1000)}
    assert len(set(seeds.values())) == len(seeds)
    assert client_round_seed(0, 1, 0) == client_round_seed(0, 1, 0)


def test_flower_samples_exactly_the_clients_asked_for():
    from raikit.federated._flower import sampling_fraction

    for available in range(1, 1001):
        for wanted in range(1, available + 1):
            assert int(available * sampling_fraction(wanted, available)) == wanted, (wanted, available)


def test_which_clients_a_round_samples_is_the_same_in_every_run_with_the_seed():
    """Flower's sample_nodes draws from the global random over the grid's node ids, which are random per run:
    the recorder lists them in client order and the run seeds the draw, so the clients are the seed's."""
    import random

    from flwr.serverapp.strategy.strategy_utils import sample_nodes

    from raikit.federated._flower import RoundLog, _RecordingGrid, seeded_sampling

    def clients_sampled(node_ids, seed):
        log = RoundLog()
        log.node_to_client.update({node: str(client) for client, node in enumerate(node_ids)})
        shuffled = list(node_ids)
        random.Random(len(node_ids) + seed).shuffle(shuffled)  # the Grid's own order
        grid = _RecordingGrid(SimpleNamespace(get_node_ids=lambda: shuffled), log, plan=None)
        with seeded_sampling(seed):
            return [sorted(log.node_to_client[n] for n in sample_nodes(grid, 2, 5)[0]) for _ in range(3)]

    before = random.getstate()
    run_1 = clients_sampled([random.getrandbits(63) for _ in range(20)], seed=4)
    run_2 = clients_sampled([random.getrandbits(63) for _ in range(20)], seed=4)
    assert run_1 == run_2 and run_1[0] != run_1[1]
    assert clients_sampled(list(range(100, 120)), seed=5) != run_1
    random.setstate(before)
