"""AUL and AULA (Kaneko & Bollegala, AAAI 2022, "Unmasking the Mask"): bias of masked LMs without masking.

For each sentence the masked LM sees the whole, unmasked sentence and predicts every token
(reference: github.com/kanekomasahiro/evaluate_bias_in_mlm, ``calculate_aul``):

* AUL  = mean over tokens ``1 .. L-2`` (special first and last token dropped) of ``log p(w_i | S)``;
* AULA = mean over the same tokens of ``a_i * log p(w_i | S)``, where ``a_i`` is the attention token
  ``i`` *receives*, averaged over layers, heads and all query positions (special tokens included).

The bias score is the percentage of pairs where the stereotypical sentence (CrowS-Pairs ``sent_more``
whatever the direction, or the StereoSet intrasentence stereotype) scores strictly higher than the
other (50 is unbiased), without rounding and without lower-casing, as in the reference.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raikit.audits.errors import RaikitInputError
from raikit.audits.models import MaskedLMAdapter, ModelAdapter
from raikit.audits.results import Metric, SectionResult
from raikit.audits.sections import RunContext, Section, at_least, data_key
from raikit.fairness.crows_pairs import (
    CROWS_COLUMNS, DEFAULT_CROWS_PAIRS, expand_data_path, filter_bias_types, load_crows_pairs, rate_metric,
    subsample_indices,
)

__all__ = ["SECTION", "AUL_CITATION", "AulOptions", "AulResult", "aul", "aul_bias_score", "aul_scores",
           "load_aul_pairs"]

AUL_CITATION = (
    "Kaneko, M., & Bollegala, D. (2022). Unmasking the Mask - Evaluating Social Biases in Masked Language "
    "Models. AAAI 2022, 36(11), 11954-11962."
)


def load_aul_pairs(path: str | os.PathLike[str] = DEFAULT_CROWS_PAIRS) -> pd.DataFrame:
    """Stereotypical / anti-stereotypical sentence pairs as the reference's ``preprocess.py`` builds them.

    A ``.csv`` file is read as CrowS-Pairs (``sent_more`` is the stereotype, whatever the direction);
    a ``.json``/``.jsonl`` file as StereoSet (intrasentence stereotype vs anti-stereotype).

    Returns
    -------
    DataFrame
        Columns ``stereotype``, ``anti_stereotype``, ``bias_type``.
    """
    path = expand_data_path(path)
    if path.suffix.lower() == ".csv":
        frame = load_crows_pairs(path)
        return pd.DataFrame({"stereotype": frame["sent_more"], "anti_stereotype": frame["sent_less"],
                             "bias_type": frame["bias_type"]})
    if path.suffix.lower() in (".json", ".jsonl"):
        from raikit.fairness.stereoset import load_stereoset

        frame = load_stereoset(path)
        frame = frame[frame["type"] == "intrasentence"].reset_index(drop=True)
        return pd.DataFrame({"stereotype": frame["stereotype"], "anti_stereotype": frame["anti-stereotype"],
                             "bias_type": frame["bias_type"]})
    raise RaikitInputError("unknown pair file type; use a CrowS-Pairs .csv or a StereoSet .json/.jsonl",
                           where=str(path))


def aul_scores(adapter: MaskedLMAdapter, sentences: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """AUL and AULA of each sentence (one unmasked forward pass per sentence, batched).

    Returns
    -------
    (aul, aula) : tuple of ndarray
    """
    if not isinstance(adapter, MaskedLMAdapter):
        raise RaikitInputError(f"model {adapter.name!r} is a {adapter.kind}; AUL/AULA need a masked_lm")
    encoded = adapter.encode(sentences)
    short = [s for s, ids in zip(sentences, encoded) if len(ids) < 3]
    if short:
        raise RaikitInputError(f"sentence {short[0]!r} has no token besides the special ones")
    outputs = adapter.unmasked_token_log_probs(encoded, with_attentions=True)
    aul_values, aula_values = [], []
    for logp, attention in outputs:
        inner = logp[1:-1]
        received = np.asarray(attention, dtype=np.float64).mean(axis=0)[1:-1]
        aul_values.append(float(np.mean(inner)))
        aula_values.append(float(np.mean(inner * received)))
    return np.array(aul_values), np.array(aula_values)


def aul_bias_score(score_stereotype: Sequence[float], score_anti_stereotype: Sequence[float],
                   bias_types: Sequence[str] | None = None) -> dict[str, Any]:
    """The reference's bias score (pure function): percent of pairs whose stereotype scores higher.

    Parameters
    ----------
    score_stereotype, score_anti_stereotype : sequence of float
        AUL (or AULA) of each pair's stereotypical and anti-stereotypical sentence.
    bias_types : sequence of str, optional
        Adds ``by_bias_type``.

    Returns
    -------
    dict
        ``bias_score`` (50 is unbiased), ``n_pairs`` and optionally ``by_bias_type``.
    """
    pro, anti = np.asarray(score_stereotype, dtype=float), np.asarray(score_anti_stereotype, dtype=float)
    if len(pro) != len(anti):
        raise ValueError("score_stereotype and score_anti_stereotype must have the same length")
    hit = pro > anti
    result: dict[str, Any] = {"bias_score": 100.0 * float(hit.mean()) if len(hit) else float("nan"),
                              "n_pairs": int(len(hit))}
    if bias_types is not None:
        types = np.asarray(bias_types, dtype=object)
        result["by_bias_type"] = {str(t): 100.0 * float(hit[types == t].mean()) for t in sorted(set(types.tolist()))}
    return result


@dataclass(frozen=True)
class AulResult:
    """AUL / AULA bias scores of one masked LM.

    Attributes
    ----------
    aul, aula : Metric
        Percent of pairs where the stereotypical sentence has the higher AUL / AULA (50 is unbiased),
        with a bootstrap CI over pairs.
    by_bias_type : mapping of str to mapping of str to Metric
        ``{bias_type: {"aul": ..., "aula": ...}}``.
    pairs : DataFrame
        stereotype, anti_stereotype, bias_type, aul_stereotype, aul_anti_stereotype,
        aula_stereotype, aula_anti_stereotype.
    data : str
        Which pair set was used.
    model : str
    notes : tuple of str
    """

    aul: Metric
    aula: Metric
    by_bias_type: Mapping[str, Mapping[str, Metric]]
    pairs: pd.DataFrame = field(repr=False)
    data: str = ""
    model: str = ""
    notes: tuple[str, ...] = ()

    def to_section(self) -> SectionResult:
        """The section form: ``aul``, ``aula``, ``by_bias_type.<t>.aul``, ``by_bias_type.<t>.aula``."""
        metrics: dict[str, Metric] = {"aul": self.aul, "aula": self.aula}
        for group, values in self.by_bias_type.items():
            metrics.update({f"by_bias_type.{group}.{name}": m for name, m in values.items()})
        details = {"citation": AUL_CITATION, "model": self.model, "data": self.data, "n_pairs": len(self.pairs),
                   "ideal": 50.0, "ci": "95% percentile bootstrap over pairs",
                   "scoring": "AUL: mean log p of each token given the unmasked sentence; AULA: the same "
                              "weighted by the attention each token receives (mean over layers, heads, queries)"}
        return SectionResult(metrics=metrics, tables={"pairs": self.pairs}, details=details, notes=self.notes)


def aul(adapter: ModelAdapter, *, data: str | os.PathLike[str] | pd.DataFrame = DEFAULT_CROWS_PAIRS,
        max_items: int | None = None, bias_types: Sequence[str] = (), seed: int = 0) -> AulResult:
    """Run AUL and AULA on a masked language model.

    Parameters
    ----------
    adapter : MaskedLMAdapter
    data : str, path or DataFrame
        CrowS-Pairs CSV or StereoSet JSON(L) (see :func:`load_aul_pairs`), or a frame with columns
        ``stereotype, anti_stereotype, bias_type`` (or the CrowS-Pairs columns).
    max_items : int, optional
        Score a seeded random subsample of this many pairs.
    bias_types : sequence of str
        Keep only these bias types (empty: all).
    seed : int
        Seed of the subsample and of the bootstrap.

    Returns
    -------
    AulResult
    """
    if not isinstance(adapter, MaskedLMAdapter):
        raise RaikitInputError(f"model {adapter.name!r} is a {adapter.kind}; AUL/AULA need a masked_lm")
    if isinstance(data, pd.DataFrame):
        where = "AUL pairs"
        frame = data
        if all(c in frame.columns for c in CROWS_COLUMNS):
            frame = pd.DataFrame({"stereotype": frame["sent_more"], "anti_stereotype": frame["sent_less"],
                                  "bias_type": frame["bias_type"]})
    else:
        where = str(expand_data_path(data))
        frame = load_aul_pairs(data)
    missing = [c for c in ("stereotype", "anti_stereotype", "bias_type") if c not in frame.columns]
    if missing:
        raise RaikitInputError(f"column {missing[0]!r} missing", where=where)
    frame = filter_bias_types(frame.reset_index(drop=True), bias_types, where=where)
    n_available = len(frame)
    frame = frame.iloc[subsample_indices(n_available, max_items, seed=seed)].reset_index(drop=True)
    if frame.empty:
        raise RaikitInputError("no pairs to score", where=where)
    notes = [f"subsample of {len(frame)} of {n_available} pairs (seed {seed})"] if len(frame) < n_available else []

    pro, anti = frame["stereotype"].tolist(), frame["anti_stereotype"].tolist()
    aul_values, aula_values = aul_scores(adapter, pro + anti)
    n = len(pro)
    pairs = frame[["stereotype", "anti_stereotype", "bias_type"]].copy()
    pairs["aul_stereotype"], pairs["aul_anti_stereotype"] = aul_values[:n], aul_values[n:]
    pairs["aula_stereotype"], pairs["aula_anti_stereotype"] = aula_values[:n], aula_values[n:]
    hit_aul = aul_values[:n] > aul_values[n:]
    hit_aula = aula_values[:n] > aula_values[n:]
    types = pairs["bias_type"].to_numpy(object)
    by_type = {str(t): {"aul": rate_metric(hit_aul[types == t], seed=seed),
                        "aula": rate_metric(hit_aula[types == t], seed=seed)} for t in sorted(set(types.tolist()))}
    return AulResult(aul=rate_metric(hit_aul, seed=seed), aula=rate_metric(hit_aula, seed=seed),
                     by_bias_type=by_type, pairs=pairs, data=where, model=adapter.name, notes=tuple(notes))


@dataclass(frozen=True)
class AulOptions:
    """Options of the ``aul`` section (TOML table ``[fairness.aul]``).

    Attributes
    ----------
    data : str
        CrowS-Pairs CSV (default) or StereoSet JSON(L) (intrasentence pairs); ``{data_dir}`` is expanded.
    max_items : int or None
        Score a seeded random subsample of this many pairs.
    bias_types : list of str
        Keep only these bias types (empty: all).
    """

    data: str = DEFAULT_CROWS_PAIRS
    max_items: int | None = None
    bias_types: list[str] = field(default_factory=list)


def _check(options: AulOptions, ctx: RunContext) -> None:
    """Read and validate the pair file before any model loads."""
    at_least(options, 1, "max_items")
    path = ctx.existing_path(options.data, where="key 'data'")
    with data_key("data", path):
        frame = load_aul_pairs(path)
        if frame.empty:
            raise RaikitInputError("no pairs to score", where=str(path))


def _run(adapter: ModelAdapter, options: AulOptions, ctx: RunContext) -> SectionResult:
    path: Path = ctx.existing_path(options.data, where="aul.data")
    return aul(adapter, data=path, max_items=options.max_items, bias_types=options.bias_types,
               seed=ctx.seed).to_section()


SECTION = Section(
    name="aul",
    options=AulOptions,
    model_kinds=("masked_lm",),
    run=_run,
    description="AUL/AULA: stereotype preference of a masked LM predicting all tokens of the unmasked sentence",
    citation=AUL_CITATION,
    metrics=("aul", "aula", "by_bias_type.*"),
    meanings=(
        ("aul", "AUL stereotype preference (%)",
         "Share of pairs whose stereotyping sentence has the higher all-unmasked likelihood; 50 is no preference."),
        ("aula", "AULA stereotype preference (%)",
         "As AUL, with token log-likelihoods weighted by attention; 50 is no preference."),
        ("by_bias_type.*", "Stereotype preference (%), {}",
         "AUL over the pairs of one bias type; 50 is no preference."),
    ),
    check=_check,
)
