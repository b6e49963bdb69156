"""Seeded partitioning of labelled training data across federated clients, and its report.

Three schemes (Hsu et al., "Measuring the Effects of Non-Identical Data Distribution for Federated
Visual Classification", 2019, for Dirichlet label skew):

- ``iid``: a seeded permutation cut into near-equal parts;
- ``dirichlet``: for each class, the class's examples are split across clients in proportions drawn
  from Dirichlet(alpha, ..., alpha) (small alpha: each client sees mostly one class); redrawn (seeded)
  until every client holds at least ``min_size`` examples;
- ``group``: one client per distinct value of the group column (the realistic non-IID case: one site
  per hospital, bank, team).

Written with numpy rather than flwr-datasets (whose partitioners need the ``datasets`` package).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from raikit.audits.errors import RaikitInputError

__all__ = ["PARTITION_SCHEMES", "partition_indices", "partition_table"]

PARTITION_SCHEMES: tuple[str, ...] = ("iid", "dirichlet", "group")


def partition_indices(labels: np.ndarray, *, scheme: str, clients: int, seed: int, alpha: float = 0.5,
                      groups: np.ndarray | None = None, min_size: int = 2,
                      max_tries: int = 200) -> tuple[list[np.ndarray], list[str]]:
    """Row indices of each client's partition and the client ids.

    Parameters
    ----------
    labels : array of int
        Class index of each row.
    scheme : {"iid", "dirichlet", "group"}
    clients : int
        Number of clients (ignored for ``group``: one per group).
    seed : int
    alpha : float
        Dirichlet concentration (``dirichlet`` only), > 0.
    groups : array of str, optional
        Group of each row (``group`` only).
    min_size : int
        Fewest examples a client may hold.

    Returns
    -------
    (list of ndarray, list of str)
        Sorted row indices per client, and the client ids (``"0"``, ``"1"``, ... or the group names).

    Raises
    ------
    RaikitInputError
        Too few rows, or no Dirichlet draw giving every client ``min_size`` examples.
    """
    labels = np.asarray(labels)
    n = len(labels)
    rng = np.random.default_rng(seed)
    if scheme == "group":
        if groups is None:
            raise RaikitInputError("key 'partition': 'group' needs a group_column")
        names = sorted({str(g) for g in groups})
        gs = np.asarray([str(g) for g in groups])
        parts = [np.flatnonzero(gs == name) for name in names]
        small = [name for name, p in zip(names, parts) if len(p) < min_size]
        if small:
            raise RaikitInputError(f"key 'group_column': group(s) {small} have fewer than {min_size} examples")
        return parts, names
    ids = [str(i) for i in range(clients)]
    if n < clients * min_size:
        raise RaikitInputError(f"key 'clients': {n} training examples cannot give {clients} clients "
                               f"{min_size} each, got clients = {clients}")
    if scheme == "iid":
        return [np.sort(p) for p in np.array_split(rng.permutation(n), clients)], ids
    if scheme == "dirichlet":
        if not alpha > 0:
            raise RaikitInputError(f"key 'alpha': must be > 0, got {alpha!r}")
        classes = np.unique(labels)
        for _ in range(max_tries):
            buckets: list[list[int]] = [[] for _ in range(clients)]
            for c in classes:
                rows = rng.permutation(np.flatnonzero(labels == c))
                shares = rng.dirichlet(np.full(clients, float(alpha)))
                cuts = (np.cumsum(shares)[:-1] * len(rows)).astype(int)
                for k, chunk in enumerate(np.split(rows, cuts)):
                    buckets[k].extend(chunk.tolist())
            if min(len(b) for b in buckets) >= min_size:
                return [np.sort(np.asarray(b, dtype=int)) for b in buckets], ids
        raise RaikitInputError(f"key 'alpha': no Dirichlet({alpha:g}) draw in {max_tries} gave each of {clients} "
                               f"clients {min_size} examples; use fewer clients or a larger alpha")
    raise RaikitInputError(f"key 'partition': must be one of {', '.join(PARTITION_SCHEMES)}, got {scheme!r}")


def partition_table(client_ids: Sequence[str], train: Sequence[pd.DataFrame], test: Sequence[pd.DataFrame],
                    label_names: Sequence[str]) -> pd.DataFrame:
    """One row per client: training and local test sizes, label counts and the majority-label share."""
    rows = []
    for cid, tr, te in zip(client_ids, train, test):
        counts = np.bincount(tr["label"].to_numpy(dtype=int), minlength=len(label_names))
        row = {"client": str(cid), "train": int(len(tr)), "test": int(len(te))}
        row.update({f"label_{name}": int(c) for name, c in zip(label_names, counts)})
        row["majority_share"] = round(float(counts.max() / max(counts.sum(), 1)), 4)
        if "group" in tr.columns:
            row["groups"] = ", ".join(f"{g}:{c}" for g, c in tr["group"].value_counts().sort_index().items())
        rows.append(row)
    return pd.DataFrame(rows)
