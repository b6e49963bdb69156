"""Partitioning across clients: seeded, the schemes do what they say, bad input is one line."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from raikit.audits.errors import RaikitInputError
from raikit.audits.textdata import LabelledTexts
from raikit.federated import FederatedOptions, build_clients, partition_indices, partition_table


def _labels(n=600, seed=0):
    return np.random.default_rng(seed).integers(0, 2, n)


def test_iid_is_seeded_disjoint_and_covers_everything():
    y = _labels()
    a, ids = partition_indices(y, scheme="iid", clients=4, seed=3)
    b, _ = partition_indices(y, scheme="iid", clients=4, seed=3)
    c, _ = partition_indices(y, scheme="iid", clients=4, seed=4)
    assert ids == ["0", "1", "2", "3"]
    assert all(np.array_equal(x, z) for x, z in zip(a, b)) and not all(np.array_equal(x, z) for x, z in zip(a, c))
    allidx = np.concatenate(a)
    assert sorted(allidx.tolist()) == list(range(len(y)))
    assert max(len(p) for p in a) - min(len(p) for p in a) <= 1


def test_dirichlet_small_alpha_skews_labels_and_large_alpha_does_not():
    y = _labels(2000)

    def majority(alpha):
        parts, _ = partition_indices(y, scheme="dirichlet", clients=5, seed=0, alpha=alpha)
        assert sorted(np.concatenate(parts).tolist()) == list(range(len(y)))
        return np.mean([np.bincount(y[p], minlength=2).max() / len(p) for p in parts])

    skewed, mixed = majority(0.1), majority(100.0)
    assert skewed > 0.8 and mixed < 0.6, (skewed, mixed)


def test_group_partition_gives_one_client_per_group():
    y = _labels(30)
    groups = np.array(["north", "south", "east"] * 10)
    parts, ids = partition_indices(y, scheme="group", clients=99, seed=0, groups=groups)
    assert ids == ["east", "north", "south"]
    assert all(set(groups[p]) == {g} for p, g in zip(parts, ids))


@pytest.mark.parametrize("kwargs,expected", [
    ({"scheme": "dirichlet", "alpha": 0.0}, "key 'alpha': must be > 0, got 0.0"),
    ({"scheme": "dirichlet", "alpha": -1.0}, "key 'alpha': must be > 0"),
    ({"scheme": "iid", "clients": 400}, "key 'clients'"),
    ({"scheme": "group"}, "key 'partition': 'group' needs a group_column"),
    ({"scheme": "shards"}, "key 'partition': must be one of iid, dirichlet, group"),
])
def test_bad_partition_input(kwargs, expected):
    args = {"clients": 3, "seed": 0, **kwargs}
    with pytest.raises(RaikitInputError, match=expected.replace("(", r"\(").replace("[", r"\[")):
        partition_indices(_labels(100), **args)


def test_clients_report_sizes_and_label_mix():
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(90)], "label": _labels(90) , "group": ["a", "b", "c"] * 30})
    data = LabelledTexts(frame=frame, label_names=("negative", "positive"), source="x", sha256="0")
    clients = build_clients(data, FederatedOptions(clients=3, partition="iid", held_out=0.2), seed=0)
    table = partition_table([c.client for c in clients], [c.train for c in clients], [c.test for c in clients],
                            data.label_names)
    assert list(table["client"]) == ["0", "1", "2"]
    assert (table["train"] + table["test"]).sum() == 90
    assert (table["label_negative"] + table["label_positive"] == table["train"]).all()
    assert {"majority_share", "groups"} <= set(table.columns)
    again = build_clients(data, FederatedOptions(clients=3, partition="iid", held_out=0.2), seed=0)
    assert all(a.train.equals(b.train) and a.test.equals(b.test) for a, b in zip(clients, again))
